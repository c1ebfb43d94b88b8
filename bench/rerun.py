"""An unchanged rerun of the nightly flow with the LLM ranker: LLM calls and wall time, first run vs rerun.

    .venv/bin/python bench/rerun.py [--users 300] [--ratings-per-user 60]

Runs the real Prefect flow (`flows.nightly.nightly`, against a temporary Prefect API started once
and warmed up before any timing) with `ranker=llm` against tests/llm_server.py's local
OpenAI-compatible server, three times in one home on the same generated data:

1. first run for a night (fresh home);
2. the same night again, nothing changed (expected: 0 LLM calls, every stage reused);
3. the next night, data unchanged (new run_date: candidates and ranking are recomputed, but the
   prompts are the same, so the LLM answers come from the DuckDB response cache: expected 0 calls).

Prints LLM calls counted by the server, wall time and the flow's per-stage seconds for each run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from isolated_env import isolate_environment  # noqa: E402

isolate_environment("recs-bench-prefect-", PREFECT_LOGGING_LEVEL="WARNING")

from prefect import flow  # noqa: E402

from flows.lifeline import temporary_prefect  # noqa: E402
from flows.nightly import nightly  # noqa: E402
from flows.parameters import RunParameters  # noqa: E402
from llm_server import OpenAICompatibleServer  # noqa: E402

RUN_DATE = date(2026, 11, 23)


@flow(name="warm-up")
def warm_up() -> None:
    """One trivial flow so that API start-up and first-flow registration are not timed."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--ratings-per-user", type=int, default=60)
    args = parser.parse_args()
    sizes = {"RECS_GEN_USERS": args.users, "RECS_GEN_ITEMS": max(300, 2 * args.users),
             "RECS_GEN_RATINGS": args.users * args.ratings_per_user}  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix="recs-bench-rerun-"))

    with temporary_prefect(), OpenAICompatibleServer() as server:
        os.environ.update({name: str(value) for name, value in sizes.items()})
        os.environ.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="bench-key",
                          RECS_LLM_RPM="100000", RECS_LLM_TPM="100000000", RECS_LLM_CONCURRENCY="4")  # fmt: skip
        warm_up()
        print(f"data: {sizes}, home {home}")
        print(f"{'run':<34}{'LLM calls':>10}{'wall s':>8}   stages (s)")
        rows = []
        for label, run_date in (
            ("1. first run", RUN_DATE),
            ("2. rerun: same night, same data", RUN_DATE),
            ("3. next night, same data", RUN_DATE + timedelta(days=1)),
        ):
            before = server.count()
            started = time.perf_counter()
            summary = nightly(RunParameters(home=home, run_date=run_date, ranker="llm"))
            seconds = time.perf_counter() - started
            calls = server.count() - before
            rows.append((label, calls, seconds))
            stages = ", ".join(f"{stage} {s:.2f}" for stage, s in summary["seconds"].items())
            print(f"{label:<34}{calls:>10}{seconds:>8.1f}   {stages}")
            print(f"{'':<34}ranked: {summary['ranked'] or 'nothing (already ranked)'}; users {summary['users']}")
    (_, first_calls, first_s), (_, rerun_calls, rerun_s), (_, next_calls, next_s) = rows
    print(f"rerun / first: LLM calls {rerun_calls}/{first_calls}, wall time {rerun_s / first_s:.2f}x")
    print(f"next night / first: LLM calls {next_calls}/{first_calls}, wall time {next_s / first_s:.2f}x")


if __name__ == "__main__":
    main()
