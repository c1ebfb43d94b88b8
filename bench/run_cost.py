"""Wall time and peak memory of `recs run` (a fresh home per source; `--nights N`: N nights in a row on it), whole and per stage.

    .venv/bin/python bench/run_cost.py                                              # built-in dataset and MovieLens 100k
    .venv/bin/python bench/run_cost.py --data interactions.csv --catalog catalog.csv   # one source of your own (e.g. 20M)
    .venv/bin/python bench/run_cost.py --data … --catalog … --nights 3               # three nights in a row on one home

Each stage's seconds and peak resident MiB are the figures the flow logs ("ingest: 12.34 s, peak 1,024 MiB — …",
tasks/memory.py: the flow process's high-water mark, reset before each stage). The whole run's peak is the
largest of those and of what wait4 reports for the `recs run` process (the Prefect server it starts aside): the
kernel's own figure counts only since the last reset, so alone it would show the last stages' peak. The machine is shared: the load average
(1 / 5 / 15 min) is printed before and after each run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
STAGE_LINE = re.compile(r" - (?P<stage>[a-z ]+): (?P<seconds>[\d.]+) s, peak (?P<mib>[\d,]+) MiB — ")


@dataclass(frozen=True)
class RunCost:
    seconds: float
    peak_mib: float
    stages: list[tuple[str, float, int]]  # (stage, seconds, peak MiB) in the order the flow ran them
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    failure: str | None  # the run's closing line when it failed


def stage_costs(output: str) -> list[tuple[str, float, int]]:
    """(stage, seconds, peak MiB) of every stage line the flow logged."""
    return [(m["stage"], float(m["seconds"]), int(m["mib"].replace(",", ""))) for m in STAGE_LINE.finditer(output)]


def measure(args: list[str], home: str) -> RunCost:
    """One `recs run` in a child process on `home`."""
    with tempfile.TemporaryFile("w+") as output:
        load_before = os.getloadavg()
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "--home", home, *args], stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        output.seek(0)
        text = output.read()
    failure = text.strip().splitlines()[-1] if os.waitstatus_to_exitcode(status) != 0 else None
    stages = stage_costs(text)
    peak = max([usage.ru_maxrss / 1024, *(mib for *_, mib in stages)])
    return RunCost(seconds, peak, stages, load_before, os.getloadavg(), failure)


def load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def print_cost(name: str, cost: RunCost) -> None:
    print(f"\n== {name}: {cost.seconds:.1f} s wall, peak {cost.peak_mib:,.0f} MiB "
          f"(load average 1/5/15 min: {load(cost.load_before)} before, {load(cost.load_after)} after; {os.cpu_count()} CPUs)")  # fmt: skip
    print(f"{'stage':<16}{'seconds':>9}{'peak MiB':>10}")
    for stage, seconds, mib in cost.stages:
        print(f"{stage:<16}{seconds:>9.2f}{mib:>10,}")
    print(f"{'stages total':<16}{sum(s for _, s, _ in cost.stages):>9.2f}{max((m for *_, m in cost.stages), default=0):>10,}")
    if cost.failure:
        print(f"FAILED: {cost.failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="measure this source instead of the built-in dataset and MovieLens 100k")
    parser.add_argument("--catalog", type=Path)
    parser.add_argument("--nights", type=int, default=1, help="run this many nights in a row (run dates a day apart) on one home")
    args = parser.parse_args()
    cases = {"built-in 100k ratings": []}
    if args.data:
        cases = {str(args.data): ["--data", str(args.data), *(["--catalog", str(args.catalog)] if args.catalog else [])]}
    elif (ML100K / "u.data").exists():
        cases["MovieLens 100k"] = ["--data", str(ML100K)]
    else:
        print(f"MovieLens 100k not found at {ML100K}: skipped")
    first = date.today() - timedelta(days=args.nights - 1)
    for name, run_args in cases.items():
        with tempfile.TemporaryDirectory() as home:
            for night in range(args.nights):
                run_date = first + timedelta(days=night)
                label = name if args.nights == 1 else f"{name}, night {night + 1} ({run_date})"
                print_cost(label, measure([*run_args, "--run-date", run_date.isoformat()], home))
    print("\n(wall time includes process start, imports and ~10 s of Prefect ephemeral-server start-up; the stages do not)")


if __name__ == "__main__":
    main()
