"""Ingest: source files -> `interactions`, `catalog` and `quarantine` in DuckDB.

Every format is read by DuckDB's readers with the lines they cannot take recorded (so a bad row keeps its exact line
number; a line that cannot be decoded or is too long is quarantined, never guessed at), split into text fields, typed
and judged in SQL; usable rows are loaded, the rest quarantined with a reason. An interactions file is first loaded in
one pass as plainly typed rows, then checked from the table (limits, repeated keys). A file with a row that is not plain
or breaks a check is ingested again from the start (`Attempt`), its rows classified one by one into a staging table; one
whose rows overlap earlier loads in time is loaded again leaving out the rows those hold. A source's files are staged
and checked before anything joins the history: a file quarantining more than `max_quarantined_share` of its rows is
refused whole (`rejected_files`). A file whose content was loaded before is skipped (hashed while DuckDB reads it). A
home keeps the one source it was built from (`home_source`)."""

from __future__ import annotations

import hashlib
import itertools
import re
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import duckdb
from prefect import task

from tasks.db import connect, frame, run, scalar, transaction, view
from tasks.errors import InputError
from tasks.source import RATING_RANGE, CatalogFile, InteractionsFile, Source, detect_source, header_names
from tasks.generate import write_dataset
from tasks.settings import Settings

STAGED_TABLE = "classified_interactions"  # the materialised classified rows of an interactions file with a problem row
_READS = itertools.count()  # each read's rejects go to a table of their own (DuckDB appends to an existing one)


@dataclass(frozen=True)
class Limits:
    """What ingest accepts of a source (from Settings; see the README's input contract)."""

    min_ts: datetime
    max_ts: datetime
    max_line_bytes: int
    max_quarantined_share: float
    max_title_change_share: float

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """Timestamps after max(now, end of run_date) + tolerance are in the future."""
        end_of_night = datetime.combine(settings.run_date + timedelta(days=1), datetime.min.time())
        latest = max(datetime.now(timezone.utc).replace(tzinfo=None), end_of_night)
        return cls(
            min_ts=settings.min_timestamp,
            max_ts=latest + timedelta(hours=settings.future_tolerance_hours),
            max_line_bytes=settings.max_line_bytes,
            max_quarantined_share=settings.max_quarantined_share,
            max_title_change_share=settings.max_title_change_share,
        )


@dataclass
class IngestReport:
    """What one ingest did; row counts are those of interactions, catalogue rows are counted apart."""

    files_loaded: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_converted: int = 0
    catalog_rows_loaded: int = 0
    catalog_rows_quarantined: int = 0
    catalog_titles_changed: int = 0
    row_by_row: bool = False  # the interactions rows were classified one by one (a row not plain), not loaded in one pass

    def __str__(self) -> str:
        return (
            f"{self.rows_loaded:,} of {self.rows_read:,} interaction rows loaded{self._how()}, {self.rows_quarantined:,} quarantined,"
            f" {self.rows_converted:,} converted (see ingest_notes);"
            f" catalogue {self.catalog_rows_loaded:,} loaded, {self.catalog_rows_quarantined:,} quarantined,"
            f" {self.catalog_titles_changed:,} titles changed;"
            f" {self.files_loaded} files loaded, {self.files_skipped} already loaded before"
        )

    def _how(self) -> str:
        if not self.rows_read:
            return ""
        return " (classified row by row)" if self.row_by_row else " (in one pass)"


@dataclass(frozen=True)
class Span:
    """The plain rows of an interactions file: how many, and their time span."""

    rows: int
    first_ts: datetime
    last_ts: datetime


@dataclass(frozen=True)
class Attempt:
    """How one attempt at a source reads its files; each retry sets one more field."""

    hash_first: bool = False  # hash each file before reading it (it may be loaded already, or mix line ends)
    row_by_row: bool = False  # classify every interactions row (the file has a row that is not plain)
    overlap: Span | None = None  # the plain rows of the file, found to overlap earlier loads in time: compare to those


class Retry(Exception):
    """The attempt cannot finish (its transaction is rolled back): ingest the source again as `attempt`."""

    def __init__(self, attempt: Attempt) -> None:
        super().__init__(attempt)
        self.attempt = attempt


class FileRejected(InputError):
    """A file failed a check of its own rows; nothing of it (or of its source this run) was loaded."""

    def __init__(self, path: Path, sha256: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}; nothing of it was loaded (recorded in rejected_files), a corrected file loads on the next run")
        self.path, self.sha256, self.reason = path, sha256, reason


@dataclass(frozen=True)
class FileScan:
    """One pass over a file's bytes: its content hash, whether it mixes line ends."""

    sha256: str
    mixed_line_ends: bool = False  # CRLF and bare LF: DuckDB's CSV reader refuses such a file, so it reads an LF copy


def scan_file(path: Path) -> FileScan:
    """Hash the file; count its line ends per chunk only until both kinds were seen (a file without a CR: one memchr)."""
    digest, crlf, bare_lf, last = hashlib.sha256(), False, False, b""
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
            if not (crlf and bare_lf):
                ends = (chunk.count(b"\r\n") if b"\r" in chunk else 0) + (last == b"\r" and chunk[:1] == b"\n")
                crlf, bare_lf = crlf or ends > 0, bare_lf or chunk.count(b"\n") > ends
            last = chunk[-1:]
    return FileScan(digest.hexdigest(), crlf and bare_lf)


def empty_lines(path: Path) -> list[int]:
    """The 1-based numbers of the file's empty lines: DuckDB's CSV reader skips them, so the rows after them are renumbered."""
    found, newlines_before, carry = [], -1, b"\n"  # a virtual newline before line 1: a file starting with one has an empty line 1
    with path.open("rb") as f:
        while True:
            chunk = f.read(1 << 24)
            data = carry + chunk
            settled = len(data) if not chunk else len(data) - 2  # the last two bytes may start an empty line
            if b"\n\n" in data or b"\n\r\n" in data:
                found += [newlines_before + data.count(b"\n", 0, match.start() + 1) + 1
                          for match in re.finditer(rb"\n(?=\r?\n)", data) if match.start() < settled]  # fmt: skip
            if not chunk:
                return found
            newlines_before += data.count(b"\n", 0, settled)
            carry = data[settled:]


def lf_copy(path: Path, directory: Path) -> Path:
    """A copy of `path` in `directory` with every CRLF line end written as LF (line numbers and fields unchanged)."""
    target = directory / f"{path.name}.lf"
    with path.open("rb") as source, target.open("wb") as out:
        pending = b""
        while chunk := source.read(1 << 24):
            data = pending + chunk
            pending = data[-1:] if data.endswith(b"\r") else b""  # its LF may start the next chunk
            out.write(data[: len(data) - len(pending)].replace(b"\r\n", b"\n"))
        out.write(pending)
    return target


def ingest_source(
    con: duckdb.DuckDBPyConnection, source: Source, limits: Limits | None = None, identity: tuple[str, str] | None = None,
    attempt: Attempt = Attempt(),
) -> IngestReport:
    """Stage and check the catalogue (if any) and the interactions, then commit both together; skip files loaded before.

    A file failing its own checks raises FileRejected: nothing of this source is loaded, the refusal is recorded.
    `identity` (kind, location) is recorded as the home's source with the first load. `attempt`: how the first attempt
    reads (Attempt(row_by_row=True): classify every row, the path a file with a problem row takes).
    """
    limits = limits or Limits.of(Settings())
    while True:
        try:
            return _ingest_source(con, source, limits, identity, attempt)
        except Retry as retry:
            attempt = retry.attempt


def _ingest_source(
    con: duckdb.DuckDBPyConnection, source: Source, limits: Limits, identity: tuple[str, str] | None, attempt: Attempt
) -> IngestReport:
    report = IngestReport()
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    catalog = source.catalog
    try:
        with transaction(con):
            if catalog is not None:
                stage_catalog = partial(_stage_catalog, con, catalog, limits)
                counts = _load_file(con, catalog.path, "catalog", stage_catalog, loaded_at, limits, attempt)
                if counts:
                    _, report.catalog_rows_loaded, report.catalog_rows_quarantined, report.catalog_titles_changed = counts
                report.files_loaded += counts is not None
                report.files_skipped += counts is None
            stage = partial(_stage_interactions, con, source.interactions, catalog is not None, limits, attempt, loaded_at)
            counts = _load_file(con, source.interactions.path, "interactions", stage, loaded_at, limits, attempt,
                                text=not source.interactions.is_parquet)
            if counts:
                report.rows_read, report.rows_loaded, report.rows_quarantined, report.rows_converted = counts
                report.row_by_row = attempt.row_by_row
            report.files_loaded += counts is not None
            report.files_skipped += counts is None
            if identity and report.files_loaded:
                run(con, "ingest/record_home_source", {"kind": identity[0], "location": identity[1], "recorded_at": loaded_at})
    except FileRejected as rejected:
        run(con, "ingest/record_rejected_file", {
            "sha256": rejected.sha256, "source": str(rejected.path.resolve()), "reason": rejected.reason, "rejected_at": loaded_at,
        })  # fmt: skip
        raise
    return report


@dataclass(frozen=True)
class Staged:
    """A file's rows, staged: the table of its classified rows and their counts, or (`loaded` set) the count its plain
    rows added to interactions already."""

    relation: str
    rows_read: int
    rows_quarantined: int
    first_ts: datetime | None = None  # the time span of its usable interaction rows (bounds the anti-join)
    last_ts: datetime | None = None
    loaded: int | None = None


def _load_file(
    con: duckdb.DuckDBPyConnection, path: Path, kind: str, stage: Callable[[Path], Staged], loaded_at: datetime,
    limits: Limits, attempt: Attempt, text: bool = True,
) -> tuple[int, int, int, int] | None:
    """Stage, check, load and quarantine one file: (read, loaded, quarantined, converted or titles changed), None if seen before.

    The file is hashed in a thread while DuckDB reads it, unless `attempt.hash_first` or the same path was loaded before
    (then probably the same content again: hashed first, nothing read when it was); when the hash says the file was
    loaded before or it mixes line ends, the source is ingested again hashing first. A text file mixing CRLF and LF line
    ends is read from an LF copy in a temporary directory (DuckDB's reader fails on such a file or splits it wrongly)."""
    source = str(path.resolve())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-hash") as pool:
        scanning = pool.submit(scan_file, path)
        known = attempt.hash_first or scalar(con, "ingest/source_loaded", {"source": source})
        return _load_scanned(con, path, source, kind, stage, loaded_at, limits, text, scanning, attempt, known)


def _load_scanned(
    con: duckdb.DuckDBPyConnection, path: Path, source: str, kind: str, stage: Callable[[Path], Staged],
    loaded_at: datetime, limits: Limits, text: bool, scanning: Future[FileScan], attempt: Attempt, known: bool,
) -> tuple[int, int, int, int] | None:
    """_load_file's body, given the file's scan, `known` before the file is read or looked at only afterwards."""
    again_hashing_first = Retry(replace(attempt, hash_first=True))
    if known and scalar(con, "ingest/file_seen", {"sha256": scanning.result().sha256}):
        return None
    with readable(path, known and text and scanning.result().mixed_line_ends) as read_path:
        try:
            staged = stage(read_path)
        except duckdb.InvalidInputException as error:  # e.g. a carriage return inside a line: no line structure to quarantine by
            if not known:  # DuckDB aborted the transaction; the file may mix line ends, or be loaded already
                raise again_hashing_first from None
            reason = f"DuckDB's CSV reader cannot split it into lines: {str(error).splitlines()[0]}"
            raise FileRejected(path, scanning.result().sha256, reason) from None
        except Retry as retry:  # its plain rows could not be loaded: it, too, may mix line ends or be loaded already
            raise Retry(replace(retry.attempt, hash_first=True)) from None
        scan = scanning.result()
        if not known and (text and scan.mixed_line_ends or scalar(con, "ingest/file_seen", {"sha256": scan.sha256})):
            raise again_hashing_first
        sha, classified = scan.sha256, staged.relation
        rows_read, rows_quarantined = staged.rows_read, staged.rows_quarantined
        _check_quarantined_share(con, path, sha, classified, rows_read, rows_quarantined, limits.max_quarantined_share)
        if kind == "catalog":
            extra = _check_title_changes(con, path, sha, limits.max_title_change_share)
            rows_loaded = scalar(con, "ingest/upsert_catalog", {"source": source})
        else:
            rows_loaded = staged.loaded if staged.loaded is not None else scalar(con, "ingest/load_interactions", {
                "classified": classified, "loaded_at": loaded_at, "first_ts": staged.first_ts, "last_ts": staged.last_ts,
            })  # fmt: skip
            run(con, "ingest/record_load", {"source": source, "loaded_at": loaded_at})
            run(con, "ingest/synthesize_catalog", {"loaded_at": loaded_at})
            extra = 0
            if classified == STAGED_TABLE:
                run(con, "ingest/record_notes", {"sha256": sha, "source": source, "loaded_at": loaded_at})
                extra = scalar(con, "ingest/converted_rows")
        if rows_quarantined:
            run(con, "ingest/quarantine_rows", {"source": source, "classified": classified, "loaded_at": loaded_at})
        if kind == "interactions":
            run(con, "ingest/drop_classified")
        run(
            con,
            "ingest/record_file",
            {
                "sha256": sha,
                "source": source,
                "rows_read": rows_read,
                "rows_loaded": rows_loaded,
                "rows_quarantined": rows_quarantined,
                "loaded_at": loaded_at,
            },
        )
        return rows_read, rows_loaded, rows_quarantined, extra


@contextmanager
def readable(path: Path, mixed_line_ends: bool) -> Iterator[Path]:
    """The file DuckDB's CSV reader reads for `path`: itself, or an LF copy (removed afterwards) when it mixes line ends."""
    if not mixed_line_ends:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="recs-lf-") as tmp:
        yield lf_copy(path, Path(tmp))


def _check_quarantined_share(
    con: duckdb.DuckDBPyConnection, path: Path, sha: str, classified: str, rows_read: int, rows_quarantined: int, max_share: float
) -> None:
    """FileRejected when more than `max_share` of the file's rows would be quarantined."""
    if rows_quarantined == 0 or rows_quarantined <= max_share * rows_read:
        return
    ((reason, count),) = run(con, "ingest/top_reason", {"classified": classified})
    raise FileRejected(
        path, sha,
        f"{rows_quarantined:,} of {rows_read:,} rows would be quarantined ({rows_quarantined / rows_read:.0%},"
        f" more than RECS_MAX_QUARANTINED_SHARE {max_share:.0%}), most often: {reason} ({count:,} rows)",
    )  # fmt: skip


def _check_title_changes(con: duckdb.DuckDBPyConnection, path: Path, sha: str, max_share: float) -> int:
    """Titles this catalogue changes for known items; FileRejected when that is more than `max_share` of them."""
    ((changed, known),) = run(con, "ingest/title_changes")
    if changed > max_share * known:
        raise FileRejected(
            path, sha,
            f"it renames {changed:,} of the {known:,} items this home's catalogue named (more than RECS_MAX_TITLE_CHANGE_SHARE"
            f" {max_share:.0%}): a different catalogue? use another --home, or --replace-source",
        )  # fmt: skip
    return changed


def _read_lines(con: duckdb.DuckDBPyConnection, path: Path, encoding: str, limits: Limits) -> None:
    """`raw_lines` (exact line numbers) and `rejected_lines` (undecodable or too long, with the reason)."""
    params = {"encoding": encoding, "max_line_bytes": limits.max_line_bytes, "rejects_table": f"line_rejects_{next(_READS)}"}
    run(con, "ingest/read_lines", {"path": str(path), **params})
    run(con, "ingest/rejected_lines", {**params, "expected_fields": 1, "delimiter": ""})
    run(con, "ingest/number_lines" if scalar(con, "ingest/rejected_count") else "ingest/lines_as_read")


def _stage_catalog(con: duckdb.DuckDBPyConnection, catalog: CatalogFile, limits: Limits, read_path: Path) -> Staged:
    """`classified_catalog` (read as numbered lines from `read_path`: empty ones are kept as such)."""
    _read_lines(con, read_path, catalog.encoding, limits)
    params = dict(catalog.params)
    if catalog.splitter != "ml100k":
        params["header_lines"] = catalog.header_lines
    run(con, f"ingest/split_catalog_{catalog.splitter}", params)
    run(con, "ingest/classify_catalog", {"header_lines": catalog.header_lines})
    ((rows_read, rows_quarantined),) = run(con, "ingest/classified_counts", {"classified": "classified_catalog"})
    return Staged("classified_catalog", rows_read, rows_quarantined)


def _stage_interactions(
    con: duckdb.DuckDBPyConnection, file: InteractionsFile, check_catalog: bool, limits: Limits, attempt: Attempt,
    loaded_at: datetime, read_path: Path,
) -> Staged:
    """The file's rows (read from `read_path`): its plain rows loaded in one pass, or (`attempt.row_by_row`) classified."""
    expected_fields = 4 if file.is_parquet else _expected_fields(file)
    read = {"delimiter": file.delimiter, "encoding": file.encoding, "max_line_bytes": limits.max_line_bytes,
            "rejects_table": f"row_rejects_{next(_READS)}"}  # fmt: skip
    columns = {_field_name(file, position): "VARCHAR" for position in range(1, expected_fields + 1)}
    text = {"path": str(read_path), "columns": columns, "header_lines": file.header_lines, **read}
    if file.is_parquet:
        rating_column = "rating" if file.rating_range == RATING_RANGE else "weight"
        view(con, "staged_interactions", "ingest/stage_parquet_interactions", {"path": str(read_path), "rating_column": rating_column})
        run(con, "ingest/no_rejected_lines")
    elif not attempt.row_by_row:
        view(con, "staged_interactions", "ingest/plain_csv_fields", text)
    else:
        view(con, "staged_interactions", "ingest/stage_csv_interactions", {**text, "expected_fields": expected_fields})
    checks = {"rating_min": file.rating_range[0], "rating_max": file.rating_range[1], "check_catalog": check_catalog,
              "min_ts": limits.min_ts, "max_ts": limits.max_ts}  # fmt: skip
    rejects = None if file.is_parquet else {**read, "expected_fields": expected_fields}
    if not attempt.row_by_row:
        return _load_plain(con, rejects, checks, attempt, loaded_at)
    return _classify(con, file, read_path, rejects, checks)


def _load_plain(
    con: duckdb.DuckDBPyConnection, rejects: dict | None, checks: dict, attempt: Attempt, loaded_at: datetime
) -> Staged:
    """Insert the staged rows into interactions as plainly typed rows, then check them from the table: no line rejected
    (`rejects`: the CSV read's parameters), all within the limits (`checks`), no key repeated. Retry row by row when a
    row is not plain or a check fails, and comparing with earlier rows when some are in the file's time span (a
    retry's transaction starts afresh: nothing of this attempt stays)."""
    row_by_row, span, load = Retry(replace(attempt, row_by_row=True)), attempt.overlap, {"loaded_at": loaded_at}
    view(con, "plain_rows", "ingest/plain_interactions")
    try:
        bounds = {"first_ts": span and span.first_ts, "last_ts": span and span.last_ts}
        loaded = scalar(con, "ingest/load_interactions", {"classified": "plain_rows", **load, **bounds})
    except (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.ConstraintException) as error:
        raise row_by_row from error  # a row that is not plain, or (a home from before issue 14) a key loaded before
    if rejects is not None:
        run(con, "ingest/rejected_lines", rejects)
        if scalar(con, "ingest/rejected_with_reason", {"header_lines": 0}):
            raise row_by_row
    ((first_ts, last_ts, within_limits),) = run(con, "ingest/loaded_facts", {**checks, **load})
    if not within_limits or frame(con, "ingest/loaded_keys", load)["key"].unique().len() < loaded:
        raise row_by_row  # (a hash collision, too, is classified row by row)
    if span is None and loaded and scalar(con, "ingest/earlier_rows_in_span", {**load, "first_ts": first_ts, "last_ts": last_ts}):
        raise Retry(replace(attempt, overlap=Span(loaded, first_ts, last_ts)))
    return Staged("interactions", span.rows if span else loaded, 0, first_ts, last_ts, loaded=loaded)


def _classify(
    con: duckdb.DuckDBPyConnection, file: InteractionsFile, read_path: Path, rejects: dict | None, checks: dict
) -> Staged:
    """The staged rows classified row by row into `classified_interactions`, with their duplicates, exact line numbers,
    raw lines and (`rejects`: the CSV read's parameters) rejected lines."""
    expected_fields = 4 if rejects is None else rejects["expected_fields"]
    view(con, "classified_rows", "ingest/classify_interactions", {"expected_fields": expected_fields, **checks})
    run(con, "ingest/stage_classified")
    if rejects is not None:
        run(con, "ingest/rejected_lines", rejects)
    run(con, "ingest/mark_duplicates")
    if scalar(con, "ingest/quarantined_count"):
        run(con, "ingest/raw_lines_of_reasons")
    skipped = [] if file.is_parquet else empty_lines(read_path)
    if not file.is_parquet and (skipped or scalar(con, "ingest/rejected_count")):
        run(con, "ingest/renumber_rows", {"empty_lines": skipped})
    run(con, "ingest/add_rejected_lines", {"header_lines": file.header_lines})
    ((rows_read, rows_quarantined),) = run(con, "ingest/classified_counts", {"classified": STAGED_TABLE})
    return Staged(STAGED_TABLE, rows_read, rows_quarantined, *run(con, "ingest/usable_span")[0])


def _field_name(file: InteractionsFile, position: int) -> str:
    """The staged name of the field at 1-based `position`: user_id, item_id, rating, ts, or field_<n> for others."""
    names = dict(zip(file.columns, ("user_id", "item_id", "rating", "ts")))
    return names.get(position, f"field_{position}")


def _expected_fields(file: InteractionsFile) -> int:
    return max(file.columns) if file.header_lines == 0 else len(header_names(file.path))


def generated_name(settings: Settings) -> str:
    return f"generated-{settings.gen_users}x{settings.gen_items}x{settings.gen_ratings}-seed{settings.gen_seed}"


def resolve_source(settings: Settings) -> Source:
    """The configured source, or the built-in generated dataset (written once under the home)."""
    if settings.data is not None:
        return detect_source(settings.data, settings.catalog, settings.max_input_bytes)
    directory = settings.home / "source" / generated_name(settings)
    interactions, catalog = directory / "interactions.csv", directory / "catalog.csv"
    if not (interactions.exists() and catalog.exists()):
        write_dataset(
            directory,
            n_users=settings.gen_users,
            n_items=settings.gen_items,
            n_ratings=settings.gen_ratings,
            seed=settings.gen_seed,
        )
    return detect_source(interactions, catalog, settings.max_input_bytes)


# --- one home, one source ------------------------------------------------------------------


def source_identity(settings: Settings) -> tuple[str, str]:
    """(kind, location) of the configured source: the generated dataset's name, or the directory holding the data.

    New files in that directory (a new day's file, a changed file at the same path) are the same source.
    """
    if settings.data is None:
        return "generated", generated_name(settings)
    data = settings.data.resolve()
    return "files", str(data if data.is_dir() else data.parent)


def home_identity(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """The source the home records; for a home that predates the record, inferred from its interaction files."""
    recorded = run(con, "ingest/home_source")
    if recorded:
        return recorded[0]
    parents = {Path(source).parent for (source,) in run(con, "ingest/loaded_sources")}
    if len(parents) != 1:
        return None if not parents else ("files", ", ".join(sorted(map(str, parents))))
    (parent,) = parents
    generated = parent.name.startswith("generated-") and parent.parent.name == "source"
    return ("generated", parent.name) if generated else ("files", str(parent))


def describe(identity: tuple[str, str]) -> str:
    kind, location = identity
    return f"the built-in dataset {location}" if kind == "generated" else location


def claim_home(settings: Settings) -> None:
    """Refuse a source other than the home's (one line: how to proceed); with replace_source, set the old data aside."""
    if not settings.db_path.exists():
        return
    with connect(settings) as con:
        recorded = home_identity(con)
    wanted = source_identity(settings)
    if recorded is None or recorded == wanted:
        return
    if not settings.replace_source:
        raise InputError(
            f"home {settings.home} was built from {describe(recorded)}, not {describe(wanted)}: use another --home,"
            " or --replace-source (RECS_REPLACE_SOURCE=true) to start this home afresh from the new source"
        )
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    for path in (settings.db_path, settings.db_path.with_name(settings.db_path.name + ".wal")):
        if path.exists():
            path.rename(path.with_name(f"{path.name}.replaced-{stamp}"))


@task(name="ingest")
def ingest(settings: Settings) -> IngestReport:
    """Prefect task: load the source into DuckDB; bad rows go to quarantine, a bad file is refused whole."""
    source = resolve_source(settings)
    claim_home(settings)
    with connect(settings) as con:
        return ingest_source(con, source, Limits.of(settings), source_identity(settings))
