"""The `als` ranker: keeps the ALS order."""

from __future__ import annotations

import polars as pl

from rankers.base import RANKED_COLUMNS, grounded_explanation


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
