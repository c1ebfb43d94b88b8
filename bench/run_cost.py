"""Wall time and peak memory of `recs run` (one fresh home each) on the built-in dataset and MovieLens 100k.

    .venv/bin/python bench/run_cost.py
    .venv/bin/python bench/run_cost.py --data interactions.csv --catalog catalog.csv   # one source of your own (e.g. 20M)
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"


def measure(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one `recs run` in a child process."""
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "flows.cli", "run", "--home", home, *args],
            check=True, capture_output=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="measure this source instead of the built-in dataset and MovieLens 100k")
    parser.add_argument("--catalog", type=Path)
    args = parser.parse_args()
    cases = {"built-in 100k ratings": []}
    if args.data:
        cases = {args.data.name: ["--data", str(args.data), *(["--catalog", str(args.catalog)] if args.catalog else [])]}
    elif (ML100K / "u.data").exists():
        cases["MovieLens 100k"] = ["--data", str(ML100K)]
    else:
        print(f"MovieLens 100k not found at {ML100K}: skipped")
    print(f"{'dataset':<24}{'wall s':>8}{'peak MiB':>10}")
    for name, run_args in cases.items():
        seconds, peak = measure(run_args)
        print(f"{name:<24}{seconds:>8.1f}{peak:>10.0f}")
    print("(peak is the largest child so far; wall time includes ~10 s of Prefect ephemeral-server start-up)")


if __name__ == "__main__":
    main()
