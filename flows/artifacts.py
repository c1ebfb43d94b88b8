"""Prefect artifacts of a run: what people open in the UI instead of reading logs."""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks import db
from tasks.report import explanation_line
from tasks.settings import Settings

SAMPLE_USERS = 5


def markdown_table(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * frame.width + "\n"
    rows = ("| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.iter_rows())
    return header + "\n".join(rows)


def _cell(value: Any) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return "—" if value is None else text.replace("|", "\\|").replace("\n", " ")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {value:,}" for name, value in counts.items())


def publish_run_artifacts(settings: Settings, summary: dict[str, Any]) -> None:
    """Run summary, model metrics, a sample of explained recommendations and, for the llm ranker, its accounting."""
    key = f"recs-{settings.run_date.isoformat()}"
    with db.connect(settings) as con:
        metrics = db.frame(con, "report/model_metrics", {"model_version": summary["trained_version"]})
        sample = db.frame(con, "report/sample", {"run_date": settings.run_date, "users": SAMPLE_USERS, "k": settings.k})
        llm_accounting = db.frame(con, "llm/summary", {"run_date": settings.run_date}).cast(pl.String)
        explanations = explanation_line(con, settings.run_date)
        canary = db.frame(con, "gate/canary_rows", {"run_date": settings.run_date})
    seconds, peaks = summary["seconds"], summary["peak_mib"]
    stages = pl.DataFrame({"stage": list(seconds), "seconds": list(seconds.values()), "peak MiB": [peaks[s] for s in seconds]})
    create_markdown_artifact(
        key=f"{key}-summary",
        description="What this run did",
        markdown=(
            f"# Nightly run {settings.run_date}\n\n"
            f"- ingest: {summary['ingested']}\n"
            f"- model: {summary['model']} (serving `{summary['serving_version']}`)\n"
            f"- candidates: {_counts(summary['candidates'])}\n"
            + (f"- {summary['llm_gate']}\n" if summary.get("llm_gate") else "")
            + f"- ranked rows by ranker: {_counts(summary['ranked'])}\n"
            f"- published {summary['rows']} rows for {summary['users']} users to `{summary['published']}`\n"
            f"- explanations: {explanations}\n\n"
            f"## Stage timings and peak memory\n\n{markdown_table(stages)}\n"
        ),
    )
    create_markdown_artifact(
        key=f"{key}-model", description="Holdout metrics: new model vs the one serving before it vs popularity", markdown=markdown_table(metrics)
    )
    create_table_artifact(key=f"{key}-sample", description="Sample of explained recommendations", table=sample.to_dicts())
    if settings.ranker == "llm":
        create_markdown_artifact(
            key=f"{key}-llm",
            description="LLM accounting: calls, cache hits, tokens, retries, 429s, fallbacks, latency",
            markdown=markdown_table(llm_accounting.unpivot(variable_name="measure", value_name="value")),
        )
    if summary.get("llm_gate"):
        create_markdown_artifact(
            key=f"{key}-llm-gate",
            description="LLM gate: NDCG@10 of ALS vs the LLM blends on held-out likes, and tonight's decision",
            markdown=f"{summary['llm_gate']}\n\n{markdown_table(canary)}\n",
        )


def publish_report_artifact(settings: Settings, trend: pl.DataFrame) -> None:
    """Tonight's beyond-accuracy figures next to the nights before (tasks/report.py)."""
    create_markdown_artifact(
        key=f"recs-{settings.run_date.isoformat()}-report",
        description="Coverage, novelty, diversity, personalisation, churn, ranker mix and LLM cost: tonight vs the nights before",
        markdown=f"# Report of {settings.run_date}\n\n{markdown_table(trend.sort('run_date', descending=True))}\n",
    )
