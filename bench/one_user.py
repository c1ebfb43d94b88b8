"""One user with many rating rows through the real nightly flow (issue 12 §4): wall time per stage.

    .venv/bin/python bench/one_user.py [--rows 1000000]

The data of tests/test_odd_users.py's one-user case (tests/odd_data.py) at full size: `--rows`
ratings of user 1 over 2,000 items, catalogue of 2,050 items. The suite runs 100,000 rows; this
prints the flow's per-stage seconds for the size the issue reported.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from isolated_env import isolate_environment  # noqa: E402

isolate_environment("recs-bench-prefect-", PREFECT_LOGGING_LEVEL="WARNING")

import polars as pl  # noqa: E402

from flows.lifeline import temporary_prefect  # noqa: E402
from flows.nightly import nightly  # noqa: E402
from flows.parameters import RunParameters  # noqa: E402
from odd_data import one_user_dataset  # noqa: E402
from tasks.publish import partition_dir  # noqa: E402

RUN_DATE = date(2026, 11, 23)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    with tempfile.TemporaryDirectory(prefix="recs-bench-one-user-") as tmp, temporary_prefect():
        data, catalog = one_user_dataset(Path(tmp), rows)
        started = time.perf_counter()
        summary = nightly(RunParameters(home=Path(tmp) / "home", data=data, catalog=catalog, run_date=RUN_DATE))
        wall = time.perf_counter() - started
        recs = pl.read_parquet(partition_dir(Path(tmp) / "home" / "recommendations", RUN_DATE) / "data.parquet")
    print(f"{rows:,} rows of one user: {wall:.1f} s wall, {recs.height} recommendations published")
    print("stage seconds:", summary["seconds"])


if __name__ == "__main__":
    main()
