"""The llm ranker's accounting: per user its repairs, token estimates, outcome and calls, recorded in
`llm_calls` / `llm_users` and summarised in the run log."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import polars as pl

from rankers.base import run_logger
from tasks import db
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


def record(con, lock: threading.Lock, settings: Settings, user_ids: list[int], results: list[UserResult]) -> None:
    """A batch's calls into llm_calls and its users into llm_users (replacing an earlier attempt's), together."""
    s = settings
    calls = pl.DataFrame(
        [{"user_id": uid, **a.row()} for uid, r in zip(user_ids, results) for a in r.attempts],
        schema={"user_id": pl.Int64, "request_key": pl.String, "attempt": pl.Int32, "response_format": pl.String,
                "outcome": pl.String, "http_status": pl.Int32, "latency_ms": pl.Float64,
                "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64},
    )
    users = pl.DataFrame([
        {"user_id": uid, "ranker": r.ranker, "fallback_reason": r.reason, **r.stats.__dict__}
        for uid, r in zip(user_ids, results)
    ], infer_schema_length=None)  # a reason may first appear after 100 users (e.g. the circuit opening late)
    with lock, db.transaction(con):
        with db.registered(con, "new_llm_calls", calls):
            db.run(con, "llm/insert_calls", {"run_date": s.run_date})
        db.run(con, "llm/replace_users", {"run_date": s.run_date, "user_ids": user_ids})
        with db.registered(con, "new_llm_users", users):
            db.run(con, "llm/insert_users", {"run_date": s.run_date})


def log_batch(results: list[UserResult], summary: pl.DataFrame, settings: Settings) -> None:
    """The batch's users, fallbacks, calls and cache hits, and the run's accounting so far (llm/summary.sql)."""
    logger = run_logger()
    fallbacks = [r.reason for r in results if r.ranker == "als_fallback"]
    calls = sum(1 for r in results for a in r.attempts if a.outcome != "cache_hit")
    hits = sum(1 for r in results for a in r.attempts if a.outcome == "cache_hit")
    logger.info("llm ranker batch: %d users, %d fallbacks, %d calls, %d cache hits%s", len(results),
                len(fallbacks), calls, hits, f" (first fallback: {fallbacks[0]})" if fallbacks else "")
    if summary.height:
        line = ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                         for key, value in summary.row(0, named=True).items())
        logger.info(redact(f"llm accounting so far: {line}", settings))
