"""The `llm` ranker: an LLM re-orders each user's ALS candidates and explains each pick from
the user's history — repaired, blended with ALS, and never worse off than ALS.

This module is the orchestration: users on a thread pool, the LLM client and its cache, the cap,
the per-user flow and its fallback, the accounting. Per user: the prompts (rankers/prompt.py),
each answer repaired (rankers/answer.py) with one repair retry when unusable, and the final
order (rankers/blend.py). When the answer stays unusable, or the call fails, the user gets the
ALS order with ranker='als_fallback' and the reason. Users over `llm_max_users` (rankers/cap.py)
fall back unless their answers are cached. Accounting goes to `llm_calls` / `llm_users` and the
run log (rankers/accounting.py).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from rankers import cap
from rankers.accounting import UserResult, UserStats, log_batch, record
from rankers.als import AlsRanker
from rankers.answer import Unusable, repair_answer
from rankers.base import RANKED_COLUMNS
from rankers.blend import aggregate, final_rows
from rankers.context import Pick, UserContext, histories
from rankers.prompt import Request, answer_fields, load_prompt, repair_messages, requests, user_context, with_als_explanation
from rankers.recipe import recipe_tokens
from tasks import db, progress, stop
from tasks.llm_client import Answer, Attempt, CircuitOpen, LlmCache, LlmCallFailed, LlmClient, LlmUnavailable, estimate_tokens, redact
from tasks.settings import Settings

log = logging.getLogger(__name__)


class LlmRanker:
    """Ranker protocol (rankers/base.py): one batch of users' candidates -> RANKED_COLUMNS, k per user."""

    name = "llm"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prompt = load_prompt(settings.llm_prompt_version)
        self.fields = answer_fields(self.prompt)

    def rank(self, candidates: pl.DataFrame, k: int) -> pl.DataFrame:
        s = self.settings
        if candidates.is_empty():
            return AlsRanker().rank(candidates, k)
        candidates = with_als_explanation(candidates)
        user_ids = candidates["user_id"].unique(maintain_order=True).to_list()
        lock = threading.Lock()
        with db.connect(s) as con:
            user_histories = histories(con, user_ids, s)
            client = LlmClient(s, LlmCache(con, lock))
            try:
                admitted = cap.admitted(con, client, s) if s.llm_max_users is not None else None
                groups = candidates.partition_by("user_id", maintain_order=True, as_dict=True)
                work = [(uid, groups[(uid,)], user_histories.get(uid)) for uid in user_ids]
                results = self._rank_all_users(client, k, work, admitted)
            finally:
                client.close()
            record(con, lock, s, user_ids, results)
            summary = db.frame(con, "llm/summary", {"run_date": s.run_date})
        log_batch(results, summary, s)
        return pl.concat([r.rows for r in results], how="vertical_relaxed").select(RANKED_COLUMNS)

    def _rank_all_users(self, client: LlmClient, k: int, work: list[tuple], admitted: set[int] | None) -> list[UserResult]:
        """Every user of the batch on a pool of llm_concurrency threads. A stop request (Stopped) or an
        outage under llm_on_outage=fail (LlmUnavailable) cancels what is queued, waits for the running
        users (they give up within ~0.1 s) and propagates: nothing of the batch is written."""
        pool = ThreadPoolExecutor(max_workers=self.settings.llm_concurrency, thread_name_prefix="llm-rank")
        try:
            futures = [pool.submit(self._rank_and_report, client, k, *job, admitted) for job in work]
            results = [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if self.settings.llm_on_outage == "fail" and client.breaker.cause is not None:
            raise self._outage(client.breaker.cause)
        return results

    def _outage(self, cause: str) -> LlmUnavailable:
        """The failure of a run whose circuit opened under llm_on_outage=fail (noted in the stage's progress)."""
        tracker = progress.current()
        if tracker is not None:
            tracker.circuit_opened(f"llm circuit open: {cause}")
        return LlmUnavailable(f"llm circuit open: {cause} (RECS_LLM_ON_OUTAGE=fail; finished batches are kept)")

    def _rank_and_report(self, client: LlmClient, k: int, user_id: int, frame: pl.DataFrame, history: dict | None,
                         admitted: set[int] | None) -> UserResult:
        """One user, counted in the stage's progress."""
        stop.check()
        result = self._rank_user_safely(client, k, user_id, frame, history, admitted)
        tracker = progress.current()
        if tracker is not None:
            calls = sum(1 for a in result.attempts if a.outcome != "cache_hit")
            circuit = result.reason if result.reason and result.reason.startswith("llm circuit open") else None
            tracker.user_done(user_id, calls, len(result.attempts) - calls, result.ranker == "als_fallback", circuit)
        return result

    def _rank_user_safely(self, client: LlmClient, k: int, user_id: int, frame: pl.DataFrame, history: dict | None,
                          admitted: set[int] | None = None) -> UserResult:
        """Never raises: whatever goes wrong, the user gets the ALS order and the reason."""
        stats, attempts = UserStats(), []
        try:
            context = user_context(user_id, frame, history, self.settings)
            if admitted is not None and user_id not in admitted and cap.over_cap(client, requests(context, self.settings)):
                return self._fallback(frame, k, cap.CAP_REACHED, stats, attempts)
            return self._rank_user(client, k, context, stats, attempts)
        except stop.Stopped:
            raise
        except CircuitOpen as failure:
            if self.settings.llm_on_outage == "fail":
                raise self._outage(failure.reason.removeprefix("llm circuit open: ")) from None
            attempts.extend(failure.attempts)
            return self._fallback(frame, k, failure.reason, stats, attempts)
        except LlmCallFailed as failure:
            attempts.extend(failure.attempts)
            return self._fallback(frame, k, f"llm call failed: {failure.reason}", stats, attempts)
        except Unusable as unusable:
            return self._fallback(frame, k, f"unusable answer after repair: {unusable}", stats, attempts)
        except Exception as error:  # a bug must not lose the user; the reason says what happened
            log.exception("llm ranker: user %s fell back to ALS", user_id)
            return self._fallback(frame, k, f"internal error: {type(error).__name__}", stats, attempts)

    def _rank_user(self, client: LlmClient, k: int, context: UserContext, stats: UserStats,
                   attempts: list[Attempt]) -> UserResult:
        """Each call answered (one repair retry when unusable) and repaired, then the final order (rankers/blend.py)."""
        stats.recipe_tokens_est = recipe_tokens(context, self.settings)
        calls: list[list[Pick]] = []
        for request in requests(context, self.settings):
            stats.prompt_tokens_est += sum(estimate_tokens(m["content"]) for m in request.messages)
            answer = client.complete(request.messages, request.schema, request.max_tokens)
            attempts.extend(answer.attempts)
            try:
                ordered = self._repaired(context, request, answer, stats)
            except Unusable as unusable:
                stats.repair_retries += 1
                retry = repair_messages(self.prompt, request, answer.content or answer.refusal or "", str(unusable), context)
                answer = client.complete(retry, request.schema, request.max_tokens)
                attempts.extend(answer.attempts)
                ordered = self._repaired(context, request, answer, stats)
            calls.append(ordered)
        position, liked, picks = aggregate(calls)
        rows, stats.explanation_fallbacks = final_rows(context, k, position, liked, picks, self.settings)
        return UserResult(rows, stats, "llm", None, attempts)

    def _repaired(self, context: UserContext, request: Request, answer: Answer, stats: UserStats) -> list[Pick]:
        """The answer repaired (rankers/answer.py), its repairs counted in `stats`."""
        s = self.settings
        try:
            repaired = repair_answer(context, request.chunk, answer.content, answer.refusal, s.evidence_items,
                                     s.llm_explanation_chars)
        except Unusable as unusable:
            stats.hallucinated_ids += unusable.hallucinated_ids
            raise
        stats.hallucinated_ids += repaired.hallucinated_ids
        stats.duplicate_ids += repaired.duplicate_ids
        stats.missing_ids += repaired.missing_ids
        stats.stripped_citations += repaired.stripped_citations
        return repaired.ordered

    def _fallback(self, frame: pl.DataFrame, k: int, reason: str, stats: UserStats, attempts: list[Attempt]) -> UserResult:
        reason = redact(reason, self.settings)
        rows = AlsRanker().rank(frame, k).with_columns(
            ranker=pl.lit("als_fallback"),
            prompt_version=pl.lit(self.settings.llm_prompt_version),
            fallback_reason=pl.lit(reason),
        )
        return UserResult(rows, stats, "als_fallback", reason, attempts)
