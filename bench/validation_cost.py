"""Cost of the data checks against the whole nightly run, on generated data of 100k and 1M ratings.

    .venv/bin/python bench/validation_cost.py [ratings ...]

Each size runs the stages as plain functions (no Prefect start-up) in a fresh home, times every
stage, and splits each suite into batch fetch, GX expectations and SQL checks. GX's one-off
import is timed apart. The last lines time the output expectations alone on synthetic ranked
frames of 100k and 1M rows (more users than the generated runs have).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from rankers.als import AlsRanker  # noqa: E402
from tasks import db, validate  # noqa: E402
from tasks.candidates import build_candidates, store_candidates  # noqa: E402
from tasks.ingest import ingest_source, resolve_source  # noqa: E402
from tasks.publish import publish_run  # noqa: E402
from tasks.rank import rank_users  # noqa: E402
from tasks.settings import Settings  # noqa: E402
from tasks.train import train_model  # noqa: E402

SIZES = {100_000: (1_000, 2_000), 1_000_000: (6_000, 4_000)}  # ratings: (users, items)
T = TypeVar("T")


def timed(seconds: dict[str, float], stage: str, call: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = call()
    seconds[stage] = time.perf_counter() - started
    return result


def run_stages(settings: Settings) -> dict[str, float]:
    """Seconds per stage of one night, the two checks included."""
    seconds: dict[str, float] = {}
    source = resolve_source(settings)  # generates the dataset once, untimed
    with db.connect(settings) as con:
        timed(seconds, "ingest", lambda: ingest_source(con, source))
        timed(seconds, "check inputs", lambda: validate.gate(validate.check_inputs(con, settings)))
        version = timed(seconds, "train", lambda: train_model(con, settings)).serving_version
        timed(seconds, "candidates", lambda: store_candidates(con, build_candidates(con, settings, version), settings, version))
        users = db.frame(con, "candidates/users")["user_id"].to_list()
        timed(seconds, "rank", lambda: rank_users(con, settings, AlsRanker(), users))
        timed(seconds, "check outputs", lambda: validate.gate(validate.check_outputs(con, settings)))
        timed(seconds, "publish", lambda: publish_run(con, settings))
    return seconds


def suite_parts(settings: Settings, name: str, params: dict) -> dict[str, float]:
    """Seconds of a suite's row batch fetch (as one chunk), its GX expectations and SQL checks (nothing recorded)."""
    suite = validate.load_suite(name)
    params = {**params, "run_date": settings.run_date, "suite": name, **{f"previous_{n}": 0 for n in suite.check_names}}
    seconds: dict[str, float] = {}
    with db.connect(settings) as con:
        whole = {**params, "chunks": 1, "chunk": 0}  # the row batch as one chunk
        batch = timed(seconds, "fetch", lambda: db.frame(con, suite.rows.sql, validate.bind(suite.rows.sql, whole)))
        timed(seconds, "gx", lambda: validate.validate_frame(suite.rows, batch, params))
        timed(seconds, "sql", lambda: validate.run_sql_checks(con, suite, params))
    seconds["rows"] = batch.height
    return seconds


def synthetic_ranked(rows: int, k: int = 10) -> pl.DataFrame:
    users = rows // k
    return pl.DataFrame(
        {
            "user_id": np.repeat(np.arange(users), k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), users),
            "item_id": np.tile(np.arange(k), users),
            "score": np.random.default_rng(0).random(rows),
            "explanation": "Because you liked Alpha (1999), Beta (2004) and Gamma (2011).",
            "ranker": "als",
            "model_version": "bench",
        }
    )


def main(sizes: list[int]) -> None:
    started = time.perf_counter()
    with validate.gx_context():  # GX imported and one context made before timing
        pass
    print(f"GX import + ephemeral context (once per process): {time.perf_counter() - started:.1f} s\n")
    stages = ["ingest", "check inputs", "train", "candidates", "rank", "check outputs", "publish"]
    print(f"{'ratings':>9} {'ranked':>7} " + " ".join(f"{s:>13}" for s in stages) + f" {'total':>7} {'checks':>7} {'share':>6}")
    for ratings in sizes:
        users, items = SIZES.get(ratings, (max(10, ratings // 170), max(20, ratings // 250)))
        with tempfile.TemporaryDirectory() as home:
            generated = {"gen_users": users, "gen_items": items, "gen_ratings": ratings}
            settings = Settings(home=Path(home), run_date=date(2026, 11, 23), **generated)
            seconds = run_stages(settings)
            bounds = {"max_ts": validate.utc_now(), "min_ts": settings.min_timestamp, "rating_min": 0.5, "rating_max": 5.0}
            inputs = suite_parts(settings, "interactions", bounds)
            outputs = suite_parts(settings, "recommendations", {"k": settings.k, "like_threshold": settings.like_threshold})
        total = sum(seconds.values())
        checks = seconds["check inputs"] + seconds["check outputs"]
        cells = " ".join(f"{seconds[s]:>13.2f}" for s in stages)
        print(f"{ratings:>9} {outputs['rows']:>7} {cells} {total:>7.2f} {checks:>7.2f} {checks / total:>6.0%}")
        for name, parts in (("interactions", inputs), ("recommendations", outputs)):
            print(
                f"{'':>18}{name}: {parts['rows']} rows, fetch {parts['fetch']:.2f} s, "
                f"GX {parts['gx']:.2f} s, SQL checks {parts['sql']:.2f} s"
            )
    suite = validate.load_suite("recommendations")
    for rows in (100_000, 1_000_000):
        frame = synthetic_ranked(rows)
        started = time.perf_counter()
        validate.validate_frame(suite.rows, frame, {"k": 10})
        print(f"output expectations alone (GX) on {rows} synthetic ranked rows: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or list(SIZES))
