"""`recs`: run the nightly flow locally (Prefect ephemeral mode, no server needed)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console

from flows.parameters import EvalParameters, RunParameters
from tasks.settings import GateMode, RankerName, Settings, SplitName

app = typer.Typer(
    help="explained-recs: nightly ALS + LLM recommendations with grounded explanations.",
    no_args_is_help=True,
    rich_markup_mode=None,  # usage errors as plain lines, not boxes
    pretty_exceptions_enable=False,
)
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
    run_date: Annotated[Optional[str], typer.Option(help="Night to compute, YYYY-MM-DD (default today).")] = None,
    ranker: Annotated[Optional[RankerName], typer.Option(help="Ranking backend.")] = None,
    k: Annotated[Optional[int], typer.Option(help="Recommendations per user (at most --n-candidates).")] = None,
    n_candidates: Annotated[Optional[int], typer.Option(help="ALS candidates per user handed to the ranker.")] = None,
    replace_source: Annotated[bool, typer.Option("--replace-source", help="The home was built from another source: replace its data (published partitions are kept).")] = False,
    llm_model: Annotated[Optional[str], typer.Option(help="Chat model of the llm ranker (env RECS_LLM_MODEL).")] = None,
    llm_rpm: Annotated[Optional[int], typer.Option(help="LLM requests per minute at most (env RECS_LLM_RPM).")] = None,
    llm_tpm: Annotated[Optional[int], typer.Option(help="LLM tokens per minute at most (env RECS_LLM_TPM).")] = None,
    llm_concurrency: Annotated[Optional[int], typer.Option(help="LLM requests in flight at most (env RECS_LLM_CONCURRENCY).")] = None,
    llm_max_users: Annotated[Optional[int], typer.Option(help="Uncached users sent to the LLM per run at most, most changed first (env RECS_LLM_MAX_USERS).")] = None,
    llm_gate: Annotated[Optional[GateMode], typer.Option(help="auto: a nightly canary decides whether the LLM beats ALS; on: always; off: no canary (env RECS_LLM_GATE).")] = None,
) -> None:
    """Run the nightly flow once: ingest, train, candidates, rank, publish."""
    from tasks.errors import RecsError

    try:
        params = RunParameters.checked(
            data=data, catalog=catalog, home=home, run_date=parse_date(run_date), ranker=ranker, k=k,
            n_candidates=n_candidates, replace_source=replace_source or None, llm_model=llm_model, llm_rpm=llm_rpm, llm_tpm=llm_tpm,
            llm_concurrency=llm_concurrency, llm_max_users=llm_max_users, llm_gate=llm_gate,
        )
        settings = params.settings()
        check_before_start(settings)
    except RecsError as error:
        fail(error, 2)
    finish(run_flow(params, settings))


def parse_date(text: str | None) -> date | None:
    """`--run-date` as a date, with the reason when it is not one."""
    from tasks.errors import SettingsError

    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise SettingsError(f"--run-date {text!r} is not a date (YYYY-MM-DD): {error}") from None


def check_before_start(settings: Settings) -> None:
    """What can be known wrong before Prefect starts: a source that is not there, a home that cannot be written."""
    from tasks.source import detect_source

    if settings.data is not None:
        detect_source(settings.data, settings.catalog, settings.max_input_bytes)
    from tasks.home import exclusive  # imports Prefect: after the checks that need nothing of it

    with exclusive(settings):  # writable and not in use (the flow takes the lock for real)
        pass


def run_flow(params: RunParameters, settings: Settings) -> dict[str, Any] | BaseException:
    """Run the nightly flow in this process: its summary, or the error (a signal's stop included)."""
    from flows.lifeline import named_to_workers, start_local_prefect
    from flows.nightly import nightly_for
    from tasks import stop

    _filter_prefect_handlers()
    try:
        with stop.on_signals():
            local_api = start_local_prefect()
            with named_to_workers(local_api if settings.task_runner == "dask" else None):
                outcome = nightly_for(settings)(params, return_state=True).result(raise_on_failure=False)
    except (stop.Stopped, KeyboardInterrupt) as error:
        outcome = error if isinstance(error, stop.Stopped) else stop.Stopped("stopped by SIGINT")
    if isinstance(outcome, BaseException):
        release_frames(outcome)
    return outcome


def release_frames(error: BaseException) -> None:
    """Drop the tracebacks of `error` and its causes, and collect: the frames held DuckDB handles,
    which extension modules would otherwise report as leaks when the interpreter exits."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        cause.__traceback__ = None
        cause = cause.__cause__ or cause.__context__
    gc.collect()


def finish(outcome: dict[str, Any] | BaseException) -> NoReturn:
    """Print the run's one closing line and exit: 0 published, 1 failed, 128+signal when stopped."""
    from tasks import stop

    if isinstance(outcome, BaseException):
        if stop.requested():
            try:
                fail(outcome, 128 + signal.Signals[stop.reason() or "SIGTERM"], "stopped")
            except typer.Exit as stopped:  # asked to die: no interpreter finalisation, whose leak reports of the handles
                sys.stdout.flush()  # the stopped threads still hold would follow the closing line
                sys.stderr.flush()
                os._exit(stopped.exit_code)
        fail(outcome, 1, "run failed")
    exit_now(0, f"[green]published[/] {outcome['rows']} rows for {outcome['users']} users to {outcome['published']}")


def fail(error: BaseException, code: int, label: str = "error") -> NoReturn:
    from tasks.errors import describe

    exit_now(code, f"[red]{label}:[/] {describe(error)}")


def exit_now(code: int, closing_line: str) -> NoReturn:
    """Exit with `closing_line` as the last line, after the local Prefect server (if any) stopped."""
    from flows.lifeline import stop_local_prefect

    stop_local_prefect()
    console.print(closing_line)
    raise typer.Exit(code)


@app.command()
def serve(
    cron: Annotated[str, typer.Option(help="Schedule of the nightly run.")] = "0 2 * * *",
    timezone: Annotated[str, typer.Option(help="Time zone of the schedule.")] = "Europe/Berlin",
) -> None:
    """Serve the nightly flow from this process on a schedule (needs a Prefect server: PREFECT_API_URL)."""
    from prefect.schedules import Cron
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        console.print("[red]error:[/] recs serve needs a Prefect server: run `prefect server start` and set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)")
        raise typer.Exit(2)
    from flows.nightly import nightly

    nightly.serve(name="nightly-serve", schedules=[Cron(cron, timezone=timezone)])


@app.command("eval")
def eval_command(
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
    from flows.evaluate import run_evaluation
    from evaluation.compare import render_table
    from tasks.errors import RecsError

    try:
        params = EvalParameters.checked(
            data=data, catalog=catalog, json_file=json_file, plot=plot, sample_users=sample_users, seed=seed, split=split, llm_users=llm_users
        )
        metrics, title = run_evaluation(params)
    except RecsError as error:
        fail(error, 2)
    Console().print(render_table(metrics, title))


def home_settings(home: Path | None) -> Settings:
    """Settings of an existing home (flag, else RECS_HOME, else ./data)."""
    from tasks.errors import SettingsError

    try:
        return Settings(**({"home": home} if home is not None else {}))
    except ValueError as error:
        raise SettingsError(str(error).splitlines()[0]) from None


@app.command()
def show(
    user: Annotated[int, typer.Option(help="The user whose list to show.")],
    run_date: Annotated[Optional[str], typer.Option(help="Published night, YYYY-MM-DD (default: the latest).")] = None,
    home: Annotated[Optional[Path], typer.Option(help="Data home (env RECS_HOME, default ./data).")] = None,
) -> None:
    """One user's published list (rank, title, explanation, evidence titles, ranker) and the history items they liked most."""
    from tasks.errors import RecsError
    from tasks.show import render, user_night

    try:
        shown = user_night(home_settings(home), user, parse_date(run_date))
    except RecsError as error:
        fail(error, 2)
    out = Console()
    for table in render(shown):
        out.print(table)


@app.command()
def report(
    home: Annotated[Optional[Path], typer.Option(help="Data home (env RECS_HOME, default ./data).")] = None,
    nights: Annotated[Optional[int], typer.Option(min=1, help="Latest nights in the trend (env RECS_REPORT_TREND_NIGHTS, default 7).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG: each figure against the night, and the ranker mix.")] = None,
) -> None:
    """The nightly report's trend: coverage, novelty, diversity, personalisation, churn, ranker mix, LLM cost."""
    from tasks import db
    from tasks.errors import RecsError
    from tasks.report import render_trend, trend, write_trend_plot
    from tasks.show import NotFound, existing_home

    try:
        settings = home_settings(home)
        existing_home(settings)
        with db.connect(settings) as con:
            rows = trend(con, None, nights or settings.report_trend_nights)
        if rows.is_empty():
            raise NotFound(f"no night reported in {settings.home} yet")
    except RecsError as error:
        fail(error, 2)
    if plot is not None:
        write_trend_plot(rows, plot)
    Console().print(render_trend(rows, f"report of the last {rows.height} nights"))


if __name__ == "__main__":
    app()
