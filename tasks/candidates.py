"""Candidates: the N best unseen items per user from the serving ALS model, with the history
items that drove each score (the evidence every explanation must cite)."""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from prefect import task
from threadpoolctl import threadpool_limits

from tasks import db
from tasks.settings import Settings
from tasks.train import load_model, popular_topk, to_matrices

NO_EVIDENCE = -1


def explain_batch(
    model: AlternatingLeastSquares, likes: sp.csr_matrix, user_rows: np.ndarray, item_rows: np.ndarray, top: int
) -> np.ndarray:
    """Per (user, candidate): the `top` liked items contributing most to the ALS score, best first.

    The maths of implicit's `explain()` (Hu, Koren & Volinsky, section 5), solved once per user for
    all its candidates at once. Returns item indices shaped (users, candidates, top), -1 where fewer
    items contribute positively.
    """
    factors = model.item_factors
    base = factors.T @ factors + model.regularization * np.eye(factors.shape[1], dtype=factors.dtype)
    evidence = np.full((len(user_rows), item_rows.shape[1], top), NO_EVIDENCE, dtype=np.int64)
    for n, (user, candidates) in enumerate(zip(user_rows, item_rows)):
        history = likes.indices[likes.indptr[user] : likes.indptr[user + 1]]
        confidence = likes.data[likes.indptr[user] : likes.indptr[user + 1]]
        history_factors = factors[history]
        weights = base + (history_factors.T * (confidence - 1)) @ history_factors
        weighted = np.linalg.solve(weights, factors[candidates].T)
        contribution = (history_factors @ weighted) * confidence[:, None]  # history x candidates
        best = np.argsort(-contribution, axis=0)[:top]
        positive = np.take_along_axis(contribution, best, axis=0) > 0
        evidence[n, :, : best.shape[0]] = np.where(positive, history[best], NO_EVIDENCE).T
    return evidence


def als_candidates(
    model: AlternatingLeastSquares, likes: sp.csr_matrix, seen: sp.csr_matrix, user_rows: np.ndarray, n: int, top: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item rows, scores, evidence rows) of the n best unseen items for each user row."""
    with threadpool_limits(1, "blas"):
        ids, scores = model.recommend(user_rows, seen[user_rows], N=n, filter_already_liked_items=True)
        evidence = explain_batch(model, likes, user_rows, np.maximum(ids, 0), top)
    return ids, scores, evidence


def long_frame(user_ids: np.ndarray, item_ids: np.ndarray, scores: np.ndarray, evidence: np.ndarray, source: str) -> pl.DataFrame:
    """Users x ranks arrays (evidence: users x ranks x top) -> one row per candidate, padding dropped."""
    n_users, depth = item_ids.shape
    evidence_lists = pl.Series(evidence.reshape(n_users * depth, evidence.shape[-1])).arr.to_list()
    frame = pl.DataFrame(
        {
            "user_id": np.repeat(user_ids, depth),
            "item_id": item_ids.ravel(),
            "als_rank": np.tile(np.arange(1, depth + 1, dtype=np.int32), n_users),
            "als_score": scores.ravel().astype(np.float64),
            "evidence_item_ids": evidence_lists.list.eval(pl.element().filter(pl.element() != NO_EVIDENCE)),
        }
    )
    return frame.filter(pl.col("item_id") != NO_EVIDENCE).with_columns(source=pl.lit(source))


def external_ids(ids: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Index rows -> external ids, keeping -1 padding."""
    return np.where(ids >= 0, index[np.maximum(ids, 0)], NO_EVIDENCE)


def build_candidates(con, settings: Settings, serving_version: str) -> pl.DataFrame:
    """Candidates of every known user: ALS for users with likes the model knows, popular items otherwise."""
    model, model_users, model_items = load_model(settings.models_dir / serving_version)
    ratings = db.frame(con, "train/interactions")
    data = to_matrices(ratings, model_users, model_items, settings.like_threshold, settings.als_alpha)
    als_rows = np.flatnonzero(np.diff(data.likes.indptr) > 0)

    ids, scores, evidence = als_candidates(model, data.likes, data.seen, als_rows, settings.n_candidates, settings.evidence_items)
    als = long_frame(
        model_users[als_rows], external_ids(ids, model_items), scores, external_ids(evidence, model_items), "als"
    )

    all_users = db.frame(con, "candidates/users")["user_id"].to_numpy()
    cold_users = np.setdiff1d(all_users, model_users[als_rows])
    return pl.concat([als, popular_candidates(con, settings, ratings, cold_users)])


def popular_candidates(con, settings: Settings, ratings: pl.DataFrame, users: np.ndarray) -> pl.DataFrame:
    """The most liked unseen catalogue items for users ALS cannot serve; score = share of the top item's likes."""
    popularity = db.frame(con, "candidates/popularity", {"like_threshold": settings.like_threshold})
    items, likes = popularity["item_id"].to_numpy(), popularity["likes"].to_numpy().astype(float)
    seen = to_matrices(ratings, users, items, settings.like_threshold, settings.als_alpha).seen
    rows = popular_topk(likes, seen, settings.n_candidates)
    scores = np.where(rows >= 0, likes[np.maximum(rows, 0)] / max(likes.max(initial=0), 1), 0.0)
    no_evidence = np.full((*rows.shape, 1), NO_EVIDENCE)
    return long_frame(users, external_ids(rows, items), scores, no_evidence, "popular")


def store_candidates(con, frame: pl.DataFrame, settings: Settings, model_version: str) -> None:
    """Replace this run_date's candidates, and drop its ranked rows made from the old ones, atomically."""
    params = {"run_date": settings.run_date}
    with db.transaction(con):
        db.run(con, "candidates/replace", params)
        db.run(con, "rank/clear", params)
        with db.registered(con, "new_candidates", frame):
            db.run(con, "candidates/insert", params | {"model_version": model_version})


@task(name="candidates")
def candidates(settings: Settings, serving_version: str) -> dict[str, int]:
    """Prefect task: every user's candidates, reused when this run_date already has them from this model."""
    params = {"run_date": settings.run_date, "model_version": serving_version}
    with db.connect(settings.db_path) as con:
        if not db.run(con, "candidates/existing", params):
            store_candidates(con, build_candidates(con, settings, serving_version), settings, serving_version)
        counts = db.run(con, "candidates/existing", params)
    return {f"{source}_users": users for source, users, _ in counts} | {"rows": sum(rows for *_, rows in counts)}
