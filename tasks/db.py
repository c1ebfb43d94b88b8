"""DuckDB connection and the SQL files under `sql/`."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from tasks.settings import Settings

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_OPEN_CLOSE = threading.Lock()  # see opened()


@cache
def sql(name: str) -> str:
    """The text of `sql/<name>.sql`."""
    return (SQL_DIR / f"{name}.sql").read_text()


@contextmanager
def opened(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the DuckDB file `path`, closed afterwards. Opening and closing are one at a time in the process:
    DuckDB 2.0 fails a connect racing another thread's close of the last connection to the same file ("Unique file
    handle conflict": the closing database still holds the file), as parallel rank tasks in threads do."""
    with _OPEN_CLOSE:
        con = duckdb.connect(str(path))
    try:
        yield con
    finally:
        with _OPEN_CLOSE:
            con.close()


@contextmanager
def connect(where: Path | Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open a DuckDB file with the schema in place; close it afterwards. Given the run's settings: its home's file,
    with the settings' memory limit and spill directory (a plain path: DuckDB's defaults, for scratch files)."""
    db_path = where.db_path if isinstance(where, Settings) else where
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with opened(db_path) as con:
        if isinstance(where, Settings):
            run(con, "connection/memory_limit", {"memory_limit": where.duckdb_memory_limit})
            spill_dir = str(where.duckdb_spill_dir)
            if scalar(con, "connection/temp_directory_now") != spill_dir:  # once it has spilled, DuckDB refuses any SET of it
                run(con, "connection/temp_directory", {"temp_directory": spill_dir})
        con.execute(sql("schema"))
        upgrade(con)
        yield con


def upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a home written by an earlier version to the schema: interactions name their file per load, not per row."""
    if scalar(con, "home/interactions_carry_source"):
        with transaction(con):
            run(con, "home/move_interaction_sources")
            run(con, "home/drop_interaction_source")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All statements inside commit together or not at all."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[duckdb.DuckDBPyConnection]:
    """`frame` visible to SQL as the view `name` inside the block; unregistered afterwards, whatever happens."""
    con.register(name, frame.to_arrow())
    try:
        yield con
    finally:
        con.unregister(name)


def run(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
    """Execute `sql/<name>.sql` with named parameters and return all its rows."""
    return con.execute(sql(name), dict(params or {})).fetchall()


def view(con: duckdb.DuckDBPyConnection, name: str, sql_name: str, params: Mapping[str, Any] | None = None) -> None:
    """`sql/<sql_name>.sql` (one SELECT) with its parameters bound, as the temp view `name`: read lazily by later
    statements (a TEMP VIEW cannot hold parameters; `create_view` would store a view in the database file)."""
    con.register(name, con.sql(sql(sql_name), params=dict(params or {})))


def scalar(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] | None = None) -> Any:
    """The single value `sql/<name>.sql` returns."""
    return run(con, name, params)[0][0]


def frame(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """The rows of `sql/<name>.sql` as a polars frame (via Arrow)."""
    return pl.from_arrow(con.sql(sql(name), params=dict(params or {})).to_arrow_table())
