"""Where one ingest spends its time, statement by statement, next to a bare read_csv of the same files.

    .venv/bin/python bench/ingest_statements.py /tmp/recs-bench-data/generated-120000x20000x20000000-seed7/interactions.csv
    .venv/bin/python bench/ingest_statements.py FILE --bad-row      # a copy with one bad row appended: the staged path
    .venv/bin/python bench/ingest_statements.py FILE --rerun        # then the same rows + 1 under another name: the anti-join

In one process: a bare `CREATE TABLE AS SELECT * FROM read_csv(...)` of the file and its catalogue.csv, then
`tasks.ingest.ingest_source` into a fresh home (the settings' memory limit), then the bare read again. Prints each
SQL statement's wall and process CPU seconds (DuckDB's threads and the hashing thread included), then both ratios
with the load average: on shared cores the CPU ratio moves far less with other jobs than the wall ratio.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tasks.ingest as ingest  # noqa: E402
from tasks import db  # noqa: E402
from tasks.settings import Settings  # noqa: E402

TIMINGS: list[tuple[str, float, float]] = []


def timed(helper):
    """`helper` (tasks.db.run, scalar, view or frame as ingest imported it) recording its statement's seconds."""

    @functools.wraps(helper)
    def wrapper(con, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return helper(con, *args, **kwargs)
        finally:
            name = args[1] if helper.__name__ == "view" else args[0]
            TIMINGS.append((name, time.perf_counter() - wall, time.process_time() - cpu))

    return wrapper


def bare(data: Path, catalog: Path) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="recs-bench-bare-") as home, duckdb.connect(f"{home}/bare.duckdb") as con:
        wall, cpu = time.perf_counter(), time.process_time()
        con.execute(f"CREATE TABLE ratings AS SELECT * FROM read_csv('{data}', header=true, ignore_errors=true)")
        con.execute(f"CREATE TABLE catalog AS SELECT item_id, title FROM read_csv('{catalog}', header=true)")
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="an interactions CSV with catalog.csv next to it")
    parser.add_argument("--bad-row", action="store_true", help="ingest a copy with one unusable row appended")
    parser.add_argument("--rerun", action="store_true", help="then ingest the same rows and one more under another name")
    args = parser.parse_args()
    for name in ("run", "scalar", "view", "frame"):
        if hasattr(ingest, name):  # (frame: since the plain-file check)
            setattr(ingest, name, timed(getattr(ingest, name)))
    with tempfile.TemporaryDirectory(prefix="recs-bench-ingest-") as tmp:
        home, data, catalog = Path(tmp), args.data, args.data.parent / "catalog.csv"
        if args.bad_row:
            data = Path(shutil.copy(args.data, home / "interactions.csv"))
            with data.open("a") as f:
                f.write("1,1,4,yesterday\n")
        before = bare(data, catalog)
        settings = Settings(home=home / "home", data=data, catalog=catalog, run_date=date(2026, 11, 23))
        with db.connect(settings) as con:
            wall, cpu = time.perf_counter(), time.process_time()
            report = ingest.ingest_source(con, ingest.resolve_source(settings))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if args.rerun:
                again = Path(shutil.copy(data, home / "again.csv"))
                with again.open("a") as f:
                    f.write("999999,1,4,1700000000\n")
                TIMINGS.append(("-- rerun: the same rows + 1 under another name", 0.0, 0.0))
                rerun = ingest.ingest_source(con, ingest.resolve_source(settings.model_copy(update={"data": again})))
        after = bare(data, catalog)
    for name, seconds, cpu_seconds in TIMINGS:
        if seconds >= 0.05 or name.startswith("--"):
            print(f"{seconds:8.2f} s {cpu_seconds:8.2f} cpu s  {name}")
    bare_wall, bare_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    print(f"ingest {wall:.2f} s, {cpu:.2f} cpu s; bare read_csv {before[0]:.2f}/{after[0]:.2f} s, {before[1]:.2f}/{after[1]:.2f} cpu s"
          f" (before/after); ratio {wall / bare_wall:.2f} wall, {cpu / bare_cpu:.2f} cpu; load average {os.getloadavg()}")
    print(report)
    if args.rerun:
        print(f"rerun: {rerun}")
    print(next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")))


if __name__ == "__main__":
    main()
