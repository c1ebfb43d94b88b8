"""The llm ranker's per-run cap: which users of a run_date may be sent to the LLM under llm_max_users."""

from __future__ import annotations

import threading

import polars as pl

from rankers.base import run_logger
from rankers.prompt import Request, contexts, requests
from tasks import db
from tasks.llm_client import LlmCache, cache_key
from tasks.settings import Settings

CAP_REACHED = "llm cap reached"
_plan_lock = threading.Lock()  # in-process rankers (gate, evaluation) of one process build a run's cap plan once


def request_keys(settings: Settings, user_requests: list[Request]) -> list[str]:
    """The cache keys of a user's requests."""
    return [cache_key(settings, r.messages, r.schema, r.max_tokens) for r in user_requests]


def admitted(con, settings: Settings) -> set[int]:
    """Users of this run_date that may be sent to the LLM under llm_max_users (built once per run_date).

    Users whose every request is cached cost nothing and are always admitted. Of the others, at
    most llm_max_users: users never ranked by the LLM first, then those with the most candidates
    that were not among their candidates when the LLM last ranked them (sql/llm/plan_changes.sql).
    """
    s = settings
    params = {"run_date": s.run_date, "max_users": s.llm_max_users, "model": s.llm_model,
              "prompt_version": s.llm_prompt_version}
    with _plan_lock:
        rows = db.run(con, "llm/plan_get", params)
        if rows:
            return {uid for uid, ok in rows if ok}
        changes = db.frame(con, "llm/plan_changes", {"run_date": s.run_date})
        all_candidates = db.frame(con, "rank/batch_candidates",
                                  {"run_date": s.run_date, "user_ids": changes["user_id"].to_list(), "max_rank": None})
        keys = {c.user_id: request_keys(s, requests(c, s)) for c in contexts(con, all_candidates, s)}
        answered = {row[0] for row in db.run(con, "llm/cache_has",
                                             {"request_keys": [key for user_keys in keys.values() for key in user_keys]})}
        plan = changes.with_columns(
            cached=pl.col("user_id").replace_strict(
                {uid: all(key in answered for key in user_keys) for uid, user_keys in keys.items()},
                default=False, return_dtype=pl.Boolean))
        with db.transaction(con):
            db.run(con, "llm/plan_delete", {"run_date": s.run_date})
            with db.registered(con, "new_llm_plan", plan):
                db.run(con, "llm/plan_put", params)
        rows = db.run(con, "llm/plan_get", params)
    admitted_users = {uid for uid, ok in rows if ok}
    run_logger().info("llm cap: %d of %d users admitted (%d cached, at most %d uncached sent)", len(admitted_users),
                      len(rows), int(plan["cached"].sum()), s.llm_max_users)
    return admitted_users


def over_cap(settings: Settings, cache: LlmCache, user_requests: list[Request]) -> bool:
    """A user not admitted under the cap still ranks when every request is cached (it costs nothing)."""
    keys = request_keys(settings, user_requests)
    return len(cache.has(keys)) < len(keys)
