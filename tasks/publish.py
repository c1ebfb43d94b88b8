"""Publish: top K per user to `recommendations/run_date=YYYY-MM-DD/data.parquet`, swapped in atomically."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task

from tasks import db, dictionary
from tasks.errors import RecsError, retry_unless_expected
from tasks.settings import Settings

PARTITION_FILE = "data.parquet"


class NothingToPublish(RecsError):
    """The night has no ranked rows."""


@dataclass(frozen=True)
class Published:
    path: Path
    users: int
    rows: int


def partition_dir(recommendations_dir: Path, run_date: date) -> Path:
    return recommendations_dir / f"run_date={run_date.isoformat()}"


def write_atomically(table: pa.Table, target: Path, staging_dir: Path) -> None:
    """Write to a staging file on the same filesystem, then rename over the target.

    Readers see the old file or the new one, never a partial one; other partitions are untouched.
    """
    staging_dir.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = staging_dir / f"{target.parent.name}-{uuid.uuid4().hex}.parquet"
    pq.write_table(table, staged, compression="zstd")
    os.replace(staged, target)


def publish_run(con, settings: Settings) -> Published:
    table = con.sql(db.sql("publish/recommendations"), params={"run_date": settings.run_date, "k": settings.k}).to_arrow_table()
    table = table.replace_schema_metadata((table.schema.metadata or {}) | dictionary.parquet_metadata())
    if table.num_rows == 0:
        raise NothingToPublish(f"nothing to publish for {settings.run_date}: no ranked rows")
    target = partition_dir(settings.recommendations_dir, settings.run_date) / PARTITION_FILE
    write_atomically(table, target, settings.staging_dir)
    users = len(table.column("user_id").unique())
    db.run(
        con,
        "publish/record",
        {
            "run_date": settings.run_date,
            "path": str(target),
            "users": users,
            "rows": table.num_rows,
            "published_at": datetime.now(timezone.utc).replace(tzinfo=None),
        },
    )
    con.execute(db.sql("views"))
    dictionary.comment_home(con)
    return Published(target, users, table.num_rows)


@task(name="publish", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_expected)
def publish(settings: Settings) -> Published:
    """Prefect task: publish this run_date's recommendations."""
    with db.connect(settings) as con:
        return publish_run(con, settings)
