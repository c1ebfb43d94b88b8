"""Validate: the great-expectations suites in `expectations/` on both ends of the nightly run.

A suite file is a GX 1.x suite definition. Every expectation carries `meta.name` (its key in
results) and a GX `severity`: `critical` stops the run, `warning`/`info` are reported and the
run goes on. The suite's `meta.batch` names the SQL whose rows GX validates (pandas frames in an
ephemeral context), in chunks of whole `meta.chunk_by` values (users) of at most
`RECS_CHECK_CHUNK_ROWS` rows, `RECS_CHECK_THREADS` chunks side by side (a GX context each), so
memory stays bounded: only row-level expectations go there (a uniqueness check must include the
chunk column), and an expectation failing in any chunk fails.
An expectation over the whole table (a row count) names its own small aggregate batch in its
`meta.batch`, validated whole. `meta.sql_checks` lists the checks GX cannot express on one frame
(referential, per user): SQL files returning the offending rows. Both kinds feed one result: rows in
`validation_runs`, a table in the log, offending rows in
`<home>/quarantine/run_date=YYYY-MM-DD/<suite>.parquet`, and `gate()`.

Run parameters reach GX expectations as `{"$PARAMETER": name}` and SQL checks as `$name`;
`previous_<check>` is the number check `<check>` observed on the latest earlier night (0 if none).
"""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tasks import db, fanout
from tasks.errors import RecsError
from tasks.ingest import Limits, resolve_source
from tasks.publish import write_atomically
from tasks.settings import Settings

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.expectations import Expectation
    from great_expectations.core import ExpectationValidationResult
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext

EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "expectations"
SEVERITIES = ("critical", "warning", "info")
EXAMPLES = 3  # offending rows quoted per failed check
EXAMPLE_CHARS = 60  # longer values are cut in messages
CROSS_ROW = {"expect_compound_columns_to_be_unique": "column_list", "expect_column_values_to_be_unique": "column"}


class ValidationFailed(RecsError):
    """A critical check failed; the message names each failed check with example rows."""


@dataclass(frozen=True)
class SqlCheck:
    name: str
    sql: str  # sql/<sql>.sql returns the offending rows
    severity: str
    description: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class GxBatch:
    """GX expectations and the SQL whose rows they are validated on."""

    sql: str
    expectations: ExpectationSuite
    chunk_by: str | None = None  # validated chunk by chunk of whole values of this column ($chunks, $chunk); None: whole


@dataclass(frozen=True)
class Suite:
    name: str
    rows: GxBatch  # the suite's row batch (meta.batch), validated in chunks
    aggregates: tuple[GxBatch, ...]  # small batches named by single expectations, validated whole
    sql_checks: tuple[SqlCheck, ...]

    @property
    def batches(self) -> tuple[GxBatch, ...]:
        return (self.rows, *self.aggregates)

    @property
    def check_names(self) -> list[str]:
        gx_names = [e.meta["name"] for batch in self.batches for e in batch.expectations.expectations]
        return gx_names + [c.name for c in self.sql_checks]


@dataclass(frozen=True)
class Outcome:
    """One check's result: a row of `validation_runs`."""

    name: str
    kind: str  # GX expectation type, or the SQL file
    severity: str
    description: str
    success: bool
    observed: Any
    unexpected_count: int | None
    examples: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ValidationReport:
    suite: str
    run_date: date
    outcomes: tuple[Outcome, ...]
    quarantine: Path | None  # offending rows of every failed check, if any

    @property
    def failures(self) -> tuple[Outcome, ...]:
        """Failed critical checks: the run must stop."""
        return tuple(o for o in self.outcomes if not o.success and o.severity == "critical")

    @property
    def warnings(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.success and o.severity != "critical")

    def __str__(self) -> str:
        passed = sum(o.success for o in self.outcomes)
        text = f"{self.suite}: {passed}/{len(self.outcomes)} checks passed"
        for label, outcomes in (("critical", self.failures), ("warning", self.warnings)):
            if outcomes:
                text += f", {label}: {', '.join(o.name for o in outcomes)}"
        return text


# --- suites -------------------------------------------------------------------------------


def load_suite(name: str, directory: Path = EXPECTATIONS_DIR) -> Suite:
    """Read `expectations/<name>.json`; ValueError unless every check has a unique name and a known severity,
    and every expectation on the chunked row batch gives the same verdict chunk by chunk as on the whole."""
    from great_expectations import ExpectationSuite

    definition = json.loads((directory / f"{name}.json").read_text())
    meta = definition["meta"]
    by_batch: dict[str, list[dict]] = {meta["batch"]: []}
    for expectation in definition["expectations"]:
        by_batch.setdefault((expectation.get("meta") or {}).get("batch", meta["batch"]), []).append(expectation)
    rows, *aggregates = (
        GxBatch(sql, ExpectationSuite(name=f"{name}:{sql}", expectations=listed), meta["chunk_by"] if sql == meta["batch"] else None)
        for sql, listed in by_batch.items()
    )
    sql_checks = tuple(
        SqlCheck(c.get("name"), c["sql"], c.get("severity"), c.get("description", ""), c.get("params", {}))
        for c in meta.get("sql_checks", [])
    )
    suite = Suite(name, rows, tuple(aggregates), sql_checks)
    expectations = [e for batch in suite.batches for e in batch.expectations.expectations]
    names = [(e.meta or {}).get("name") for e in expectations] + [c.name for c in sql_checks]
    severities = {str(e.severity.value) for e in expectations} | {c.severity for c in sql_checks}
    if None in names or len(set(names)) < len(names) or not severities <= set(SEVERITIES):
        raise ValueError(f"suite {name}: every check needs a unique name and a severity in {SEVERITIES}")
    if unchunkable := [e.meta["name"] for e in rows.expectations.expectations if not _chunkable(e, rows.chunk_by)]:
        raise ValueError(
            f"suite {name}: {', '.join(unchunkable)} cannot be checked chunk by chunk of {rows.chunk_by}"
            " (a row-level expectation without `mostly`; a uniqueness check including the chunk column): give it its own batch"
        )
    return suite


def _chunkable(expectation: Expectation, chunk_by: str) -> bool:
    """Whether the expectation's verdict on the whole batch is the verdict of every chunk of whole `chunk_by` values."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    if not isinstance(expectation, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation):
        return False
    compared = CROSS_ROW.get(expectation.expectation_type)
    columns = getattr(expectation, compared) if compared else [chunk_by]
    return (getattr(expectation, "mostly", 1) or 1) >= 1 and chunk_by in ([columns] if isinstance(columns, str) else columns)


_IDLE_CONTEXTS: queue.SimpleQueue[AbstractDataContext] = queue.SimpleQueue()
_NEW_CONTEXT = threading.Lock()  # GX sets process-wide state while it makes a context: one at a time


@contextmanager
def gx_context() -> Iterator[AbstractDataContext]:
    """A GX context for one thread at a time (its execution engine holds the batch being validated), kept for reuse."""
    try:
        context = _IDLE_CONTEXTS.get_nowait()
    except queue.Empty:
        with _NEW_CONTEXT:
            context = _new_context()
    try:
        yield context
    finally:
        _forget_batches(context)
        _IDLE_CONTEXTS.put(context)


def _forget_batches(context: AbstractDataContext) -> None:
    """Drop the batch GX keeps after validating it (its execution engine holds the last one until the next: a chunk of
    up to RECS_CHECK_CHUNK_ROWS rows per idle context: ~500 MiB after both checks at 20M ratings, for the rest of the
    night)."""
    manager = context.data_sources.get("recs").get_execution_engine().batch_manager
    manager.reset_batch_cache()
    manager.batch_data_cache.clear()


@cache
def _batch_definition(context: AbstractDataContext, batch_sql: str) -> BatchDefinition:
    """A whole-dataframe batch definition of one batch's asset in `context`."""
    return context.data_sources.get("recs").add_dataframe_asset(batch_sql).add_batch_definition_whole_dataframe("whole")


def _new_context() -> AbstractDataContext:
    """An ephemeral GX context: nothing on disk, no network, no progress bars, no batch fingerprints.

    GX is imported here, not at module level: its import takes seconds and only validation needs it. GX fingerprints
    every pandas batch under HASH_THRESHOLD bytes (an md5 of pandas' row hashes, ~0.1 s per 1M rows, twice per batch);
    the fingerprint is a batch marker nothing here reads, so the threshold is 0.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.data_sources.add_pandas("recs")
    return context


# --- running checks -----------------------------------------------------------------------

Checked = tuple[Outcome, pl.DataFrame]  # an outcome and its offending rows


def validate_batch(
    con: duckdb.DuckDBPyConnection, batch: GxBatch, params: Mapping[str, Any], chunk_rows: int, threads: int = 1
) -> list[Checked]:
    """The batch's expectations on the rows of its SQL: whole, or chunk by chunk, `threads` chunks at once (one outcome
    per expectation). pandas releases the GIL in its hashing, so threads validate chunks side by side."""
    if not batch.expectations.expectations:
        return []
    if batch.chunk_by is None:
        return validate_frame(batch, db.frame(con, batch.sql, bind(batch.sql, params)), params)
    rows = len(con.sql(db.sql(batch.sql), params=bind(batch.sql, {**params, "chunks": 1, "chunk": 0})))
    chunks = max(1, -(-rows // chunk_rows))
    frames = (db.frame(con, batch.sql, bind(batch.sql, {**params, "chunks": chunks, "chunk": chunk})) for chunk in range(chunks))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="recs-check") as pool:
        per_chunk = fanout.bounded(lambda frame: pool.submit(validate_frame, batch, frame, params), frames, threads)
    return [_merged(parts) for parts in zip(*per_chunk, strict=True)]


def validate_frame(batch: GxBatch, frame: pl.DataFrame, params: Mapping[str, Any]) -> list[Checked]:
    """Run the batch's GX expectations on `frame`; offending rows come from GX's unexpected indices."""
    with gx_context() as context:
        gx_batch = _batch_definition(context, batch.sql).get_batch(batch_parameters={"dataframe": _for_gx(frame).to_pandas()})
        results = gx_batch.validate(batch.expectations, expectation_parameters=dict(params), result_format="COMPLETE")
    return [_gx_outcome(result, frame) for result in results.results]


def _merged(parts: Sequence[Checked]) -> Checked:
    """One expectation over every chunk: failed if it failed in any, unexpected rows added up."""
    outcomes = [outcome for outcome, _ in parts]
    offending = pl.concat([rows for _, rows in parts], how="vertical_relaxed")
    counts = [o.unexpected_count for o in outcomes]
    merged = replace(
        outcomes[0],
        success=all(o.success for o in outcomes),
        observed=next((o.observed for o in outcomes if not o.success), outcomes[0].observed),
        unexpected_count=None if None in counts else sum(counts),
        examples=_examples(offending),
    )
    return merged, offending


def _for_gx(frame: pl.DataFrame) -> pl.DataFrame:
    """Numbers as 64-bit: GX's pandas range checks are vectorised only for int64/float64 (else a Python loop)."""
    return frame.with_columns(pl.col(pl.Int8, pl.Int16, pl.Int32).cast(pl.Int64), pl.col(pl.Float32).cast(pl.Float64))


def _gx_outcome(result: ExpectationValidationResult, frame: pl.DataFrame) -> Checked:
    config, details = result.expectation_config, result.result or {}
    offending = frame[details.get("unexpected_index_list") or []]
    errors = _exception_messages(result.exception_info or {})
    outcome = Outcome(
        name=config.meta["name"],
        kind=config.type,
        severity=str(config.severity.value),
        description=config.description or "",
        success=bool(result.success) and not errors,
        observed=f"error: {errors[0]}" if errors else _plain(details.get("observed_value")),
        unexpected_count=details.get("unexpected_count"),
        examples=_examples(offending),
    )
    return outcome, offending


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (stored as JSON, read back as `previous_<check>`)."""
    return value.item() if isinstance(value, np.generic) else value


def _exception_messages(info: Mapping[str, Any]) -> list[str]:
    """GX reports an exception either flat or per metric; collect the messages."""
    reports = [info] if "raised_exception" in info else list(info.values())
    return [r.get("exception_message") or "exception" for r in reports if r.get("raised_exception")]


def run_sql_checks(con: duckdb.DuckDBPyConnection, suite: Suite, params: Mapping[str, Any]) -> list[Checked]:
    """Run the suite's SQL checks; each returns its offending rows."""
    checked = []
    for check in suite.sql_checks:
        offending = db.frame(con, check.sql, bind(check.sql, {**params, **check.params}))
        outcome = Outcome(
            name=check.name,
            kind=check.sql,
            severity=check.severity,
            description=check.description,
            success=offending.is_empty(),
            observed=None,
            unexpected_count=offending.height,
            examples=_examples(offending),
        )
        checked.append((outcome, offending))
    return checked


def bind(sql_name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters `sql/<sql_name>.sql` refers to (DuckDB rejects unused ones)."""
    used = set(re.findall(r"\$(\w+)", db.sql(sql_name)))
    return {name: value for name, value in params.items() if name in used}


def _examples(offending: pl.DataFrame) -> tuple[dict[str, Any], ...]:
    return tuple(offending.head(EXAMPLES).to_dicts())


def validate(
    con: duckdb.DuckDBPyConnection, settings: Settings, suite: Suite, params: Mapping[str, Any], now: datetime
) -> ValidationReport:
    """Run a suite on its batch and its SQL checks for the run date; store outcomes, quarantine offending rows."""
    run_date = settings.run_date
    params = {**params, "run_date": run_date, "suite": suite.name, **previous_observed(con, suite, run_date)}
    chunk_rows, threads = settings.check_chunk_rows, settings.check_threads
    checked = [c for batch in suite.batches for c in validate_batch(con, batch, params, chunk_rows, threads)]
    checked += run_sql_checks(con, suite, params)
    quarantine = write_quarantine(checked, quarantine_dir(settings) / f"{suite.name}.parquet", settings.staging_dir)
    report = ValidationReport(suite.name, run_date, tuple(o for o, _ in checked), quarantine)
    record(con, report, now)
    return report


def previous_observed(con: duckdb.DuckDBPyConnection, suite: Suite, run_date: date) -> dict[str, float]:
    """`previous_<check>`: what each check observed on the latest earlier night, 0 if not a number."""
    rows = dict(db.run(con, "validate/previous_observed", {"suite": suite.name, "run_date": run_date}))
    values = {name: json.loads(rows[name]) if rows.get(name) else None for name in suite.check_names}
    return {f"previous_{name}": v if isinstance(v, int | float) else 0 for name, v in values.items()}


def write_quarantine(checked: list[Checked], target: Path, staging_dir: Path) -> Path | None:
    """Offending rows of every failed check, tagged with the check's name; an earlier file is replaced or removed."""
    frames = [rows.select(pl.lit(o.name).alias("expectation"), pl.all()) for o, rows in checked if not rows.is_empty()]
    if not frames:
        target.unlink(missing_ok=True)
        return None
    write_atomically(pl.concat(frames, how="diagonal_relaxed").to_arrow(), target, staging_dir)
    return target


def record(con: duckdb.DuckDBPyConnection, report: ValidationReport, validated_at: datetime) -> None:
    rows = pl.DataFrame(
        {
            "run_date": [report.run_date] * len(report.outcomes),
            "suite": report.suite,
            "expectation": [o.name for o in report.outcomes],
            "kind": [o.kind for o in report.outcomes],
            "severity": [o.severity for o in report.outcomes],
            "success": [o.success for o in report.outcomes],
            "observed_value": [None if o.observed is None else json.dumps(o.observed, default=str) for o in report.outcomes],
            "unexpected_count": [o.unexpected_count for o in report.outcomes],
            "validated_at": validated_at,
        },
        schema_overrides={"observed_value": pl.String, "unexpected_count": pl.Int64},
    )
    with db.registered(con, "new_validation_runs", rows):
        db.run(con, "validate/record")


# --- the two suites of the nightly run ----------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def quarantine_dir(settings: Settings) -> Path:
    return settings.home / "quarantine" / f"run_date={settings.run_date.isoformat()}"


class InputChecksFailed(RecsError):
    """The input checks could not run on the stored history (one line, no traceback)."""


def check_inputs(con: duckdb.DuckDBPyConnection, settings: Settings) -> ValidationReport:
    """The `interactions` suite on everything ingested so far; an error on the stored rows becomes one line."""
    rating_min, rating_max = resolve_source(settings).interactions.rating_range
    limits = Limits.of(settings)
    params = {"max_ts": limits.max_ts, "min_ts": limits.min_ts, "rating_min": rating_min, "rating_max": rating_max}
    try:
        return validate(con, settings, load_suite("interactions"), params, utc_now())
    except (duckdb.Error, ValueError, OverflowError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise InputChecksFailed(f"input checks could not run on the stored interactions: {first_line}") from None


def check_outputs(con: duckdb.DuckDBPyConnection, settings: Settings) -> ValidationReport:
    """The `recommendations` suite on the run date's ranked rows."""
    params = {"k": settings.k, "like_threshold": settings.like_threshold}
    return validate(con, settings, load_suite("recommendations"), params, utc_now())


def gate(report: ValidationReport) -> ValidationReport:
    """Raise ValidationFailed naming each failed critical check and a few offending rows."""
    if not report.failures:
        return report
    lines = [f"{report.suite} checks failed for {report.run_date}:"]
    for o in report.failures:
        found = f"observed {o.observed}" if o.unexpected_count is None else f"{o.unexpected_count} unexpected rows"
        lines.append(f"- {o.name}: {found} — {o.description} (checked by {o.kind})")
        lines += [f"    e.g. {_short(example)}" for example in o.examples]
    if report.quarantine:
        lines.append(f"offending rows: {report.quarantine}")
    raise ValidationFailed("\n".join(lines))


def _short(row: Mapping[str, Any]) -> str:
    """A row for a message: empty fields left out, long values cut."""

    def cut(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"

    return "{" + ", ".join(f"{key}: {cut(value)}" for key, value in row.items() if value is not None) + "}"


def render(report: ValidationReport) -> str:
    """The outcomes as a markdown table: in the run log and as a Prefect artifact."""
    lines = [
        f"**{report.suite}** checks for {report.run_date}",
        "",
        "| check | severity | result | observed | unexpected |",
        "|---|---|---|---|---|",
    ]
    for o in report.outcomes:
        cells = [o.name, o.severity, "ok" if o.success else "FAILED", o.observed, o.unexpected_count]
        lines.append("| " + " | ".join("" if c is None else str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _run_suite(settings: Settings, check: Callable[[duckdb.DuckDBPyConnection, Settings], ValidationReport]) -> ValidationReport:
    with db.connect(settings) as con:
        return check(con, settings)


def _report_and_gate(report: ValidationReport) -> ValidationReport:
    """Show the outcomes in the log and as a markdown artifact, then gate."""
    table = render(report)
    get_run_logger().info("%s\n%s", report, table)
    create_markdown_artifact(key=f"checks-{report.suite}-{report.run_date.isoformat()}", markdown=table, description=str(report))
    return gate(report)


@task(name="validate-inputs")
def validate_inputs(settings: Settings) -> ValidationReport:
    """Prefect task: the input suite; raises ValidationFailed on a critical failure (before training)."""
    return _report_and_gate(_run_suite(settings, check_inputs))


@task(name="validate-outputs")
def validate_outputs(settings: Settings) -> ValidationReport:
    """Prefect task: the output suite; raises ValidationFailed on a critical failure (before publish)."""
    return _report_and_gate(_run_suite(settings, check_outputs))
