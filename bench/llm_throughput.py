"""LLM ranker throughput against a rate-limited OpenAI-compatible server (not a test).

    .venv/bin/python bench/llm_throughput.py --rpm 30 --window 2 --users 300 [--mode prefect]
    .venv/bin/python bench/llm_throughput.py --rpm 3000 --window 60 --tpm 10000000 --latency 2 --concurrency 128 --users 9000 --batch 1000 --parallel-batches 3 --skip-tokens

--mode local: the in-process limiter; --mode lease / rate_limit: a temporary Prefect server and its
global limit `recs-llm-rpm` (what several workers share: RECS_LLM_SHARED_LIMIT). Before the run, the
median prompt size per user is measured on the generated default dataset (1,000 users) vs the
original recipe.

Several workers sharing one budget (issue 14 §4), every mode side by side in one run:

    .venv/bin/python bench/llm_throughput.py --workers 2 4 --modes local rate_limit lease --rpm 300 --window 10 --users 3000 --skip-tokens

--workers N starts N processes; each ranks its share of the batches through the real LlmRanker
(its own copy of the home: cache and accounting), all with the same limits, against one server.
local: each process alone keeps to the limit (what goes wrong without sharing: 429s).

The server (tests/llm_server.py) admits at most R requests per `window` seconds (a minute scaled
down) and answers 429 beyond. The ranker is given the same budget. Reports achieved requests
per window / R over the full windows of the run (goal >= 0.95), 429s, lost users (users without
k valid rows; goal 0), fallbacks, and estimated prompt tokens per user vs the original recipe
(300 history titles, 3 calls of 10 candidates; goal <= 1/3).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import date
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from llm_server import OpenAICompatibleServer, correct, slow  # noqa: E402
from rankers.llm import LlmRanker  # noqa: E402
from rankers.recipe import prompt_sizes  # noqa: E402
from tasks import db  # noqa: E402
from tasks.candidates import build_candidates, store_candidates  # noqa: E402
from tasks.ingest import ingest  # noqa: E402
from tasks.llm_client import ensure_global_limit, prefect_api_url  # noqa: E402
from tasks.rank import batch_candidates, user_batches  # noqa: E402
from tasks.settings import Settings  # noqa: E402
from tasks.train import train  # noqa: E402

RUN_DATE = date(2026, 11, 23)
MODES = ("local", "rate_limit", "lease")


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
    parser.add_argument("--mode", choices=MODES, default="local", help="one process: in-process or a Prefect limit")
    parser.add_argument("--workers", type=int, nargs="+", help="worker processes sharing the budget (e.g. 2 4)")
    parser.add_argument("--modes", choices=MODES, nargs="+", default=list(MODES), help="with --workers: modes compared")
    parser.add_argument("--lease-seconds", type=float, default=None, help="RECS_LLM_LEASE_SECONDS (default: window / 60)")
    parser.add_argument("--lease-poll-seconds", type=float, default=None, help="RECS_LLM_LEASE_POLL_SECONDS (default: window / 240)")
    parser.add_argument("--skip-tokens", action="store_true", help="skip the default-dataset prompt-size report")
    args = parser.parse_args()
    if not args.skip_tokens:
        default_dataset_tokens()
    if args.mode != "local" or args.workers:
        os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="llm-bench-prefect-"))
        os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        from flows.lifeline import temporary_prefect

        harness = temporary_prefect()
    else:
        harness = contextlib.nullcontext()
    with harness:
        if args.workers:
            os.environ["PREFECT_API_URL"] = prefect_api_url() or ""  # the worker processes' Prefect server
            bench_workers(args)
        else:
            bench(args)


def default_dataset_tokens() -> None:
    """Median estimated prompt tokens per user on the generated default dataset vs the original recipe."""
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="llm-bench-default-")), run_date=RUN_DATE, ranker="llm")
    ingest.fn(settings)
    with_candidates(settings)
    with db.connect(settings) as con:
        ids = user_batches(con, settings, 100_000)[0]
        sizes = prompt_sizes(con, batch_candidates(con, settings, ids, "llm"), settings)
    ratio = statistics.median((sizes["prompt_tokens_est"] / sizes["recipe_tokens_est"]).to_list())
    print(f"default dataset ({sizes.height} users, {settings.llm_prompt_version}): median prompt tokens per user "
          f"{sizes['prompt_tokens_est'].median():.0f} vs original recipe {sizes['recipe_tokens_est'].median():.0f}; "
          f"median per-user ratio {ratio:.3f} (goal <= 0.333)")


def with_candidates(settings: Settings) -> None:
    """Train and store every user's candidates in this process (no flow, so no task runner)."""
    version = train.fn(settings).serving_version
    with db.connect(settings) as con:
        store_candidates(con, build_candidates(con, settings, version), settings, version)


def lease_settings(args: argparse.Namespace) -> dict[str, float]:
    """The lease mode's bounds, scaled to the bench's window as 1 s and 0.25 s are to a minute."""
    return dict(llm_lease_seconds=args.lease_seconds or args.window / 60,
                llm_lease_poll_seconds=args.lease_poll_seconds or args.window / 240)


def prepared_home(args: argparse.Namespace) -> tuple[Path, dict[str, int]]:
    """A home with the generated dataset ingested, trained and its candidates computed."""
    home = Path(tempfile.mkdtemp(prefix="llm-bench-"))
    sizes = dict(gen_users=args.users, gen_items=max(300, args.users), gen_ratings=args.users * args.ratings_per_user)
    base = Settings(home=home, run_date=RUN_DATE, **sizes)
    started = time.perf_counter()
    ingest.fn(base)
    with_candidates(base)
    print(f"data: {sizes} ready in {time.perf_counter() - started:.1f} s")
    return home, sizes


def per_window(times: list[float], window: float) -> list[int]:
    """Accepted requests in each full window from the first one."""
    t0 = times[0]
    return [sum(1 for t in times if t0 + i * window <= t < t0 + (i + 1) * window) for i in range(int((times[-1] - t0) // window))]


def achieved_ratio(times: list[float], rpm: int, window: float) -> tuple[float, int]:
    """Accepted requests per full window (from the first one) / rpm, and the number of full windows."""
    counts = per_window(times, window)
    return (sum(counts) / (len(counts) * rpm) if counts else float("nan")), len(counts)


def bench_workers(args: argparse.Namespace) -> None:
    """Every mode with N worker processes sharing one budget, side by side."""
    home, sizes = prepared_home(args)
    with db.connect(Settings(home=home, run_date=RUN_DATE, **sizes)) as con:
        batches = user_batches(con, Settings(home=home, run_date=RUN_DATE, **sizes), args.batch)
    print(f"{len(batches)} batches of {args.batch} users; server limit {args.rpm} requests per {args.window:g} s; "
          f"concurrency {args.concurrency} and {args.parallel_batches} batches at once per worker; {lease_settings(args)}")
    print(f"{'workers':>7} {'mode':>10} {'achieved/allowed':>16} {'429s':>6} {'max/window':>10} {'windows':>7} "
          f"{'lost users':>10} {'seconds':>7} {'load avg':>8}  per full window")
    for workers in args.workers:
        for mode in args.modes:
            row = run_workers(args, home, sizes, batches, mode, workers)
            print(f"{workers:>7} {mode:>10} {row['achieved']:>16.3f} {row['rejected']:>6} {row['max']:>10} "
                  f"{row['windows']:>7} {row['lost']:>10} {row['seconds']:>7.1f} {os.getloadavg()[0]:>8.2f}  {row['counts']}", flush=True)


def run_workers(args: argparse.Namespace, home: Path, sizes: dict[str, int], batches: list[list[int]],
                mode: str, workers: int) -> dict[str, float]:
    """One mode with `workers` processes against a fresh server and a fresh Prefect limit."""
    context = multiprocessing.get_context("spawn")
    brain = slow(args.latency, correct()) if args.latency else None
    with OpenAICompatibleServer(rpm_limit=args.rpm, window_seconds=args.window, default_brain=brain) as server, \
            context.Manager() as manager, ProcessPoolExecutor(workers, mp_context=context) as pool:
        ready = manager.Barrier(workers + 1)
        futures = []
        for worker in range(workers):
            worker_home = home.parent / f"{home.name}-{mode}-{workers}-{worker}"
            shutil.copytree(home, worker_home)
            options = dict(
                RECS_LLM_BASE_URL=server.base_url, RECS_LLM_API_KEY="bench-key", home=str(worker_home), run_date=RUN_DATE,
                ranker="llm", llm_rpm=args.rpm, **({"llm_tpm": args.tpm} if args.tpm else {}),
                llm_rate_window_seconds=args.window, llm_concurrency=args.concurrency,
                llm_deadline_seconds=max(120.0, 4 * args.window), llm_shared_limit=mode,
                llm_limit_name=f"bench-{mode}-{workers}", **lease_settings(args), **sizes,
            )
            if mode != "local" and worker == 0:
                ensure_global_limit(Settings(**options))  # as an operator would (workers racing to create it is noisy)
            futures.append(pool.submit(rank_share, options, batches[worker::workers], args.parallel_batches, ready))
        ready.wait(timeout=600)
        started = time.perf_counter()
        lost = sum(future.result() for future in futures)
        seconds = time.perf_counter() - started
        times, rejected = server.accepted_request_times(), server.count(status=429)
        achieved, windows = achieved_ratio(times, args.rpm, args.window)
        return dict(achieved=achieved, rejected=rejected, max=server.max_requests_in_window(args.window),
                    windows=windows, lost=lost, seconds=seconds, counts=per_window(times, args.window))


def rank_share(options: dict, batches: list[list[int]], parallel: int, ready) -> int:
    """A worker process: rank these batches with the real LlmRanker; the users left without k valid rows."""
    settings = Settings(**options)
    with db.connect(settings) as con:
        frames = [batch_candidates(con, settings, ids, "llm") for ids in batches]
    ready.wait(timeout=600)
    with ThreadPoolExecutor(parallel) as pool:
        ranked = pl.concat(list(pool.map(lambda frame: LlmRanker(settings).rank(frame, settings.k), frames)))
    return lost_users(ranked, pl.concat(frames), settings.k)


def lost_users(ranked: pl.DataFrame, candidates: pl.DataFrame, k: int) -> int:
    """Users of `candidates` without k distinct ranked rows."""
    per_user = ranked.group_by("user_id").agg(n=pl.len(), distinct=pl.col("item_id").n_unique())
    return candidates["user_id"].n_unique() - per_user.filter((pl.col("n") == k) & (pl.col("distinct") == k)).height


def bench(args: argparse.Namespace) -> None:
    home, sizes = prepared_home(args)

    brain = slow(args.latency, correct()) if args.latency else None
    with OpenAICompatibleServer(rpm_limit=args.rpm, window_seconds=args.window, default_brain=brain) as server:
        settings = Settings(
            RECS_LLM_BASE_URL=server.base_url, RECS_LLM_API_KEY="bench-key", home=home, run_date=RUN_DATE,
            ranker="llm", llm_rpm=args.rpm, **({"llm_tpm": args.tpm} if args.tpm else {}), llm_rate_window_seconds=args.window, llm_concurrency=args.concurrency,
            llm_deadline_seconds=max(120.0, 4 * args.window), llm_shared_limit=args.mode, **lease_settings(args), **sizes,
        )
        with db.connect(settings) as con:
            user_ids = user_batches(con, settings, args.batch)
            frames = [batch_candidates(con, settings, ids, "llm") for ids in user_ids]

        started = time.perf_counter()
        with ThreadPoolExecutor(args.parallel_batches) as pool:
            ranked = pl.concat(list(pool.map(lambda frame: LlmRanker(settings).rank(frame, settings.k), frames)))
        seconds = time.perf_counter() - started
        times = server.accepted_request_times()
        rejected = server.count(status=429)

    achieved, full_windows = achieved_ratio(times, args.rpm, args.window)
    all_users = pl.concat(frames)["user_id"].unique()
    lost = lost_users(ranked, pl.concat(frames), settings.k)
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
