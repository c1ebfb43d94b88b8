"""The offline evaluation: `run_evaluation` for `recs eval`, and as a Prefect flow with a markdown artifact."""

from __future__ import annotations

import polars as pl
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.artifacts import markdown_table
from flows.parameters import EvalParameters
from evaluation.compare import compare_methods, protocol, write_json, write_plot


def run_evaluation(params: EvalParameters) -> tuple[pl.DataFrame, str]:
    """The metrics (evaluation.compare.compare_methods) and a title; writes the JSON and PNG asked for."""
    settings = params.settings()
    metrics = compare_methods(
        params.data, settings, sample_users=params.sample_users, seed=params.seed, split=params.split, llm_users=params.llm_users
    )
    users = f"{'sample of ' if params.sample_users else ''}{metrics['users'][0]} test users"
    title = f"{params.data or 'built-in dataset'} ({params.split} split): {users}"
    if params.json_file is not None:
        write_json(metrics, params.json_file, protocol(params.data, settings, params.sample_users, params.seed, params.split, params.llm_users))
    if params.plot is not None:
        write_plot(metrics, params.plot, title)
    return metrics, title


@flow(name="evaluate-recs", log_prints=True)
def evaluate_flow(params: EvalParameters = EvalParameters()) -> list[dict]:
    """Holdout evaluation of popularity, ALS (original / defaults) and the rankers; LLM rows only with an endpoint."""
    metrics, title = run_evaluation(params)
    wide = (
        metrics.filter(pl.col("value").is_not_null())
        .with_columns(column=pl.format("{}@{}", "metric", "k"))
        .pivot(on="column", index="method", values="value")
    )
    skipped = metrics.filter(pl.col("value").is_null()).unique("method", maintain_order=True)
    notes = "\n".join(f"- {m}: {s}" for m, s in skipped.select("method", "status").iter_rows())
    create_markdown_artifact(
        key="recs-evaluation",
        description=f"Holdout evaluation ({params.split} split)",
        markdown=f"# Evaluation: {title}\n\n{markdown_table(wide)}\n\n{notes}\n",
    )
    return metrics.to_dicts()
