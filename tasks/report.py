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
    """Compute and store tonight's figures (replacing a rerun's); the trend of the last `report_trend_nights` nights."""
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
    return Report(trend(con, settings.run_date, settings.report_trend_nights))


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
    with db.connect(settings) as con:
        return report_night(con, settings)


def explanation_line(con, run_date: date) -> str:
    """The explanation quality of one night's ranked rows (sql/views.sql, explanation_quality) in words."""
    quality = db.frame(con, "report/explanations", {"run_date": run_date})
    if quality.is_empty():
        return "none ranked"
    quality = quality.row(0, named=True)
    line = (
        f"{quality['distinct_explanation_share']:.0%} distinct texts, "
        f"{quality['evidence_items_per_user'] or 0:.1f} history items cited per user"
    )
    if quality["llm_faithfulness"] is None:
        return line
    return line + f", {quality['llm_faithfulness']:.0%} of {quality['llm_citations']:,} LLM citations among the ALS top contributors"


def render_trend(rows: pl.DataFrame, title: str) -> Table:
    """The trend as a rich table, one row per night; the ranker mix in per cent."""
    table = Table(title=title)
    for column in rows.columns:
        header = f"{column.removesuffix('_share').replace('als_fallback', 'fallback')} %" if column.endswith("_share") else column
        table.add_column(header, justify="left" if column == "run_date" else "right", no_wrap=column == "run_date")
    for row in rows.iter_rows(named=True):
        table.add_row(*(_percent(value) if name.endswith("_share") else _figure(value) for name, value in row.items()))
    return table


def _figure(value: object) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def write_trend_plot(rows: pl.DataFrame, path: Path) -> None:
    """One panel per figure against the run_date; the ranker mix as stacked shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nights = [d.isoformat() for d in rows["run_date"]]
    fig, grid = plt.subplots(2, 4, figsize=(13, 6))
    axes = list(grid.flat)[: len(PLOTTED) + 1]
    legend_panel = grid.flat[-1]
    for ax, figure in zip(axes, PLOTTED):
        ax.plot(nights, rows[figure].fill_null(float("nan")), marker="o")
        ax.set_title(figure)
    bottom = [0.0] * rows.height
    mix = axes[-1]
    for name in RANKERS:
        shares = rows[f"{name}_share"].fill_null(0.0).to_list()
        mix.bar(nights, shares, bottom=bottom, label=name)
        bottom = [b + s for b, s in zip(bottom, shares)]
    mix.set_title("ranker mix (share of rows)")
    legend_panel.axis("off")
    legend_panel.legend(*mix.get_legend_handles_labels(), loc="center", title="ranker")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
