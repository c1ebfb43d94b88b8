"""The `llm` ranker's side of the DuckDB file: what a batch of users needs is read here (histories,
the cached answers its users may hit, the `llm_max_users` plan), the batch is ranked by
rankers/llm_batch.py (which opens no database), and its outputs are stored here (new answers into
`llm_cache`, the accounting into `llm_calls` / `llm_users`) — by the flow process, the single writer.

`LlmRanker` puts the three together for callers ranking in-process (the LLM gate, `recs eval`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import polars as pl

from rankers import cap
from rankers.accounting import log_batch
from rankers.als import AlsRanker
from rankers.context import histories
from rankers.llm_batch import LlmInputs, LlmOutputs, rank_with_llm
from tasks import db
from tasks.settings import Settings

ANSWER_KEEP_SECONDS = 1.0


def plan(con, settings: Settings) -> set[int] | None:
    """The users of this run_date that may be sent to the LLM (rankers/cap.py); None without a cap."""
    return cap.admitted(con, settings) if settings.llm_max_users is not None else None


def read_inputs(
    con, settings: Settings, user_ids: list[int], admitted: set[int] | None,
    unreferenced: dict[str, tuple] | None = None, keep_answer: Callable[[dict], None] | None = None,
) -> LlmInputs:
    """A batch's histories, the cached answers its users may hit, and its part of the cap plan.

    A user may hit the answers of requests it made tonight (a resumed or repeated night) or on the last
    earlier night it made any (unchanged candidates): found through llm_calls (sql/llm/cache_for_users.sql);
    and any `unreferenced` answer (kept from a run killed before their batch was stored).
    """
    cached = db.run(con, "llm/cache_for_users", {"run_date": settings.run_date, "user_ids": user_ids})
    batch_admitted = None if admitted is None else admitted & set(user_ids)
    known = (unreferenced or {}) | {key: tuple(rest) for key, *rest in cached}
    return LlmInputs(histories(con, user_ids, settings), known, batch_admitted, keep_answer)


def unreferenced_answers(con) -> dict[str, tuple]:
    """Cached answers no llm_calls row names (sql/llm/unreferenced_answers.sql), as LlmCache entries."""
    return {key: tuple(rest) for key, *rest in db.run(con, "llm/unreferenced_answers")}


def store_answers(con, rows: list[dict]) -> None:
    """New llm_cache rows (LlmCache.new_entries / put rows); the same answer stored twice is stored once."""
    with db.registered(con, "new_llm_cache", pl.DataFrame(rows, infer_schema_length=None)):
        db.run(con, "llm/cache_insert")


@contextmanager
def answer_keeper(con, settings: Settings, tasks_in_threads: bool) -> Iterator[tuple[Callable[[dict], None] | None, threading.Lock]]:
    """(keep, writes): with rank tasks in threads of the flow, `keep` takes each answer as it arrives and a
    keeper thread stores them every ANSWER_KEEP_SECONDS (and at the end), so a flow process killed mid-batch
    has lost at most that second's answers; a rerun hits them (unreferenced_answers). Worker processes
    return theirs with the batch (`keep` is None: nothing of this process travels to them). Every write to
    the file while the keeper runs holds `writes` (two writers of one llm_cache row would conflict)."""
    writes = threading.Lock()
    if settings.ranker != "llm" or not tasks_in_threads:
        yield None, writes
        return
    arrived: queue.SimpleQueue = queue.SimpleQueue()
    finished = threading.Event()
    cursor = con.cursor()

    def store_arrived() -> None:
        rows = []
        while not arrived.empty():
            rows.append(arrived.get())
        if rows:
            with writes:
                store_answers(cursor, rows)

    def keep_storing() -> None:
        while not finished.wait(ANSWER_KEEP_SECONDS):
            store_arrived()

    keeper = threading.Thread(target=keep_storing, name="llm-answer-keeper", daemon=True)
    keeper.start()
    try:
        yield arrived.put, writes
    finally:
        finished.set()
        keeper.join()
        store_arrived()
        cursor.close()


def store_outputs(con, settings: Settings, user_ids: list[int], outputs: LlmOutputs) -> None:
    """A batch's new answers, calls and (unless interrupted) users; inside the caller's transaction."""
    params = {"run_date": settings.run_date}
    if outputs.cache:
        store_answers(con, outputs.cache)
    if outputs.calls.height:
        with db.registered(con, "new_llm_calls", outputs.calls):
            db.run(con, "llm/insert_calls", params)
    if outputs.interrupted is None:
        db.run(con, "llm/replace_users", params | {"user_ids": user_ids})
        if outputs.users.height:
            with db.registered(con, "new_llm_users", outputs.users):
                db.run(con, "llm/insert_users", params)


def log_outputs(con, settings: Settings, outputs: LlmOutputs) -> None:
    """The batch's line and the run's accounting so far in the run log."""
    if outputs.interrupted is None:
        log_batch(outputs.users, outputs.calls, db.frame(con, "llm/summary", {"run_date": settings.run_date}), settings)


class LlmRanker:
    """Ranker protocol (rankers/base.py) in one process: read, rank, store the LLM outputs (not the ranked rows)."""

    name = "llm"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def rank(self, candidates: pl.DataFrame, k: int) -> pl.DataFrame:
        s = self.settings
        if candidates.is_empty():
            return AlsRanker().rank(candidates, k)
        user_ids = candidates["user_id"].unique(maintain_order=True).to_list()
        with db.connect(s) as con:
            inputs = read_inputs(con, s, user_ids, plan(con, s))
        outputs = rank_with_llm(s, candidates, inputs, k)
        with db.connect(s) as con:
            with db.transaction(con):
                store_outputs(con, s, user_ids, outputs)
            log_outputs(con, s, outputs)
        if outputs.interrupted is not None:
            raise outputs.interrupted
        return outputs.ranked
