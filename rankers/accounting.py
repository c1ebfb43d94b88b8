"""The llm ranker's accounting: per user its repairs, token estimates, outcome and calls, as rows of
`llm_calls` / `llm_users` (stored with the batch by rankers/llm.py) and summarised in the run log."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from rankers.base import run_logger
from tasks.llm_client import Attempt, redact
from tasks.settings import Settings


@dataclass
class UserStats:
    hallucinated_ids: int = 0
    duplicate_ids: int = 0
    missing_ids: int = 0
    stripped_citations: int = 0
    explanation_fallbacks: int = 0
    repair_retries: int = 0
    prompt_tokens_est: int = 0
    recipe_tokens_est: int = 0


@dataclass
class UserResult:
    rows: pl.DataFrame
    stats: UserStats
    ranker: str
    reason: str | None
    attempts: list[Attempt] = field(default_factory=list)


CALL_SCHEMA = {"user_id": pl.Int64, "request_key": pl.String, "attempt": pl.Int32, "response_format": pl.String,
               "outcome": pl.String, "http_status": pl.Int32, "latency_ms": pl.Float64,
               "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64}


def calls_frame(attempts: dict[int, list[Attempt]]) -> pl.DataFrame:
    """Rows of llm_calls (without run_date) of each user's attempts."""
    return pl.DataFrame([{"user_id": uid, **a.row()} for uid, user_attempts in attempts.items() for a in user_attempts],
                        schema=CALL_SCHEMA)


def users_frame(user_ids: list[int], results: list[UserResult]) -> pl.DataFrame:
    """Rows of llm_users (without run_date) of a batch's users."""
    return pl.DataFrame([
        {"user_id": uid, "ranker": r.ranker, "fallback_reason": r.reason, **r.stats.__dict__}
        for uid, r in zip(user_ids, results)
    ], infer_schema_length=None)  # a reason may first appear after 100 users (e.g. the circuit opening late)


def log_batch(users: pl.DataFrame, calls: pl.DataFrame, summary: pl.DataFrame, settings: Settings) -> None:
    """The batch's users, fallbacks, calls and cache hits, and the run's accounting so far (llm/summary.sql)."""
    logger = run_logger()
    fallbacks = users.filter(pl.col("ranker") == "als_fallback")["fallback_reason"].to_list() if users.height else []
    hits = calls.filter(pl.col("outcome") == "cache_hit").height
    logger.info("llm ranker batch: %d users, %d fallbacks, %d calls, %d cache hits%s", users.height,
                len(fallbacks), calls.height - hits, hits, f" (first fallback: {fallbacks[0]})" if fallbacks else "")
    if summary.height:
        line = ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                         for key, value in summary.row(0, named=True).items())
        logger.info(redact(f"llm accounting so far: {line}", settings))
