"""LLM ranker throughput against a rate-limited OpenAI-compatible server (not a test).

    .venv/bin/python bench/llm_throughput.py --rpm 30 --window 2 --users 300 [--mode prefect]
    .venv/bin/python bench/llm_throughput.py --rpm 3000 --window 60 --tpm 10000000 --latency 2 --concurrency 128 --users 9000 --batch 1000 --parallel-batches 3 --skip-tokens

--mode local: the in-process limiter; --mode prefect: a temporary Prefect server and its global
rate limit `recs-llm-rpm` (what several workers share). Before the run, the median prompt size
per user is measured on the generated default dataset (1,000 users) vs the original recipe.

The server (tests/llm_server.py) admits at most R requests per `window` seconds (a minute scaled
down) and answers 429 beyond. The ranker is given the same budget. Reports achieved requests
per window / R over the full windows of the run (goal >= 0.95), 429s, lost users (users without
k valid rows; goal 0), fallbacks, and estimated prompt tokens per user vs the original recipe
(300 history titles, 3 calls of 10 candidates; goal <= 1/3).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from llm_server import OpenAICompatibleServer, correct, slow  # noqa: E402
from rankers.llm import LlmRanker  # noqa: E402
from rankers.recipe import prompt_sizes  # noqa: E402
from tasks import db  # noqa: E402
from tasks.candidates import candidates as candidates_task  # noqa: E402
from tasks.ingest import ingest  # noqa: E402
from tasks.rank import user_batches  # noqa: E402
from tasks.settings import Settings  # noqa: E402
from tasks.train import train  # noqa: E402

RUN_DATE = date(2026, 11, 23)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rpm", type=int, default=30, help="server-enforced requests per window (R)")
    parser.add_argument("--window", type=float, default=2.0, help="seconds standing in for a minute")
    parser.add_argument("--tpm", type=int, default=None, help="tokens per window given to the ranker (default: RECS_LLM_TPM's)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the server takes to answer each request")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--ratings-per-user", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100, help="users per rank task")
    parser.add_argument("--parallel-batches", type=int, default=2, help="rank tasks running at once")
    parser.add_argument("--mode", choices=("local", "prefect"), default="local", help="in-process or Prefect rate limit")
    parser.add_argument("--skip-tokens", action="store_true", help="skip the default-dataset prompt-size report")
    args = parser.parse_args()
    if not args.skip_tokens:
        default_dataset_tokens()
    if args.mode == "prefect":
        os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="llm-bench-prefect-"))
        os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        from prefect.testing.utilities import prefect_test_harness

        harness = prefect_test_harness(server_startup_timeout=180)
    else:
        harness = contextlib.nullcontext()
    with harness:
        bench(args)


def default_dataset_tokens() -> None:
    """Median estimated prompt tokens per user on the generated default dataset vs the original recipe."""
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="llm-bench-default-")), run_date=RUN_DATE, ranker="llm")
    ingest.fn(settings)
    candidates_task.fn(settings, train.fn(settings).serving_version)
    with db.connect(settings) as con:
        ids = user_batches(con, settings, 100_000)[0]
        sizes = prompt_sizes(con, db.frame(con, "rank/batch_candidates", {"run_date": RUN_DATE, "user_ids": ids}), settings)
    ratio = statistics.median((sizes["prompt_tokens_est"] / sizes["recipe_tokens_est"]).to_list())
    print(f"default dataset ({sizes.height} users, {settings.llm_prompt_version}): median prompt tokens per user "
          f"{sizes['prompt_tokens_est'].median():.0f} vs original recipe {sizes['recipe_tokens_est'].median():.0f}; "
          f"median per-user ratio {ratio:.3f} (goal <= 0.333)")


def bench(args: argparse.Namespace) -> None:

    home = Path(tempfile.mkdtemp(prefix="llm-bench-"))
    sizes = dict(gen_users=args.users, gen_items=max(300, args.users), gen_ratings=args.users * args.ratings_per_user)
    base = Settings(home=home, run_date=RUN_DATE, **sizes)
    started = time.perf_counter()
    ingest.fn(base)
    candidates_task.fn(base, train.fn(base).serving_version)
    print(f"data: {sizes} ready in {time.perf_counter() - started:.1f} s")

    brain = slow(args.latency, correct()) if args.latency else None
    with OpenAICompatibleServer(rpm_limit=args.rpm, window_seconds=args.window, default_brain=brain) as server:
        settings = Settings(
            RECS_LLM_BASE_URL=server.base_url, RECS_LLM_API_KEY="bench-key", home=home, run_date=RUN_DATE,
            ranker="llm", llm_rpm=args.rpm, **({"llm_tpm": args.tpm} if args.tpm else {}), llm_rate_window_seconds=args.window, llm_concurrency=args.concurrency,
            llm_deadline_seconds=max(120.0, 4 * args.window), llm_shared_limit=args.mode, **sizes,
        )
        with db.connect(settings) as con:
            user_ids = user_batches(con, settings, args.batch)
            frames = [db.frame(con, "rank/batch_candidates", {"run_date": RUN_DATE, "user_ids": ids}) for ids in user_ids]

        started = time.perf_counter()
        with ThreadPoolExecutor(args.parallel_batches) as pool:
            ranked = pl.concat(list(pool.map(lambda frame: LlmRanker(settings).rank(frame, settings.k), frames)))
        seconds = time.perf_counter() - started
        times = server.accepted_request_times()
        rejected = server.count(status=429)

    t0 = times[0]
    full_windows = int((times[-1] - t0) // args.window)
    per_window = [sum(1 for t in times if t0 + i * args.window <= t < t0 + (i + 1) * args.window) for i in range(full_windows)]
    achieved = sum(per_window) / (full_windows * args.rpm) if full_windows else float("nan")
    all_users = pl.concat(frames)["user_id"].unique()
    per_user = ranked.group_by("user_id").agg(n=pl.len(), distinct=pl.col("item_id").n_unique())
    complete = per_user.filter((pl.col("n") == settings.k) & (pl.col("distinct") == settings.k))
    lost = all_users.len() - complete.height
    with db.connect(settings) as con:
        summary = db.frame(con, "llm/summary", {"run_date": RUN_DATE}).row(0, named=True)

    print(f"mode: {args.mode}; server latency {args.latency:.1f} s; concurrency {args.concurrency}")
    print(f"requests accepted: {len(times)} in {seconds:.1f} s; 429s: {rejected}; "
          f"max in any window: {server.max_requests_in_window(args.window)} (limit {args.rpm})")
    print(f"achieved/allowed over {full_windows} full windows: {achieved:.3f} (goal >= 0.95)")
    print(f"users: {all_users.len()}, lost: {lost} (goal 0), llm: {ranked.filter(pl.col('ranker') == 'llm')['user_id'].n_unique()}, "
          f"als_fallback: {ranked.filter(pl.col('ranker') == 'als_fallback')['user_id'].n_unique()}")
    users = summary["users"]
    print(f"prompt tokens per user (chars/4): {summary['prompt_tokens_est'] / users:.0f} vs original recipe "
          f"{summary['recipe_tokens_est'] / users:.0f} -> ratio {summary['prompt_vs_recipe']:.3f} (goal <= 0.333)")
    print(f"server-counted prompt tokens per user: {summary['prompt_tokens'] / users:.0f}; "
          f"latency p50/p95: {summary['latency_p50_ms']:.1f}/{summary['latency_p95_ms']:.1f} ms")


if __name__ == "__main__":
    main()
