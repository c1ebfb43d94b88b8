"""Rank: re-order each user's candidates, keep the top K and explain each from its evidence.

A ranker is anything with a `name` and `rank(candidates, k) -> ranked rows`; `als` keeps the
ALS order, the `llm` backend (tasks/llm_rank.py) plugs into the same interface.
"""

from __future__ import annotations

from typing import Protocol

import polars as pl
from prefect import task

from tasks import db
from tasks.errors import retry_unless_expected
from tasks.settings import Settings

RANKED_COLUMNS = (
    "user_id", "rank", "item_id", "score", "explanation", "evidence_item_ids",
    "ranker", "model_version", "prompt_version", "fallback_reason",
)  # fmt: skip


class Ranker(Protocol):
    name: str

    def rank(self, candidates: pl.DataFrame, k: int) -> pl.DataFrame:
        """Candidates of some users (rank/batch_candidates.sql) -> RANKED_COLUMNS, k rows per user."""
        ...


def grounded_explanation() -> pl.Expr:
    """The explanation from the evidence titles, lead item first, and the genre the item shares with it:
    "Shares Comedy with A; you also liked B and C." or "Because you liked A, B and C." without a shared
    genre. Popular items say why instead."""
    titles, genre = pl.col("evidence_titles"), pl.col("shared_genre")
    n = titles.list.len()
    lead, rest = titles.list.first(), titles.list.slice(1)
    return (
        pl.when(pl.col("source") == "popular")
        .then(pl.lit("One of the most liked titles overall; rate a few titles for personal picks."))
        .when(n == 0)
        .then(pl.lit("Fits the overall pattern of your ratings."))
        .when(genre.is_not_null() & (n == 1))
        .then(pl.format("Shares {} with {}, which you liked.", genre, lead))
        .when(genre.is_not_null())
        .then(pl.format("Shares {} with {}; you also liked {}.", genre, lead, spoken_list(rest)))
        .otherwise(pl.format("Because you liked {}.", spoken_list(titles)))
    )


def spoken_list(titles: pl.Expr) -> pl.Expr:
    """["A", "B", "C"] -> "A, B and C"."""
    n = titles.list.len()
    head = titles.list.slice(0, n - 1).list.join(", ")
    return pl.when(n == 1).then(titles.list.first()).otherwise(pl.format("{} and {}", head, titles.list.last()))


class AlsRanker:
    """Keeps the ALS order; explains each item by the history items that drove its score."""

    name = "als"

    def rank(self, candidates: pl.DataFrame, k: int) -> pl.DataFrame:
        return (
            candidates.sort("user_id", "als_rank")
            .group_by("user_id", maintain_order=True)
            .head(k)
            .with_columns(
                rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("user_id"),
                score=pl.col("als_score"),
                explanation=grounded_explanation(),
                ranker=pl.lit(self.name),
                prompt_version=pl.lit(None, dtype=pl.String),
                fallback_reason=pl.lit(None, dtype=pl.String),
            )
            .select(RANKED_COLUMNS)
        )


def make_ranker(settings: Settings) -> Ranker:
    if settings.ranker == "llm":
        from tasks.llm_rank import LlmRanker

        return LlmRanker(settings)
    return AlsRanker()


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
