"""`recs`: run the nightly flow locally (Prefect ephemeral mode, no server needed)."""

from __future__ import annotations

import gc
import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from flows.parameters import EvalParameters, RunParameters
from tasks.settings import SplitName

app = typer.Typer(help="explained-recs: nightly ALS + LLM recommendations with grounded explanations.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)
EVAL_DEFAULTS = EvalParameters()


class _NoTracebackForExpectedFailures(logging.Filter):
    """Bad input and failed checks are explained by their message; a traceback only adds noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        from tasks.errors import is_expected

        if record.exc_info and is_expected(record.exc_info[1]):
            record.exc_info, record.exc_text = None, None
        return True


def _filter_prefect_handlers() -> None:
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)] + [logging.root]
    for handler in {h for logger in loggers if isinstance(logger, logging.Logger) for h in logger.handlers}:
        handler.addFilter(_NoTracebackForExpectedFailures())


@app.callback()
def main() -> None:
    """explained-recs command line."""


@app.command()
def run(
    data: Annotated[Optional[Path], typer.Option(help="MovieLens dir/file or interactions CSV/Parquet (default: built-in dataset).")] = None,
    catalog: Annotated[Optional[Path], typer.Option(help="Catalogue CSV for a generic interactions file.")] = None,
    home: Annotated[Optional[Path], typer.Option(help="Data home (env RECS_HOME, default ./data).")] = None,
    run_date: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"], help="Night to compute (default today).")] = None,
    ranker: Annotated[Optional[str], typer.Option(help="als | llm")] = None,
    k: Annotated[Optional[int], typer.Option(help="Recommendations per user.")] = None,
    llm_model: Annotated[Optional[str], typer.Option(help="Chat model of the llm ranker (env RECS_LLM_MODEL).")] = None,
    llm_rpm: Annotated[Optional[int], typer.Option(help="LLM requests per minute at most (env RECS_LLM_RPM).")] = None,
    llm_tpm: Annotated[Optional[int], typer.Option(help="LLM tokens per minute at most (env RECS_LLM_TPM).")] = None,
    llm_concurrency: Annotated[Optional[int], typer.Option(help="LLM requests in flight at most (env RECS_LLM_CONCURRENCY).")] = None,
    llm_max_users: Annotated[Optional[int], typer.Option(help="Uncached users sent to the LLM per run at most, most changed first (env RECS_LLM_MAX_USERS).")] = None,
) -> None:
    """Run the nightly flow once: ingest, train, candidates, rank, publish."""
    from flows.nightly import nightly_for

    _filter_prefect_handlers()

    try:
        params = RunParameters(
            data=data, catalog=catalog, home=home, run_date=run_date.date() if run_date else None, ranker=ranker, k=k,
            llm_model=llm_model, llm_rpm=llm_rpm, llm_tpm=llm_tpm, llm_concurrency=llm_concurrency,
            llm_max_users=llm_max_users,
        )
    except ValueError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    state = nightly_for(params.settings())(params, return_state=True)
    outcome = state.result(raise_on_failure=False)
    del state
    if isinstance(outcome, BaseException):
        console.print(f"[red]run failed:[/] {outcome}")
        del outcome
        gc.collect()  # release DuckDB handles held by the traceback before the interpreter exits
        raise typer.Exit(1)
    summary = outcome
    console.print(f"[green]published[/] {summary['rows']} rows for {summary['users']} users to {summary['published']}")


@app.command()
def serve(
    cron: Annotated[str, typer.Option(help="Schedule of the nightly run.")] = "0 2 * * *",
    timezone: Annotated[str, typer.Option(help="Time zone of the schedule.")] = "Europe/Berlin",
) -> None:
    """Serve the nightly flow from this process on a schedule (needs a Prefect server: PREFECT_API_URL)."""
    from prefect.schedules import Cron

    from flows.nightly import nightly

    nightly.serve(name="nightly-serve", schedules=[Cron(cron, timezone=timezone)])


@app.command("eval")
def evaluate(
    data: Annotated[Optional[Path], typer.Option(help="MovieLens dir/file or interactions CSV/Parquet (default: built-in dataset).")] = None,
    catalog: Annotated[Optional[Path], typer.Option(help="Catalogue CSV for a generic interactions file.")] = None,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Write the metrics (long format) to this JSON file.")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG: each metric against K per method.")] = None,
    sample_users: Annotated[Optional[int], typer.Option(help="Average over a random sample of test users (original: 20) with a bootstrap 95% CI.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split, the user sample and the bootstrap.")] = EVAL_DEFAULTS.seed,
    split: Annotated[SplitName, typer.Option(help="random (the original 90/10 protocol) | ua | ub (MovieLens 100k fixed splits).")] = EVAL_DEFAULTS.split,
    llm_users: Annotated[int, typer.Option(min=1, help="With an LLM endpoint: users (seeded sample) the LLM rows are computed on; LLM calls cost money.")] = EVAL_DEFAULTS.llm_users,
) -> None:
    """Evaluate popularity, ALS (original and default settings) and the rankers (LLM ones with an endpoint) on a holdout of likes."""
    from flows.evaluate import evaluate as run_evaluation
    from tasks.errors import RecsError
    from tasks.evaluate import render_table

    try:
        params = EvalParameters(
            data=data, catalog=catalog, json_file=json_file, plot=plot, sample_users=sample_users, seed=seed, split=split, llm_users=llm_users
        )
    except ValueError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    try:
        metrics, title = run_evaluation(params)
    except RecsError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    Console().print(render_table(metrics, title))


if __name__ == "__main__":
    app()
