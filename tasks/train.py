"""Train: implicit ALS on likes, holdout evaluation against popularity, versioned save, promotion gate."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.evaluation import train_test_split
from prefect import task
from threadpoolctl import threadpool_limits

from evaluation.metrics import CUTOFFS, hit_matrix, ranking_metrics
from tasks import db
from tasks.db import connect, run, transaction
from tasks.errors import InputError
from tasks.settings import Settings

EVAL_DEPTH = max(CUTOFFS)
PAD = -1  # pads arrays of internal item row indices; never an external id (any BIGINT id is a normal item)


@dataclass(frozen=True)
class Interactions:
    """Latest rating per (user, item) as sparse matrices over dense user/item indices."""

    user_ids: np.ndarray  # external id of each user row
    item_ids: np.ndarray  # external id of each item column
    likes: sp.csr_matrix  # confidence of each liked pair
    seen: sp.csr_matrix  # 1 for every rated pair, liked or not


@dataclass(frozen=True)
class TrainResult:
    model_version: str
    promoted: bool
    serving_version: str
    decision: str
    metrics: pl.DataFrame  # method, metric, k, value
    resumed: bool = False

    def __str__(self) -> str:
        return f"{self.decision}{' (reused, already trained tonight)' if self.resumed else ''}"


def latest_ratings(con: duckdb.DuckDBPyConnection, like_threshold: float) -> pl.DataFrame:
    """(user_id, item_id, liked) of every rated pair, ordered: latest rating, likes as sql/schema.sql defines them."""
    return db.frame(con, "train/interactions", {"like_threshold": like_threshold})


def load_interactions(con: duckdb.DuckDBPyConnection, like_threshold: float, alpha: float) -> Interactions:
    """All users and items with at least one rating."""
    frame = latest_ratings(con, like_threshold)
    user_ids, item_ids = (np.sort(frame[column].unique().to_numpy()) for column in ("user_id", "item_id"))
    return to_matrices(frame, user_ids, item_ids, alpha)


def to_matrices(frame: pl.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray, alpha: float) -> Interactions:
    """Latest ratings (user_id, item_id, liked) as matrices over the given sorted id indices; other ids are left out.

    Built with 32-bit indices and without copies of the frame's columns: at 20M ratings each copy is 160 MB.
    """
    rows, cols = positions(user_ids, frame["user_id"].to_numpy()), positions(item_ids, frame["item_id"].to_numpy())
    liked = frame["liked"].to_numpy()
    known = (rows >= 0) & (cols >= 0)
    if not known.all():
        rows, cols, liked = rows[known], cols[known], liked[known]
    del known
    shape = (len(user_ids), len(item_ids))
    seen = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    rows, cols = rows[liked], cols[liked]
    likes = sp.csr_matrix((np.full(len(rows), alpha, dtype=np.float32), (rows, cols)), shape=shape)
    return Interactions(user_ids, item_ids, likes, seen)


def positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The index of each id in `sorted_ids` (int32), -1 where it is not there."""
    at = np.searchsorted(sorted_ids, ids).astype(np.int32)
    found = np.zeros(len(ids), dtype=bool) if len(sorted_ids) == 0 else sorted_ids[np.minimum(at, len(sorted_ids) - 1)] == ids
    return np.where(found, at, np.int32(-1))


def fit_als(likes: sp.csr_matrix, settings: Settings) -> AlternatingLeastSquares:
    with threadpool_limits(1, "blas"):  # implicit checks the BLAS threads when the model is created
        model = AlternatingLeastSquares(
            factors=settings.als_factors,
            regularization=settings.als_regularization,
            iterations=settings.als_iterations,
            random_state=settings.split_seed,
        )
        model.fit(likes, show_progress=False)
    return model


def popular_topk(popularity: np.ndarray, seen: sp.csr_matrix, n: int, block_cells: int = 1 << 22) -> np.ndarray:
    """Top-n most popular item rows per row of `seen`, excluding seen items (PAD pads short rows).

    Rows go in blocks of about `block_cells` (rows x items looked at) cells: a user who has seen much
    of the catalogue makes every row look deep, and a fixed number of rows would then cost gigabytes.
    """
    order = np.argsort(-popularity, kind="stable")
    depth = min(len(order), n + int(np.diff(seen.indptr).max(initial=0)))
    head = order[:depth]
    batch = max(1, block_cells // max(depth, 1))
    out = np.full((seen.shape[0], n), PAD, dtype=np.int64)
    for start in range(0, seen.shape[0], batch):
        unseen = np.asarray(seen[start : start + batch][:, head].todense()) == 0
        place = np.cumsum(unseen, axis=1, dtype=np.int32)  # 1-based place of each unseen item in the row's list
        rows, cols = np.nonzero(unseen & (place <= n))
        out[start + rows, place[rows, cols] - 1] = head[cols]
    return out


@dataclass(frozen=True)
class Holdout:
    """One seeded split of the likes and what to filter from recommendations."""

    train: sp.csr_matrix
    test: sp.csr_matrix
    seen: sp.csr_matrix  # every rated pair except the held-out likes: filtered from recommendations
    users: np.ndarray  # user rows with at least one held-out like
    user_ids: np.ndarray | None = None  # external id of each user row / item column, when needed
    item_ids: np.ndarray | None = None

    @property
    def n_relevant(self) -> np.ndarray:
        return np.diff(self.test.indptr)[self.users]


def split_holdout(likes: sp.csr_matrix, seen: sp.csr_matrix, test_fraction: float, seed: int) -> Holdout:
    """implicit's train_test_split of the likes (the original experiment's protocol)."""
    train, test = train_test_split(likes, train_percentage=1 - test_fraction, random_state=seed)
    train, test = train.tocsr(), test.tocsr()
    seen = (seen - (test > 0).astype(np.float32)).tocsr()
    seen.eliminate_zeros()
    return Holdout(train, test, seen, np.flatnonzero(np.diff(test.indptr) > 0))


def split_interactions(data: Interactions, test_fraction: float, seed: int) -> Holdout:
    """split_holdout of all the likes, with the external id of each user row and item column."""
    holdout = split_holdout(data.likes, data.seen, test_fraction, seed)
    return dataclasses.replace(holdout, user_ids=data.user_ids, item_ids=data.item_ids)


def als_topn(model: AlternatingLeastSquares, holdout: Holdout, n: int) -> np.ndarray:
    """The n best unseen items of every test user."""
    with threadpool_limits(1, "blas"):
        ids, _scores = model.recommend(holdout.users, holdout.seen[holdout.users], N=n, filter_already_liked_items=True)
    return ids


def popularity_topn(holdout: Holdout, n: int) -> np.ndarray:
    """The n most liked (in training) unseen items of every test user."""
    popularity = np.asarray((holdout.train > 0).sum(axis=0)).ravel().astype(float)
    return popular_topk(popularity, holdout.seen[holdout.users], n)


METRIC_COLUMNS = {"method": pl.String, "metric": pl.String, "k": pl.Int64, "value": pl.Float64}


def holdout_metrics(data: Interactions, settings: Settings) -> pl.DataFrame:
    """Holdout metrics of ALS and of popularity on one seeded split of the likes (none when too few likes to hold any out)."""
    holdout = split_interactions(data, settings.test_fraction, settings.split_seed)
    if len(holdout.users) == 0:
        return pl.DataFrame(schema=METRIC_COLUMNS)
    model = fit_als(holdout.train, settings)
    recommended = {"als": als_topn(model, holdout, EVAL_DEPTH), "popularity": popularity_topn(holdout, EVAL_DEPTH)}
    relevant = holdout.test[holdout.users]
    return pl.concat(
        [
            ranking_metrics(hit_matrix(ids, relevant), holdout.n_relevant).with_columns(method=pl.lit(method))
            for method, ids in recommended.items()
        ]
    ).select("method", "metric", "k", "value")


def metric_value(metrics: pl.DataFrame, method: str, metric: str, k: int) -> float:
    return metrics.filter(method=method, metric=metric, k=k)["value"].item()


def model_version(run_date: date, fingerprint: str, settings: Settings) -> str:
    params = json.dumps(als_params(settings), sort_keys=True)
    digest = hashlib.sha256(f"{fingerprint}|{params}".encode()).hexdigest()[:10]
    return f"{run_date:%Y%m%d}-{digest}"


def als_params(settings: Settings) -> dict[str, float | int]:
    return {
        "factors": settings.als_factors,
        "regularization": settings.als_regularization,
        "iterations": settings.als_iterations,
        "alpha": settings.als_alpha,
        "like_threshold": settings.like_threshold,
        "split_seed": settings.split_seed,
        "test_fraction": settings.test_fraction,
    }


def save_model(directory: Path, model: AlternatingLeastSquares, data: Interactions) -> None:
    """Factors and the id maps, written to a temp dir and renamed into place.

    A directory already there is the unregistered leftover of a crashed run: it is replaced.
    """
    tmp = directory.with_name(directory.name + ".tmp")
    for leftover in (tmp, directory):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(str(tmp / "als.npz"))
    np.save(tmp / "user_ids.npy", data.user_ids)
    np.save(tmp / "item_ids.npy", data.item_ids)
    tmp.rename(directory)


def load_model(directory: Path) -> tuple[AlternatingLeastSquares, np.ndarray, np.ndarray]:
    model = AlternatingLeastSquares.load(str(directory / "als.npz"))
    return model, np.load(directory / "user_ids.npy"), np.load(directory / "item_ids.npy")


def promotion_decision(new_ndcg: float | None, current: tuple[str, float] | None, tolerance: float) -> tuple[bool, str]:
    """Promote when not worse than the serving model by more than `tolerance` (new_ndcg None: too few likes to evaluate)."""
    if current is None:
        return True, "promoted: first model" + (" (too few likes to evaluate it)" if new_ndcg is None else "")
    version, current_ndcg = current
    if new_ndcg is None:
        return False, f"kept {version}: too few likes to evaluate the new model"
    if new_ndcg >= current_ndcg - tolerance:
        return True, f"promoted: NDCG@10 {new_ndcg:.4f} vs {current_ndcg:.4f} of {version}"
    return False, f"kept {version}: new NDCG@10 {new_ndcg:.4f} is worse than {current_ndcg:.4f} by more than {tolerance}"


def has_model(models_dir: Path, version: str) -> bool:
    return (models_dir / version / "als.npz").exists()


def serving_model(con: duckdb.DuckDBPyConnection, models_dir: Path) -> tuple[str, float] | None:
    """The newest promoted model whose directory still exists: a deleted directory cannot serve."""
    return next((row for row in run(con, "train/current_model") if has_model(models_dir, row[0])), None)


def train_model(con: duckdb.DuckDBPyConnection, settings: Settings) -> TrainResult:
    """Evaluate on a holdout, refit on all likes, save, and promote if not worse than the current model.

    Tonight's model is reused when already trained, unless its directory was lost: then it is trained again.
    """
    version = model_version(settings.run_date, run(con, "train/fingerprint")[0][0], settings)
    existing = run(con, "train/find_model", {"model_version": version})
    if existing and has_model(settings.models_dir, version):
        return _resumed(con, settings, version, existing[0])

    data = load_interactions(con, settings.like_threshold, settings.als_alpha)
    if data.likes.nnz == 0:
        raise InputError(f"no likes (rating > {settings.like_threshold}) to train on")
    metrics = holdout_metrics(data, settings)
    model = fit_als(data.likes, settings)
    current = serving_model(con, settings.models_dir)
    save_model(settings.models_dir / version, model, data)

    new_ndcg = None if metrics.is_empty() else metric_value(metrics, "als", "ndcg", 10)
    promoted, decision = promotion_decision(new_ndcg, current, settings.promote_tolerance)
    with transaction(con):
        run(
            con,
            "train/record_model",
            {
                "model_version": version,
                "run_date": settings.run_date,
                "trained_at": datetime.now(timezone.utc).replace(tzinfo=None),
                "params": json.dumps(als_params(settings)),
                "n_users": len(data.user_ids),
                "n_items": len(data.item_ids),
                "n_likes": data.likes.nnz,
                "ndcg_at_10": new_ndcg or 0.0,  # unevaluated: any evaluated model may replace it
                "promoted": promoted,
                "decision": decision,
            },
        )
        with db.registered(con, "new_metrics", metrics):
            run(con, "train/record_metrics", {"model_version": version})
    serving = version if promoted else current[0]
    return TrainResult(version, promoted, serving, decision, metrics)


def _resumed(con: duckdb.DuckDBPyConnection, settings: Settings, version: str, row: tuple) -> TrainResult:
    _, promoted, decision, _ = row
    current = serving_model(con, settings.models_dir)
    metrics = db.frame(con, "train/model_metrics", {"model_version": version})
    return TrainResult(version, promoted, current[0] if current else version, decision, metrics, resumed=True)


@task(name="train", retries=0)
def train(settings: Settings) -> TrainResult:
    """Prefect task: retrain ALS on everything ingested so far."""
    with connect(settings) as con:
        return train_model(con, settings)
