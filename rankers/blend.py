"""The llm ranker's final order: each call's order as positions, aggregated over permutations (a Borda
count), blended with the normalised ALS score (`llm_blend_weight`), liked before disliked."""

from __future__ import annotations

import polars as pl

from rankers.base import RANKED_COLUMNS
from rankers.context import Pick, UserContext
from tasks.settings import Settings

Evidence = tuple[str | None, list[int]]  # a candidate's explanation (None: the grounded ALS one) and evidence item ids


def call_positions(n: int) -> list[float]:
    """The positions of one call's n ordered candidates: 1 (first) .. 0 (last); 1 for a single one."""
    last = max(1, n - 1)
    return [1.0 - i / last if n > 1 else 1.0 for i in range(n)]


def aggregate(calls: list[list[Pick]]) -> tuple[dict[int, float], dict[int, bool], dict[int, Evidence]]:
    """Over every call of a user (permutations, chunks): each candidate's mean position, the majority's
    like (ties: like) and the first usable explanation with its evidence."""
    positions: dict[int, list[float]] = {}
    likes: dict[int, list[bool]] = {}
    picks: dict[int, Evidence] = {}
    for ordered in calls:
        for (index, like, explanation, evidence), position in zip(ordered, call_positions(len(ordered))):
            positions.setdefault(index, []).append(position)
            likes.setdefault(index, []).append(like)
            if picks.get(index, (None,))[0] is None:
                picks[index] = (explanation, evidence)
    mean = {index: sum(values) / len(values) for index, values in positions.items()}
    liked = {index: 2 * sum(votes) >= len(votes) for index, votes in likes.items()}
    return mean, liked, picks


def normalised(scores: list[float]) -> list[float]:
    """Min-max scaled to 0..1 (all 1 when equal)."""
    low, high = min(scores), max(scores)
    return [(score - low) / (high - low) if high > low else 1.0 for score in scores]


def blend_score(position: float, als_norm: float, like: bool, weight: float, liked_first: bool) -> float:
    """weight * LLM position + (1 - weight) * normalised ALS score, + 1 for a liked item when liked first."""
    blend = weight * position + (1 - weight) * als_norm
    return blend + (1.0 if like and liked_first else 0.0)


def final_rows(context: UserContext, k: int, position: dict[int, float], liked: dict[int, bool],
               picks: dict[int, Evidence], settings: Settings) -> tuple[pl.DataFrame, int]:
    """The user's top k (RANKED_COLUMNS) by blend score (ties: ALS order), and how many answered
    explanations were replaced by the grounded ALS one."""
    s = settings
    als_norm = normalised([c["als_score"] for c in context.candidates])
    rows, fallbacks = [], 0
    for index, candidate in enumerate(context.candidates):
        explanation, evidence = picks.get(index, (None, []))
        if explanation is None:
            fallbacks += int(index in picks)
            explanation, evidence = candidate["als_explanation"], list(candidate["evidence_item_ids"])
        score = blend_score(position.get(index, 0.0), als_norm[index], liked.get(index, False), s.llm_blend_weight,
                            s.llm_liked_first)
        rows.append({**candidate, "score": score, "explanation": explanation, "evidence_item_ids": evidence})
    rows.sort(key=lambda r: (-r["score"], r["als_rank"]))
    out = pl.DataFrame(rows[:k], schema_overrides={"evidence_item_ids": pl.List(pl.Int64)}, infer_schema_length=None)
    frame = out.with_columns(
        rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32),
        ranker=pl.lit("llm"),
        prompt_version=pl.lit(s.llm_prompt_version),
        fallback_reason=pl.lit(None, dtype=pl.String),
    ).select(RANKED_COLUMNS)
    return frame, fallbacks
