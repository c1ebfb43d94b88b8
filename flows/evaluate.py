"""The evaluation as a Prefect flow: same numbers as `recs eval`, plus a markdown artifact."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.artifacts import markdown_table
from tasks.evaluate import evaluate_dataset, write_json, write_plot, protocol
from tasks.settings import Settings


@flow(name="evaluate", log_prints=True)
def evaluate_flow(
    data: Path | None = None, sample_users: int | None = None, seed: int = 42,
    json_file: Path | None = None, plot: Path | None = None, split: str = "random",
) -> list[dict]:
    """Holdout evaluation of popularity, ALS (original / defaults) and the rankers; LLM rows only with an endpoint.

    `split`: random (the original 90/10 protocol) or ua / ub (MovieLens 100k's fixed splits)."""
    settings = Settings(data=data)
    metrics = evaluate_dataset(data, settings, sample_users=sample_users, seed=seed, split=split)
    wide = (
        metrics.filter(pl.col("value").is_not_null())
        .with_columns(column=pl.format("{}@{}", "metric", "k"))
        .pivot(on="column", index="method", values="value")
    )
    users = f"{'sample of ' if sample_users else ''}{metrics['users'][0]} test users"
    skipped = metrics.filter(pl.col("value").is_null()).unique("method", maintain_order=True)
    notes = "\n".join(f"- {m}: {s}" for m, s in skipped.select("method", "status").iter_rows())
    create_markdown_artifact(
        key="recs-evaluation",
        description=f"Holdout evaluation ({split} split)",
        markdown=f"# Evaluation: {data or 'built-in dataset'} ({split} split, {users})\n\n{markdown_table(wide)}\n\n{notes}\n",
    )
    if json_file is not None:
        write_json(metrics, json_file, protocol(data, settings, sample_users, seed, split))
    if plot is not None:
        write_plot(metrics, plot)
    return metrics.to_dicts()
