"""Rank: re-order each user's candidates, keep the top K and explain each from its evidence.

The pipeline stage: the users still to rank in batches, each batch ranked by the configured ranker
(rankers/: `als` keeps the ALS order, `llm` re-orders with an LLM) and stored.
"""

from __future__ import annotations

import polars as pl
from prefect import task

from rankers import make_ranker
from rankers.base import Ranker
from tasks import db
from tasks.errors import retry_unless_expected
from tasks.settings import Settings


def user_batches(con, settings: Settings, batch_size: int | None = None) -> list[list[int]]:
    """Users of this run_date not ranked yet as this run would rank them, in batches (a resumed run skips finished batches)."""
    params = {"run_date": settings.run_date, "batch_size": batch_size or settings.users_per_batch,
              "ranker": settings.ranker, "k": settings.k}  # fmt: skip
    return db.frame(con, "rank/user_batches", params)["users"].to_list()


def pending_batches(settings: Settings) -> list[list[int]]:
    """user_batches on the run's own connection."""
    with db.connect(settings) as con:
        return user_batches(con, settings)


def rank_users(con, settings: Settings, ranker: Ranker, user_ids: list[int]) -> pl.DataFrame:
    """Rank one batch of users and store the result, replacing any earlier attempt."""
    params = {"run_date": settings.run_date, "user_ids": user_ids}
    candidates = db.frame(con, "rank/batch_candidates", params)
    ranked = ranker.rank(candidates, settings.k)
    with db.transaction(con):
        db.run(con, "rank/replace_batch", params)
        with db.registered(con, "new_ranked", ranked):
            db.run(con, "rank/insert_batch", {"run_date": settings.run_date})
    return ranked


@task(name="rank-batch", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_expected)
def rank_batch(settings: Settings, user_ids: list[int]) -> dict[str, int]:
    """Prefect task: rank a batch of users; returns rows per ranker (als, llm, als_fallback)."""
    with db.connect(settings) as con:
        ranked = rank_users(con, settings, make_ranker(settings), user_ids)
    return dict(ranked.group_by("ranker").len().iter_rows())
