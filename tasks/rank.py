"""Rank: re-order each user's candidates, keep the top K and explain each from its evidence.

The pipeline stage: the users still to rank in batches; the flow process reads each batch's inputs
from DuckDB, a rank task (a thread of the flow, or a Dask worker process) ranks it by the configured
ranker (rankers/: `als` keeps the ALS order, `llm` re-orders with an LLM) without opening the
database, and the flow stores each batch's outputs in its own transaction as tasks finish: one
writer of the DuckDB file, and a stored batch is skipped by a rerun.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed, wait
from prefect.task_runners import ThreadPoolTaskRunner

from rankers import llm
from rankers.als import AlsRanker
from rankers.base import Ranker
from rankers.llm_batch import LlmInputs, LlmOutputs, circuit_cause, rank_with_llm
from tasks import db, progress, stop
from tasks.errors import retry_unless_expected
from tasks.settings import Settings

STOP_GRACE_SECONDS = 5.0


@dataclass
class BatchInputs:
    """Everything a rank task needs: the batch's candidates and, for the llm ranker, its LLM inputs."""

    user_ids: list[int]
    candidates: pl.DataFrame  # rank/batch_candidates.sql rows
    llm: LlmInputs | None


@dataclass
class BatchOutputs:
    """Everything a rank task produced, stored by the flow (store_batch)."""

    user_ids: list[int]
    ranked: pl.DataFrame  # RANKED_COLUMNS
    llm: LlmOutputs | None


def user_batches(con, settings: Settings, batch_size: int | None = None) -> list[list[int]]:
    """Users of this run_date not ranked yet as this run would rank them, in batches (a resumed run skips finished batches)."""
    params = {"run_date": settings.run_date, "batch_size": batch_size or settings.rank_users_per_batch,
              "ranker": settings.ranker, "k": settings.k}  # fmt: skip
    return db.frame(con, "rank/user_batches", params)["users"].to_list()


def batch_candidates(con, settings: Settings, user_ids: list[int], ranker: str) -> pl.DataFrame:
    """The candidates of a batch of users, with titles and evidence titles (rank/batch_candidates.sql), as deep as
    `ranker` reads them: the als ranker keeps the top K in ALS order, the llm ranker re-orders them all."""
    max_rank = settings.k if ranker == AlsRanker.name else None
    return db.frame(con, "rank/batch_candidates", {"run_date": settings.run_date, "user_ids": user_ids, "max_rank": max_rank})


def read_batch(con, settings: Settings, user_ids: list[int], admitted: set[int] | None,
               unreferenced: dict[str, tuple] | None = None, keep_answer: Callable[[dict], None] | None = None) -> BatchInputs:
    """A batch's inputs, read by the flow process (llm: see rankers/llm.py read_inputs)."""
    llm_inputs = llm.read_inputs(con, settings, user_ids, admitted, unreferenced, keep_answer) if settings.ranker == "llm" else None
    return BatchInputs(user_ids, batch_candidates(con, settings, user_ids, settings.ranker), llm_inputs)


def rank_inputs(settings: Settings, inputs: BatchInputs) -> BatchOutputs:
    """Rank one batch: a function of its inputs (no database), the same in a thread and in a worker process."""
    if inputs.llm is None or inputs.candidates.is_empty():
        return BatchOutputs(inputs.user_ids, AlsRanker().rank(inputs.candidates, settings.k), None)
    outputs = rank_with_llm(settings, inputs.candidates, inputs.llm, settings.k)
    return BatchOutputs(inputs.user_ids, outputs.ranked, outputs)


def store_ranked(con, settings: Settings, user_ids: list[int], ranked: pl.DataFrame) -> None:
    """A batch's ranked rows replace any earlier attempt; inside the caller's transaction."""
    db.run(con, "rank/replace_batch", {"run_date": settings.run_date, "user_ids": user_ids})
    with db.registered(con, "new_ranked", ranked):
        db.run(con, "rank/insert_batch", {"run_date": settings.run_date})


def store_batch(con, settings: Settings, outputs: BatchOutputs) -> Counter:
    """A batch's outputs in one transaction (ranked rows, LLM answers and accounting); rows per ranker.

    An interrupted llm batch (stop, outage) stores only the answers it paid for, then raises its error."""
    interrupted = outputs.llm.interrupted if outputs.llm else None
    with db.transaction(con):
        if interrupted is None:
            store_ranked(con, settings, outputs.user_ids, outputs.ranked)
        if outputs.llm is not None:
            llm.store_outputs(con, settings, outputs.user_ids, outputs.llm)
    if outputs.llm is not None:
        llm.log_outputs(con, settings, outputs.llm)
        count_progress(outputs.llm)
    if interrupted is not None:
        raise interrupted
    return Counter(dict(outputs.ranked.group_by("ranker").len().iter_rows()))


def count_progress(outputs: LlmOutputs) -> None:
    """A batch ranked in another process counts its users in the stage's progress when it is stored."""
    tracker = progress.current()
    if tracker is None or outputs.progress_reported or not outputs.users.height:
        return
    calls = outputs.calls.group_by("user_id").agg(hits=(pl.col("outcome") == "cache_hit").sum(), attempts=pl.len())
    for row in outputs.users.join(calls, on="user_id", how="left").fill_null(0).iter_rows(named=True):
        tracker.user_done(row["user_id"], row["attempts"] - row["hits"], row["hits"], row["ranker"] == "als_fallback",
                          circuit_cause(row["fallback_reason"]))


def rank_users(con, settings: Settings, ranker: Ranker, user_ids: list[int]) -> pl.DataFrame:
    """Rank one batch of users in this process with `ranker` and store the result (tests, benchmarks)."""
    ranked = ranker.rank(batch_candidates(con, settings, user_ids, ranker.name), settings.k)
    with db.transaction(con):
        store_ranked(con, settings, user_ids, ranked)
    return ranked


@task(name="rank-batch", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_expected, cache_policy=NO_CACHE)
def rank_batch(settings: Settings, inputs: BatchInputs, stop_event: str | None = None) -> BatchOutputs:
    """Prefect task: rank a batch of users from its inputs; the flow stores the outputs. On a Dask worker it
    stops when the flow announces its stop as `stop_event`."""
    with stop.listening(stop_event):
        return rank_inputs(settings, inputs)


def rank_stage(settings: Settings, logger) -> dict[str, int]:
    """Every pending batch through a rank task, at most `rank_batches_in_flight` at once, each stored as it
    finishes; rows per ranker. The flow's connection is the only one open on the DuckDB file. A failed batch
    stops new submissions; the batches in flight are still stored, then its error is raised. A stop (signal)
    while waiting stores what the batches in flight bring back within STOP_GRACE_SECONDS (threads stop their
    LLM requests within ~0.1 s; Dask workers, which do not hear the signal, are told by a Dask event and stop
    within about a second). With threads, each LLM answer is also stored within a second of its arrival
    (rankers/llm.py answer_keeper): a kill -9 loses none older.

    LLM progress of all batches together is logged every `progress_seconds` (tasks/progress.py)."""
    counts: Counter = Counter()
    errors: list[Exception] = []
    stored: list[int] = []  # users of each stored batch
    with db.connect(settings) as con:
        batches = user_batches(con, settings)
        tracked = settings.ranker == "llm"  # the als ranker takes seconds: nothing to watch
        admitted = llm.plan(con, settings) if tracked else None
        unreferenced = llm.unreferenced_answers(con) if tracked else None
        todo = iter(batches)
        stop_event = None if tasks_in_threads() else stop_event_name()

        def submit(n: int) -> list[PrefectFuture]:
            return [rank_batch.submit(settings, read_batch(con, settings, users, admitted, unreferenced, keep_answer),
                                      stop_event) for users in take(todo, n)]

        def store(future: PrefectFuture) -> None:
            try:
                outputs = future.result()
                with writes:
                    counts.update(store_batch(con, settings, outputs))
            except Exception as error:
                errors.append(error)
                return
            stored.append(len(outputs.user_ids))
            logger.info("rank: batch %d of %d stored (%d users)", len(stored), len(batches), stored[-1])

        tracking = progress.tracking(sum(map(len, batches)), settings.progress_seconds, logger) if tracked else nullcontext()
        with llm.answer_keeper(con, settings, tasks_in_threads()) as (keep_answer, writes), tracking:
            pending = submit(settings.rank_batches_in_flight)
            try:
                while pending:
                    done = next(as_completed(pending))
                    pending.remove(done)
                    store(done)
                    if not errors:
                        pending += submit(1)
            except BaseException:
                if stop.requested():
                    if stop_event:
                        tell_workers(stop_event, logger)
                    for future in wait(pending, timeout=STOP_GRACE_SECONDS).done:
                        store(future)
                raise
            if errors:
                raise errors[0]
    return dict(counts)


def stop_event_name() -> str:
    """A Dask event name of this stage's own: a retried flow run keeps its id, and an event once set stays set."""
    return f"recs-stop-{FlowRunContext.get().flow_run.id}-{uuid.uuid4().hex[:12]}"


def tell_workers(stop_event: str, logger) -> None:
    """Announce this run's stop to its tasks on Dask workers (a failure is logged: the stop goes on without them)."""
    try:
        stop.announce(stop_event, FlowRunContext.get().task_runner.client)
    except Exception as error:  # the scheduler may be gone; the flow still stops
        logger.warning("rank: the Dask workers were not told to stop (%s); their batches in flight run to the end", error)


def tasks_in_threads() -> bool:
    """Whether this flow run's tasks are threads of this process (the default runner), not Dask workers."""
    context = FlowRunContext.get()
    return context is not None and isinstance(context.task_runner, ThreadPoolTaskRunner)


def take(items: Iterator, n: int) -> list:
    """The next `n` items (fewer at the end)."""
    return [item for _, item in zip(range(n), items)]
