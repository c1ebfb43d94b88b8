"""Report: beyond-accuracy figures of each published night (coverage, novelty, diversity,
personalisation, churn, ranker mix, LLM cost), stored per run_date in `report_nights`, and their trend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
from prefect import task
from rich.table import Table

from tasks import db
from tasks.settings import Settings

RANKERS = ("als", "llm", "als_fallback", "popular")
PLOTTED = ("coverage", "novelty", "diversity", "personalisation", "churn", "llm_cost")


@dataclass(frozen=True)
class Report:
    trend: pl.DataFrame  # the stored figures of the latest nights up to tonight, oldest first

    def __str__(self) -> str:
        tonight = self.trend.row(-1, named=True)
        return ", ".join(f"{name} {_figure(tonight[name])}" for name in PLOTTED)


def report_night(con, settings: Settings) -> Report:
    """Compute and store tonight's figures (replacing a rerun's); the trend of the last `report_nights` nights."""
    db.run(
        con,
        "report/night",
        {
            "run_date": settings.run_date,
            "like_threshold": settings.like_threshold,
            "sample_users": settings.report_sample_users,
            "price_input": settings.llm_price_input,
            "price_output": settings.llm_price_output,
        },
    )
    return Report(trend(con, settings.run_date, settings.report_nights))


def trend(con, run_date: date | None, nights: int) -> pl.DataFrame:
    """The stored figures of the `nights` latest nights up to `run_date` (None: the latest), oldest first,
    with the ranker mix as shares of the rows."""
    rows = db.frame(con, "report/trend", {"run_date": run_date, "nights": nights}).sort("run_date")
    total = pl.sum_horizontal(*(f"rows_{name}" for name in RANKERS))
    return rows.with_columns((pl.col(f"rows_{name}") / total).alias(f"{name}_share") for name in RANKERS).drop(
        f"rows_{name}" for name in RANKERS
    )


@task(name="report")
def report(settings: Settings) -> Report:
    """Prefect task: tonight's report, stored; the trend it belongs to."""
    with db.connect(settings.db_path) as con:
        return report_night(con, settings)


def render_trend(rows: pl.DataFrame, title: str) -> Table:
    """The trend as a rich table, one row per night."""
    table = Table(title=title)
    for column in rows.columns:
        table.add_column(column, justify="left" if column == "run_date" else "right")
    for row in rows.iter_rows():
        table.add_row(*(_figure(value) for value in row))
    return table


def _figure(value: object) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_trend_plot(rows: pl.DataFrame, path: Path) -> None:
    """One panel per figure against the run_date; the ranker mix as stacked shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nights = [d.isoformat() for d in rows["run_date"]]
    fig, axes = plt.subplots(1, len(PLOTTED) + 1, figsize=(3.2 * (len(PLOTTED) + 1), 3.2))
    for ax, figure in zip(axes, PLOTTED):
        ax.plot(nights, rows[figure].fill_null(float("nan")), marker="o")
        ax.set_title(figure)
    bottom = [0.0] * rows.height
    mix = axes[-1]
    for name in RANKERS:
        shares = rows[f"{name}_share"].fill_null(0.0).to_list()
        mix.bar(nights, shares, bottom=bottom, label=name)
        bottom = [b + s for b, s in zip(bottom, shares)]
    mix.set_title("ranker mix")
    mix.legend(fontsize=7)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
