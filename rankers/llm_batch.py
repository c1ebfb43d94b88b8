"""The `llm` ranker's work on one batch of users, as a function of its inputs: an LLM re-orders each
user's ALS candidates and explains each pick from the user's history — repaired, blended with ALS,
and never worse off than ALS. It opens no database, so it runs in a thread of the flow or in a Dask
worker process alike; rankers/llm.py reads its inputs from DuckDB and stores its outputs.

Per user (on a pool of llm_concurrency threads): the prompts (rankers/prompt.py), each answer
repaired (rankers/answer.py) with one repair retry when unusable, and the final order
(rankers/blend.py). When the answer stays unusable, or the call fails, the user gets the ALS order
with ranker='als_fallback' and the reason. Users over `llm_max_users` (rankers/cap.py) fall back
unless their answers are cached. The outputs: ranked rows, the answers received (new llm_cache
rows) and the accounting (llm_calls / llm_users rows, rankers/accounting.py).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl

from rankers import cap
from rankers.accounting import UserResult, UserStats, calls_frame, users_frame
from rankers.als import AlsRanker
from rankers.answer import Unusable, repair_answer
from rankers.base import RANKED_COLUMNS
from rankers.blend import aggregate, final_rows
from rankers.context import Pick, UserContext
from rankers.prompt import Request, load_prompt, repair_messages, requests, user_context, with_als_explanation
from rankers.recipe import recipe_tokens
from tasks import progress, stop
from tasks.llm_client import Answer, Attempt, CircuitOpen, LlmCache, LlmCallFailed, LlmClient, LlmUnavailable, estimate_tokens, redact
from tasks.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class LlmInputs:
    """What a batch needs besides its candidates (read by rankers/llm.py)."""

    histories: dict[int, dict]  # user id -> compressed history (sql/llm/history.sql)
    cached: dict[str, tuple]  # request key -> cached answer the batch's users may hit (LlmCache.get's tuple)
    admitted: set[int] | None  # users that may be sent to the LLM under llm_max_users; None: no cap
    keep_answer: Callable[[dict], None] | None = None  # threads of the flow: hand each answer to the flow's keeper


@dataclass
class LlmOutputs:
    """What a batch produced; `interrupted` (a stop, or an outage under llm_on_outage=fail) means only the
    answers received and their calls are kept (no ranked rows, no users), and the error is raised once stored."""

    ranked: pl.DataFrame  # RANKED_COLUMNS
    cache: list[dict]  # new llm_cache rows (without created_at)
    calls: pl.DataFrame  # llm_calls rows (without run_date)
    users: pl.DataFrame  # llm_users rows (without run_date)
    interrupted: Exception | None = None
    progress_reported: bool = False  # users were counted in this process's progress tracker (threads of the flow)


def rank_with_llm(settings: Settings, candidates: pl.DataFrame, inputs: LlmInputs, k: int) -> LlmOutputs:
    """One batch of users' candidates (rank/batch_candidates.sql) ranked by the LLM, k rows per user."""
    ranker = BatchRanker(settings, inputs, k)
    return ranker.run(with_als_explanation(candidates))


class BatchRanker:
    """The per-user flow of one batch: threads, client and in-memory cache, fallback, accounting."""

    def __init__(self, settings: Settings, inputs: LlmInputs, k: int) -> None:
        self.settings, self.inputs, self.k = settings, inputs, k
        self.prompt = load_prompt(settings.llm_prompt_version)
        self.cache = LlmCache(inputs.cached, inputs.keep_answer)
        self.attempts: dict[int, list[Attempt]] = {}  # per user, filled as calls return (kept when interrupted)

    def run(self, candidates: pl.DataFrame) -> LlmOutputs:
        user_ids = candidates["user_id"].unique(maintain_order=True).to_list()
        groups = candidates.partition_by("user_id", maintain_order=True, as_dict=True)
        work = [(uid, groups[(uid,)], self.inputs.histories.get(uid)) for uid in user_ids]
        client = LlmClient(self.settings, self.cache)
        reported = progress.current() is not None
        try:
            results = self._rank_all_users(client, work)
        except (stop.Stopped, LlmUnavailable) as interrupted:
            paid = calls_frame(self.attempts).filter(pl.col("outcome") == "ok")  # the answers kept in the cache
            empty = pl.DataFrame(schema={name: pl.Null for name in RANKED_COLUMNS})
            return LlmOutputs(empty, self.cache.new_entries(), paid, pl.DataFrame(), interrupted, reported)
        finally:
            client.close()
        ranked = pl.concat([r.rows for r in results], how="vertical_relaxed").select(RANKED_COLUMNS)
        return LlmOutputs(ranked, self.cache.new_entries(), calls_frame(self.attempts), users_frame(user_ids, results),
                          None, reported)

    def _rank_all_users(self, client: LlmClient, work: list[tuple]) -> list[UserResult]:
        """Every user of the batch on a pool of llm_concurrency threads, each in a copy of this task's context (a
        stop heard by stop.listening reaches them). A stop request (Stopped) or an outage under
        llm_on_outage=fail (LlmUnavailable) cancels what is queued, waits for the running users (they give up
        within ~0.1 s) and propagates: no user of the batch is stored."""
        pool = ThreadPoolExecutor(max_workers=self.settings.llm_concurrency, thread_name_prefix="llm-rank")
        try:
            futures = [pool.submit(contextvars.copy_context().run, self._rank_and_report, client, *job) for job in work]
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

    def _rank_and_report(self, client: LlmClient, user_id: int, frame: pl.DataFrame, history: dict | None) -> UserResult:
        """One user, counted in the stage's progress (when it runs in the flow's process)."""
        stop.check()
        result = self._rank_user_safely(client, user_id, frame, history)
        tracker = progress.current()
        if tracker is not None:
            tracker.user_done(user_id, *progress_counts(result.attempts), result.ranker == "als_fallback",
                              circuit_cause(result.reason))
        return result

    def _rank_user_safely(self, client: LlmClient, user_id: int, frame: pl.DataFrame, history: dict | None) -> UserResult:
        """Never raises (but for a stop or a failing outage): whatever goes wrong, the user gets the ALS order and the reason."""
        stats, attempts = UserStats(), self.attempts.setdefault(user_id, [])
        admitted = self.inputs.admitted
        try:
            context = user_context(user_id, frame, history, self.settings)
            if admitted is not None and user_id not in admitted and cap.over_cap(
                    self.settings, self.cache, requests(context, self.settings)):
                return self._fallback(frame, cap.CAP_REACHED, stats, attempts)
            return self._rank_user(client, context, stats, attempts)
        except stop.Stopped:
            raise
        except CircuitOpen as failure:
            if self.settings.llm_on_outage == "fail":
                raise self._outage(failure.reason.removeprefix("llm circuit open: ")) from None
            attempts.extend(failure.attempts)
            return self._fallback(frame, failure.reason, stats, attempts)
        except LlmCallFailed as failure:
            attempts.extend(failure.attempts)
            return self._fallback(frame, f"llm call failed: {failure.reason}", stats, attempts)
        except Unusable as unusable:
            return self._fallback(frame, f"unusable answer after repair: {unusable}", stats, attempts)
        except Exception as error:  # a bug must not lose the user; the reason says what happened
            log.exception("llm ranker: user %s fell back to ALS", user_id)
            return self._fallback(frame, f"internal error: {type(error).__name__}", stats, attempts)

    def _rank_user(self, client: LlmClient, context: UserContext, stats: UserStats, attempts: list[Attempt]) -> UserResult:
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
        rows, stats.explanation_fallbacks = final_rows(context, self.k, position, liked, picks, self.settings)
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

    def _fallback(self, frame: pl.DataFrame, reason: str, stats: UserStats, attempts: list[Attempt]) -> UserResult:
        reason = redact(reason, self.settings)
        rows = AlsRanker().rank(frame, self.k).with_columns(
            ranker=pl.lit("als_fallback"),
            prompt_version=pl.lit(self.settings.llm_prompt_version),
            fallback_reason=pl.lit(reason),
        )
        return UserResult(rows, stats, "als_fallback", reason, attempts)


def progress_counts(attempts: list[Attempt]) -> tuple[int, int]:
    """(LLM calls, cache hits) of a user's attempts."""
    hits = sum(1 for a in attempts if a.outcome == "cache_hit")
    return len(attempts) - hits, hits


def circuit_cause(reason: str | None) -> str | None:
    """The open circuit that made a user fall back, if that is why."""
    return reason if reason and reason.startswith("llm circuit open") else None
