"""Ingest: source files -> `interactions`, `catalog` and `quarantine` in DuckDB.

Every format is first read line by line (so a bad row keeps its exact line number), split
into text fields, typed and judged in SQL; usable rows are loaded, the rest quarantined
with a reason. A file whose content was loaded before is skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
from prefect import task

from tasks.db import connect, run, scalar, transaction
from tasks.errors import InputError
from tasks.generate import write_dataset
from tasks.settings import Settings

RATING_RANGE = (0.5, 5.0)
WEIGHT_RANGE = (0.0, 1e12)
INTERACTION_FIELDS = ("user_id", "item_id", "rating", "timestamp")


@dataclass(frozen=True)
class InteractionsFile:
    path: Path
    delimiter: str
    header_lines: int
    columns: tuple[int, int, int, int]  # 1-based positions of user, item, rating, timestamp
    rating_range: tuple[float, float] = RATING_RANGE

    @property
    def is_parquet(self) -> bool:
        return self.path.suffix == ".parquet"


@dataclass(frozen=True)
class CatalogFile:
    path: Path
    splitter: str  # sql/ingest/split_catalog_<splitter>.sql
    header_lines: int = 0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    interactions: InteractionsFile
    catalog: CatalogFile | None


@dataclass
class IngestReport:
    """What one ingest did; row counts are those of interactions, catalogue rows are counted apart."""

    files_loaded: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    catalog_rows_loaded: int = 0
    catalog_rows_quarantined: int = 0

    def __str__(self) -> str:
        return (
            f"{self.rows_loaded:,} of {self.rows_read:,} interaction rows loaded, {self.rows_quarantined:,} quarantined;"
            f" catalogue {self.catalog_rows_loaded:,} loaded, {self.catalog_rows_quarantined:,} quarantined;"
            f" {self.files_loaded} files loaded, {self.files_skipped} already loaded before"
        )


def detect_source(data: Path, catalog: Path | None = None) -> Source:
    """Recognise a MovieLens directory/file or a generic interactions file."""
    if not data.exists():
        raise InputError(f"data source {data} does not exist")
    if data.is_dir():
        for name in ("u.data", "ratings.dat", "ratings.csv"):
            if (data / name).exists():
                return detect_source(data / name, catalog)
        raise InputError(f"{data} holds no u.data, ratings.dat or ratings.csv")
    if data.name == "u.data":
        genres = _ml100k_genres(data.parent / "u.genre")
        item = data.parent / "u.item"
        return Source(
            InteractionsFile(data, "\t", 0, (1, 2, 3, 4)),
            CatalogFile(item, "ml100k", params={"genre_names": genres}) if item.exists() else None,
        )
    if data.name == "ratings.dat":
        movies = data.parent / "movies.dat"
        return Source(
            InteractionsFile(data, "::", 0, (1, 2, 3, 4)),
            CatalogFile(movies, "delimited", params={"delimiter": "::"}) if movies.exists() else None,
        )
    if data.suffix == ".csv":
        interactions = _generic_csv(data)
        movies = data.parent / "movies.csv"
        if catalog is None and data.name == "ratings.csv" and movies.exists():
            catalog = movies
        return Source(interactions, _catalog_file(catalog))
    if data.suffix == ".parquet":
        return Source(InteractionsFile(data, "", 0, (1, 2, 3, 4), _parquet_rating_range(data)), _catalog_file(catalog))
    raise InputError(f"{data}: unsupported file type (expected a MovieLens file, .csv or .parquet)")


def _ml100k_genres(path: Path) -> list[str]:
    lines = path.read_text(encoding="latin-1").splitlines() if path.exists() else []
    return [line.split("|")[0] for line in lines if "|" in line]


def _generic_csv(path: Path) -> InteractionsFile:
    """Columns by header name; `userId,movieId` (MovieLens 20m+) and `weight` accepted."""
    with path.open(encoding="utf-8", errors="replace") as f:
        header = [h.strip().strip('"').lower() for h in f.readline().strip().split(",")]
    aliases = {"userid": "user_id", "movieid": "item_id", "weight": "rating"}
    names = [aliases.get(h, h) for h in header]
    missing = [name for name in INTERACTION_FIELDS if name not in names]
    if missing:
        raise InputError(f"{path}: header {header} lacks {missing} (expected user_id,item_id,rating|weight,timestamp)")
    columns = tuple(names.index(name) + 1 for name in INTERACTION_FIELDS)
    return InteractionsFile(path, ",", 1, columns, WEIGHT_RANGE if "weight" in header else RATING_RANGE)  # type: ignore[arg-type]


def _parquet_rating_range(path: Path) -> tuple[float, float]:
    with duckdb.connect() as con:
        names = {name for (name,) in run(con, "ingest/parquet_columns", {"path": str(path)})}
    missing = {"user_id", "item_id", "timestamp"} - names
    if missing or not names & {"rating", "weight"}:
        raise InputError(f"{path}: columns {sorted(names)} lack user_id, item_id, rating|weight, timestamp")
    return RATING_RANGE if "rating" in names else WEIGHT_RANGE


def _catalog_file(path: Path | None) -> CatalogFile | None:
    if path is None:
        return None
    if not path.exists():
        raise InputError(f"catalogue {path} does not exist")
    if path.suffix != ".csv":
        raise InputError(f"{path}: the catalogue must be a CSV with header item_id,title,genres")
    return CatalogFile(path, "csv", header_lines=1)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def text_encoding(path: Path) -> str:
    """utf-8 when the file decodes as such, else latin-1 (older MovieLens releases)."""
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def ingest_source(con: duckdb.DuckDBPyConnection, source: Source) -> IngestReport:
    """Load the catalogue (if any) then the interactions; skip files loaded before."""
    report = IngestReport()
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    if source.catalog is not None:
        counts = _load_file(con, source.catalog.path, "catalog", lambda: _stage_catalog(con, source.catalog), loaded_at)
        if counts:
            _, report.catalog_rows_loaded, report.catalog_rows_quarantined = counts
        report.files_loaded += counts is not None
        report.files_skipped += counts is None
    check_catalog = source.catalog is not None
    counts = _load_file(
        con, source.interactions.path, "interactions",
        lambda: _stage_interactions(con, source.interactions, check_catalog), loaded_at,
    )  # fmt: skip
    if counts:
        report.rows_read, report.rows_loaded, report.rows_quarantined = counts
    report.files_loaded += counts is not None
    report.files_skipped += counts is None
    return report


def _load_file(
    con: duckdb.DuckDBPyConnection, path: Path, kind: str, stage: Callable[[], None], loaded_at: datetime
) -> tuple[int, int, int] | None:
    """Stage, load and quarantine one file in one transaction: (read, loaded, quarantined), None if seen before."""
    sha = file_sha256(path)
    if scalar(con, "ingest/file_seen", {"sha256": sha}):
        return None
    source = str(path.resolve())
    with transaction(con):
        stage()
        classified = f"classified_{kind}"
        ((rows_read, rows_quarantined),) = run(con, "ingest/classified_counts", {"classified": classified})
        if kind == "catalog":
            rows_loaded = scalar(con, "ingest/upsert_catalog", {"source": source})
        else:
            rows_loaded = scalar(con, "ingest/load_interactions", {"source": source, "loaded_at": loaded_at})
            run(con, "ingest/synthesize_catalog")
        run(con, "ingest/quarantine_rows", {"source": source, "classified": classified, "loaded_at": loaded_at})
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
    return rows_read, rows_loaded, rows_quarantined


def _read_lines(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    run(con, "ingest/read_lines", {"path": str(path), "encoding": text_encoding(path)})


def _stage_catalog(con: duckdb.DuckDBPyConnection, catalog: CatalogFile) -> None:
    _read_lines(con, catalog.path)
    params = dict(catalog.params)
    if catalog.splitter != "ml100k":
        params["header_lines"] = catalog.header_lines
    run(con, f"ingest/split_catalog_{catalog.splitter}", params)
    run(con, "ingest/classify_catalog")


def _stage_interactions(con: duckdb.DuckDBPyConnection, file: InteractionsFile, check_catalog: bool) -> None:
    if file.is_parquet:
        rating_column = "rating" if file.rating_range == RATING_RANGE else "weight"
        run(con, "ingest/stage_parquet_interactions", {"path": str(file.path), "rating_column": rating_column})
    else:
        _read_lines(con, file.path)
        user_col, item_col, rating_col, ts_col = file.columns
        run(
            con,
            "ingest/split_interactions",
            {
                "delimiter": file.delimiter,
                "header_lines": file.header_lines,
                "user_col": user_col,
                "item_col": item_col,
                "rating_col": rating_col,
                "ts_col": ts_col,
            },
        )
    run(
        con,
        "ingest/classify_interactions",
        {
            "expected_fields": 4 if file.is_parquet else _expected_fields(file),
            "rating_min": file.rating_range[0],
            "rating_max": file.rating_range[1],
            "check_catalog": check_catalog,
        },
    )


def _expected_fields(file: InteractionsFile) -> int:
    return max(file.columns) if file.header_lines == 0 else _header_width(file.path)


def _header_width(path: Path) -> int:
    with path.open(encoding="utf-8", errors="replace") as f:
        return len(f.readline().split(","))


def resolve_source(settings: Settings) -> Source:
    """The configured source, or the built-in generated dataset (written once under the home)."""
    if settings.data is not None:
        return detect_source(settings.data, settings.catalog)
    name = f"generated-{settings.gen_users}x{settings.gen_items}x{settings.gen_ratings}-seed{settings.gen_seed}"
    directory = settings.home / "source" / name
    interactions, catalog = directory / "interactions.csv", directory / "catalog.csv"
    if not (interactions.exists() and catalog.exists()):
        write_dataset(
            directory,
            n_users=settings.gen_users,
            n_items=settings.gen_items,
            n_ratings=settings.gen_ratings,
            seed=settings.gen_seed,
        )
    return detect_source(interactions, catalog)


@task(name="ingest")
def ingest(settings: Settings) -> IngestReport:
    """Prefect task: load the source into DuckDB; bad rows go to quarantine."""
    source = resolve_source(settings)
    with connect(settings.db_path) as con:
        return ingest_source(con, source)
