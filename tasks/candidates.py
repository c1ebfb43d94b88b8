"""Candidates: the N best unseen items per user from the serving ALS model, with the history
items that drove each score (the evidence every explanation must cite)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from threadpoolctl import threadpool_limits

from tasks import db, fanout
from tasks.errors import retry_unless_expected
from tasks.settings import Settings
from tasks.train import PAD, Interactions, latest_ratings, load_model, popular_topk, to_matrices

def explain_batch(
    model: AlternatingLeastSquares, likes: sp.csr_matrix, user_rows: np.ndarray, item_rows: np.ndarray, top: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per (user, candidate): the `top` liked items contributing most to the ALS score, best first, and their contributions.

    The maths of implicit's `explain()` (Hu, Koren & Volinsky, section 5), solved once per user for
    all its candidates at once. Returns item rows and contributions shaped (users, candidates, top),
    PAD and 0 where fewer items contribute positively.
    """
    factors = model.item_factors
    base = factors.T @ factors + model.regularization * np.eye(factors.shape[1], dtype=factors.dtype)
    evidence = np.full((len(user_rows), item_rows.shape[1], top), PAD, dtype=np.int64)
    strength = np.zeros(evidence.shape, dtype=np.float64)
    for n, (user, candidates) in enumerate(zip(user_rows, item_rows)):
        history = likes.indices[likes.indptr[user] : likes.indptr[user + 1]]
        confidence = likes.data[likes.indptr[user] : likes.indptr[user + 1]]
        history_factors = factors[history]
        weights = base + (history_factors.T * (confidence - 1)) @ history_factors
        weighted = np.linalg.solve(weights, factors[candidates].T)
        contribution = (history_factors @ weighted) * confidence[:, None]  # history x candidates
        best = top_rows(contribution, top)
        values = np.take_along_axis(contribution, best, axis=0)
        evidence[n, :, : best.shape[0]] = np.where(values > 0, history[best], PAD).T
        strength[n, :, : best.shape[0]] = np.maximum(values, 0).T
    return evidence, strength


def select_evidence(evidence: np.ndarray, strength: np.ndarray, min_share: float, closeness: float) -> np.ndarray:
    """The evidence each explanation cites, in the order it names it (users x candidates x top, PAD-padded).

    Keeps the items contributing at least `min_share` of the strongest one (an item that barely moved
    the score is not cited), and leads with the item that the user's earlier candidates (ALS order)
    led with least among those within `closeness` of the strongest: close contributions let a list
    vary its reasons, a clearly stronger driver is always named first.
    """
    users, depth, top = evidence.shape
    leads = np.full((users, depth), PAD, dtype=np.int64)
    chosen = np.full(evidence.shape, PAD, dtype=np.int64)
    positions = np.arange(top)
    for j in range(depth):
        items, values = evidence[:, j], strength[:, j]
        strongest = values[:, :1]
        kept = (items >= 0) & (values >= min_share * strongest)
        close = kept & (values >= closeness * strongest)
        times_led = (items[:, :, None] == leads[:, None, :j]).sum(axis=2)
        lead = np.argmin(np.where(close, times_led, np.iinfo(np.int64).max), axis=1)  # ties: the stronger
        leads[:, j] = items[np.arange(users), lead]
        order = np.argsort(np.where(positions == lead[:, None], -1, np.where(kept, positions, top + positions)), axis=1)
        chosen[:, j] = np.where(np.take_along_axis(kept, order, axis=1), np.take_along_axis(items, order, axis=1), PAD)
    return chosen


def top_rows(values: np.ndarray, top: int) -> np.ndarray:
    """Row indices of the `top` largest values of each column, largest first (a partition first: long histories)."""
    if values.shape[0] > top:
        values_part = np.argpartition(-values, top - 1, axis=0)[:top]
        order = np.argsort(-np.take_along_axis(values, values_part, axis=0), axis=0, kind="stable")
        return np.take_along_axis(values_part, order, axis=0)
    return np.argsort(-values, axis=0, kind="stable")


def als_candidates(
    model: AlternatingLeastSquares, likes: sp.csr_matrix, seen: sp.csr_matrix, user_rows: np.ndarray, n: int, settings: Settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item rows, scores, evidence rows) of up to n best unseen items for each user row, PAD beyond a
    user's unseen items; the evidence as `select_evidence` cites it.

    implicit pads a user with fewer unseen items than n with seen ones (scored about -3.4e38): they become PAD.
    """
    n = min(n, model.item_factors.shape[0])
    with threadpool_limits(1, "blas"):
        ids, scores = model.recommend(user_rows, seen[user_rows], N=n, filter_already_liked_items=True)
        ids, scores = np.atleast_2d(ids), np.atleast_2d(scores)
        ids = np.where(unseen(ids, seen[user_rows]), ids, PAD)
        evidence, strength = explain_batch(model, likes, user_rows, np.maximum(ids, 0), settings.evidence_items)
    return ids, scores, select_evidence(evidence, strength, settings.evidence_min_share, settings.evidence_closeness)


def unseen(rows: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
    """Mask of the item rows (users x ranks, PAD allowed) that are real and not in the user's seen row."""
    if rows.size == 0:
        return np.zeros(rows.shape, dtype=bool)
    users = np.broadcast_to(np.arange(rows.shape[0])[:, None], rows.shape)
    return (rows >= 0) & (np.asarray(seen[users.ravel(), np.maximum(rows, 0).ravel()]).reshape(rows.shape) == 0)


def long_frame(
    user_ids: np.ndarray, item_ids: np.ndarray, rows: np.ndarray, scores: np.ndarray, evidence: np.ndarray, source: str
) -> pl.DataFrame:
    """Users x ranks item rows (evidence: users x ranks x top item rows) -> one row per candidate, with the
    external ids of `item_ids`; PAD rows and evidence are dropped."""
    n_users, depth = rows.shape
    cells, top = n_users * depth, evidence.shape[-1]
    flat_evidence = evidence.reshape(cells, top)
    evidence_ids = pl.Series("evidence_item_ids", item_ids[np.maximum(flat_evidence, 0)].ravel() if cells else [], pl.Int64)
    evidence_lists = (
        evidence_ids.to_frame()
        .select(pl.when(pl.Series((flat_evidence >= 0).ravel())).then(pl.col("evidence_item_ids")))
        .to_series()
        .reshape((cells, top))
        .arr.to_list()
        .list.drop_nulls()
    )
    frame = pl.DataFrame(
        {
            "user_id": pl.Series(np.repeat(user_ids, depth), dtype=pl.Int64),
            "item_id": pl.Series(item_ids[np.maximum(rows, 0)].ravel() if cells else [], dtype=pl.Int64),
            "als_rank": np.tile(np.arange(1, depth + 1, dtype=np.int32), n_users),
            "als_score": scores.ravel().astype(np.float64),
            "evidence_item_ids": evidence_lists,
        }
    )
    return frame.filter(pl.Series(rows.ravel() >= 0)).with_columns(source=pl.lit(source))


@dataclass
class AlsBatch:
    """What ALS candidates of a batch of users need, and nothing of the database: the model restricted to
    the batch's user rows, and the batch's rows of the likes and seen matrices."""

    user_ids: np.ndarray  # external ids of the batch's users
    item_ids: np.ndarray  # external id of each item column
    model: AlternatingLeastSquares  # user factors of the batch's rows, every item factor
    likes: sp.csr_matrix
    seen: sp.csr_matrix


def als_batches(model: AlternatingLeastSquares, data: Interactions, rows: np.ndarray, size: int) -> Iterator[AlsBatch]:
    """The user rows `rows` of `data` in batches of `size`."""
    for start in range(0, max(len(rows), 1), size):  # no rows: one empty batch
        part = rows[start : start + size]
        with threadpool_limits(1, "blas"):  # implicit checks the BLAS threads when a model is created
            batch_model = AlternatingLeastSquares(factors=model.factors, regularization=model.regularization)
        batch_model.user_factors, batch_model.item_factors = model.user_factors[part], model.item_factors
        yield AlsBatch(data.user_ids[part], data.item_ids, batch_model, data.likes[part], data.seen[part])


def als_batch_candidates(settings: Settings, batch: AlsBatch) -> pl.DataFrame:
    """The ALS candidates of one batch with their evidence (long_frame rows): a function of its inputs."""
    rows = np.arange(len(batch.user_ids))
    items, scores, evidence = als_candidates(batch.model, batch.likes, batch.seen, rows, settings.n_candidates, settings)
    return long_frame(batch.user_ids, batch.item_ids, items, scores, evidence, "als")


def in_process(settings: Settings, batches: Iterator[AlsBatch]) -> list[pl.DataFrame]:
    """Every batch's candidates in this process, one after the other."""
    return [als_batch_candidates(settings, batch) for batch in batches]


def build_candidates(con, settings: Settings, serving_version: str,
                     fan_out: Callable[[Settings, Iterator[AlsBatch]], list[pl.DataFrame]] = in_process) -> pl.DataFrame:
    """Candidates of every known user: ALS for users with likes and unseen items the model knows, popular items otherwise.

    The ALS part runs in batches of `candidate_users_per_batch` users through `fan_out` (this process, or
    candidate tasks of the flow's task runner). A user gets only real unseen items: fewer than n_candidates (none
    when they have seen the whole catalogue) is fine.
    """
    ratings = latest_ratings(con, settings.like_threshold)
    als = als_candidates_of_all(settings, serving_version, ratings, fan_out)
    all_users = db.frame(con, "candidates/users")["user_id"].to_numpy()
    cold_users = np.setdiff1d(all_users, als["user_id"].unique().to_numpy())
    return pl.concat([als, popular_candidates(con, settings, ratings, cold_users)])


def als_candidates_of_all(settings: Settings, serving_version: str, ratings: pl.DataFrame,
                          fan_out: Callable[[Settings, Iterator[AlsBatch]], list[pl.DataFrame]]) -> pl.DataFrame:
    """The ALS candidates of every user the model knows with likes (the matrices live only while they are made)."""
    model, model_users, model_items = load_model(settings.models_dir / serving_version)
    data = to_matrices(ratings, model_users, model_items, settings.als_alpha)
    als_rows = np.flatnonzero(np.diff(data.likes.indptr) > 0)
    return pl.concat(fan_out(settings, als_batches(model, data, als_rows, settings.candidate_users_per_batch)))


def popular_candidates(con, settings: Settings, ratings: pl.DataFrame, users: np.ndarray) -> pl.DataFrame:
    """The most liked unseen catalogue items for users ALS cannot serve; score = share of the top item's likes."""
    popularity = db.frame(con, "candidates/popularity", {"like_threshold": settings.like_threshold})
    items, likes = popularity["item_id"].to_numpy(), popularity["likes"].to_numpy().astype(float)
    seen = to_matrices(ratings.filter(pl.col("user_id").is_in(users)), users, items, settings.als_alpha).seen
    rows = popular_topk(likes, seen, settings.n_candidates)
    scores = np.where(rows >= 0, likes[np.maximum(rows, 0)] / max(likes.max(initial=0), 1), 0.0)
    return long_frame(users, items, rows, scores, np.full((*rows.shape, 1), PAD), "popular")


def store_candidates(con, frame: pl.DataFrame, settings: Settings, model_version: str) -> None:
    """Replace this run_date's candidates, and drop its ranked rows made from the old ones, atomically."""
    params = {"run_date": settings.run_date}
    with db.transaction(con):
        db.run(con, "candidates/replace", params)
        db.run(con, "rank/clear", params)
        with db.registered(con, "new_candidates", frame):
            db.run(con, "candidates/insert", params | {"model_version": model_version})


@task(name="candidate-batch", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_expected,
      cache_policy=NO_CACHE)
def candidate_batch(settings: Settings, batch: AlsBatch) -> pl.DataFrame:
    """Prefect task: the ALS candidates of one batch of users (a thread of the flow, or a Dask worker process)."""
    return als_batch_candidates(settings, batch)


def on_task_runner(settings: Settings, batches: Iterator[AlsBatch]) -> list[pl.DataFrame]:
    """Every batch's candidates as a task of the flow's task runner, in batch order, at most
    `candidate_batches_in_flight` at once (in this process when the stage runs outside a flow).

    Batches are made as they are submitted: all of them at once held a second copy of the matrices
    (2,381 MiB against 1,747 one by one at 20M ratings)."""
    if FlowRunContext.get() is None:
        return in_process(settings, batches)
    return fanout.bounded(partial(candidate_batch.submit, settings), batches, settings.candidate_batches_in_flight)


@task(name="candidates")
def candidates(settings: Settings, serving_version: str) -> dict[str, int]:
    """Prefect task: every user's candidates (ALS batches fanned out over candidate tasks), reused when this
    run_date already has them from this model; stored by this process in one transaction."""
    params = {"run_date": settings.run_date, "model_version": serving_version}
    with db.connect(settings) as con:
        if not db.run(con, "candidates/existing", params):
            frame = build_candidates(con, settings, serving_version, on_task_runner)
            store_candidates(con, frame, settings, serving_version)
        counts = db.run(con, "candidates/existing", params)
    return {f"{source}_users": users for source, users, _ in counts} | {"rows": sum(rows for *_, rows in counts)}
