"""The nightly flow: ingest -> train -> candidates -> (llm gate) -> rank -> publish -> report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prefect import Flow, flow, get_run_logger
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.artifacts import publish_report_artifact, publish_run_artifacts
from flows.parameters import RunParameters
from tasks import memory, stop
from tasks.candidates import candidates
from tasks.errors import StageFailed, describe
from tasks.gate import gate, gated_settings
from tasks.home import check_home, exclusive
from tasks.ingest import ingest
from tasks.llm_client import preflight
from tasks.publish import Published, publish
from tasks.rank import rank_stage
from tasks.report import report
from tasks.settings import Settings
from tasks.train import train
from tasks.validate import validate_inputs, validate_outputs

T = TypeVar("T")


@dataclass
class StageCosts:
    """Seconds and peak resident MiB of each stage (the flow process: its task threads included)."""

    seconds: dict[str, float] = field(default_factory=dict)
    peak_mib: dict[str, int | None] = field(default_factory=dict)


def timed(stage: str, timings: StageCosts, call: Callable[[], T]) -> T:
    """Run one stage, log how long it took and its peak memory, and keep both for the summary."""
    memory.release_freed()
    measured = memory.reset_peak()
    started = time.perf_counter()
    try:
        result = call()
    except Exception as error:
        raise StageFailed(stage, error) from error
    timings.seconds[stage] = round(time.perf_counter() - started, 2)
    peak = memory.peak_mib() if measured else None
    timings.peak_mib[stage] = None if peak is None else round(peak)
    memory_note = "peak memory unknown" if peak is None else f"peak {peak:,.0f} MiB"
    get_run_logger().info("%s: %.2f s, %s — %s", stage, timings.seconds[stage], memory_note, result)
    return result


@flow(name="nightly-recs")
def nightly(params: RunParameters = RunParameters()) -> dict[str, Any]:
    """Retrain on everything ingested, recommend K items per user, explain each, publish to Parquet."""
    settings = params.settings()
    timings = StageCosts()
    with stop.on_signals(), exclusive(settings):
        if settings.ranker == "llm":
            timed("llm preflight", timings, lambda: preflight(settings))
        timed("check home", timings, lambda: check_home(settings))
        ingested = timed("ingest", timings, lambda: ingest(settings))
        input_checks = timed("check inputs", timings, lambda: validate_inputs(settings))
        trained = timed("train", timings, lambda: train(settings))
        candidate_counts = timed("candidates", timings, lambda: candidates(settings, trained.serving_version))
        decision = timed("llm gate", timings, lambda: gate(settings)) if gated(settings) else None
        ranked = timed("rank", timings, lambda: rank_all(gated_settings(settings, decision)))
        output_checks = timed("check outputs", timings, lambda: validate_outputs(settings))
        published: Published = timed("publish", timings, lambda: publish(settings))
        report_after_publish(settings, timings)

        summary = {
            "run_date": settings.run_date.isoformat(),
            "ingested": ingested,
            "input_checks": input_checks,
            "model": trained.decision,
            "trained_version": trained.model_version,
            "serving_version": trained.serving_version,
            "candidates": candidate_counts,
            "ranked": ranked,
            "llm_gate": str(decision) if decision else None,
            "output_checks": output_checks,
            "published": str(published.path),
            "users": published.users,
            "rows": published.rows,
            "seconds": timings.seconds,
            "peak_mib": timings.peak_mib,
        }
        publish_run_artifacts(settings, summary)
    return summary


def gated(settings: Settings) -> bool:
    """An llm night runs the LLM gate unless it is turned off."""
    return settings.ranker == "llm" and settings.llm_gate != "off"


def report_after_publish(settings: Settings, timings: StageCosts) -> None:
    """The night's report and its artifact; a failure here is a warning, never a failed published night."""
    try:
        tonight = timed("report", timings, lambda: report(settings))
        publish_report_artifact(settings, tonight.trend)
    except Exception as error:
        get_run_logger().warning("the night is published, but its report failed: %s", describe(error))


def rank_all(settings: Settings) -> dict[str, int]:
    """Fan the pending users out over rank tasks, a batch of users each; total rows per ranker (tasks/rank.py)."""
    return rank_stage(settings, get_run_logger())


def task_runner_for(settings: Settings) -> TaskRunner:
    """Threads by default; Dask on a given scheduler, or on a local cluster of worker processes.

    Rank tasks open no database (tasks/rank.py): they get their batch's inputs and return its outputs,
    which the flow process stores, so workers may be other processes or machines.
    """
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={"processes": True, "n_workers": settings.dask_workers,
                                              "threads_per_worker": settings.dask_threads_per_worker})
    return ThreadPoolTaskRunner()


def nightly_for(settings: Settings) -> Flow:
    """The nightly flow with the task runner the settings ask for."""
    return nightly.with_options(task_runner=task_runner_for(settings))


if __name__ == "__main__":
    nightly_for(Settings())()
