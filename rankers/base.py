"""What every ranker shares: the Ranker protocol, the ranked columns and the grounded explanation.

A ranker is anything with a `name` and `rank(candidates, k) -> ranked rows`: `als` (rankers/als.py)
keeps the ALS order, `llm` (rankers/llm.py) re-orders with an LLM. This module imports neither.
"""

from __future__ import annotations

import logging
from typing import Protocol

import polars as pl

RANKED_COLUMNS = (
    "user_id", "rank", "item_id", "score", "explanation", "evidence_item_ids",
    "ranker", "model_version", "prompt_version", "fallback_reason",
)  # fmt: skip

log = logging.getLogger("rankers")


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


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a flow/task run, else the rankers' logger."""
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:
        return log
