"""Each non-LLM stage of the project vs a minimal hand-written implicit + DuckDB script doing the same work.

    .venv/bin/python bench/stages_vs_baseline.py                      # ML-100k (if present) and generated 1M
    .venv/bin/python bench/stages_vs_baseline.py --sizes ml-100k,1m,20m   # + 20M ratings: ~40 min
    .venv/bin/python bench/stages_vs_baseline.py --sizes 5m,20m --stages ingest   # ingest only: a few minutes
    .venv/bin/python bench/stages_vs_baseline.py --sizes 20m,32m --stages ingest,check_inputs,train   # the leading stages

Stages (same order, same data, same ALS settings: tasks/settings.py defaults):
  ingest      project: tasks.ingest.ingest_source (line-level parsing, typing and quarantine in SQL,
              catalogue, file fingerprint)   | baseline: DuckDB read_csv of ratings and titles
  check_inputs project: tasks.validate.check_inputs (the great-expectations suite expectations/interactions.json
              in chunks of users, its SQL checks, results stored) | baseline: the same facts in DuckDB SQL (null ids,
              ratings out of range, duplicate events, unknown items, row count)
  train       project: tasks.train.train_model (90/10 holdout, ALS + popularity metrics, refit on all
              likes, versioned save, promotion record) | baseline: the same holdout NDCG@10 of ALS,
              refit, model.save
  candidates  project: build_candidates + store_candidates (30 per user, 3 evidence items each,
              popular items for users without likes) | baseline: model.recommend + implicit's
              model.explain per candidate (Cholesky factor reused per user), popular items for
              users without likes, CREATE TABLE from Arrow
  rank (als)  project: rank_users with AlsRanker, in the flow's batches of users_per_batch
              | baseline: one SQL statement: top 10 per user, "Because you liked ..." from titles
  check_outputs project: tasks.validate.check_outputs (expectations/recommendations.json) | baseline: the same
              facts in DuckDB SQL (ranks 1..K, unique per user, K per user, every user ranked, unseen catalogue
              items, explanations present and short, evidence among the user's likes)
  publish     project: publish_run (atomic Parquet partition, run record, views)
              | baseline: COPY ... TO parquet (zstd)

Every stage of each side runs in its own child process (no Prefect: the project's plain functions),
state passed through the side's DuckDB file and model files. Seconds are the stage's work inside the
child (imports excluded, great-expectations' too); peak memory is that child's peak RSS (VmHWM, what the kernel counted,
numpy and DuckDB included), next to the peak of a child that only imports the side's modules.
Generated datasets (tasks.generate) are written once under --data-dir (not timed) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "data" / "ml-100k"
STAGES = ("ingest", "check_inputs", "train", "candidates", "rank", "check_outputs", "publish")
GENERATED = {  # size flag: (users, items, ratings)
    "1m": (6_000, 4_000, 1_000_000),
    "5m": (30_000, 10_000, 5_000_000),
    "20m": (120_000, 20_000, 20_000_000),
    "32m": (200_000, 87_000, 32_000_000),  # ML-32M shaped
}
SKIPPED_BY_DEFAULT = {"20m": "not run by default: ~40 min on 2 cores, of which the baseline's per-candidate explain() is"
                             " ~21 min; run it with --sizes ml-100k,1m,20m",
                      "32m": "not run by default: generating it takes ~25 min once; the baseline's explain() would take over an hour"}
RUN_DATE = "2026-11-23"
K, N_CANDIDATES, EVIDENCE = 10, 30, 3


# ---------------------------------------------------------------- the two sides, one stage per process


def project_stage(stage: str, home: Path, source: dict) -> dict:
    from datetime import date

    from rankers.als import AlsRanker
    from tasks import db
    from tasks.candidates import build_candidates, store_candidates
    from tasks.ingest import ingest_source, resolve_source
    from tasks.publish import publish_run
    from tasks.rank import rank_users, user_batches
    from tasks.settings import Settings
    from tasks.train import train_model
    from tasks.validate import check_inputs, check_outputs

    if stage.startswith("check_"):
        import great_expectations  # noqa: F401  (imported once per run; seconds of work only, as on the other side)

    settings = Settings(home=home, data=Path(source["data"]), catalog=source.get("catalog"), run_date=date.fromisoformat(RUN_DATE))
    with db.connect(settings) as con:
        started = time.perf_counter()
        if stage == "ingest":
            report = ingest_source(con, resolve_source(settings))
            info = f"{report.rows_loaded} rows loaded, {report.rows_quarantined} quarantined"
        elif stage == "check_inputs":
            info = str(check_inputs(con, settings))
        elif stage == "train":
            info = str(train_model(con, settings))
        elif stage == "candidates":
            version = db.run(con, "train/current_model")[0][0]
            frame = build_candidates(con, settings, version)
            store_candidates(con, frame, settings, version)
            info = f"{frame.height} candidates"
        elif stage == "rank":
            batches = user_batches(con, settings)
            rows = sum(rank_users(con, settings, AlsRanker(), users).height for users in batches)
            info = f"{rows} ranked rows in {len(batches)} batches"
        elif stage == "check_outputs":
            info = str(check_outputs(con, settings))
        elif stage == "publish":
            published = publish_run(con, settings)
            info = f"{published.rows} rows for {published.users} users"
        else:
            return {"seconds": 0.0, "info": "imports only"}
        return {"seconds": time.perf_counter() - started, "info": info}


def baseline_stage(stage: str, home: Path, source: dict) -> dict:
    """The minimal script, cut at the same stage boundaries."""
    import duckdb
    import numpy as np
    import pyarrow as pa
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.evaluation import train_test_split
    from threadpoolctl import threadpool_limits

    from tasks.settings import Settings  # the defaults only (pydantic, no Prefect)

    defaults = Settings()
    factors, reg, iterations, alpha = defaults.als_factors, defaults.als_regularization, defaults.als_iterations, defaults.als_alpha
    con = duckdb.connect(str(home / "baseline.duckdb"))

    def matrices():
        r = con.sql("SELECT user_id, item_id, rating FROM ratings").fetchnumpy()
        users, items = np.unique(r["user_id"]), np.unique(r["item_id"])
        rows, cols = np.searchsorted(users, r["user_id"]), np.searchsorted(items, r["item_id"])
        liked = r["rating"] > 3
        shape = (len(users), len(items))
        likes = sp.csr_matrix((np.full(liked.sum(), alpha, np.float32), (rows[liked], cols[liked])), shape=shape)
        seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
        return users, items, likes, seen

    def als():
        return AlternatingLeastSquares(factors=factors, regularization=reg, iterations=iterations, random_state=42)

    started = time.perf_counter()
    if stage == "ingest":
        if source["kind"] == "ml100k":
            d = Path(source["data"])
            con.execute(f"""CREATE OR REPLACE TABLE ratings AS SELECT * FROM read_csv('{d / "u.data"}', delim='\t', header=false,
                columns={{'user_id': 'BIGINT', 'item_id': 'BIGINT', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}})""")
            con.execute(f"""CREATE OR REPLACE TABLE catalog AS SELECT item_id, title FROM read_csv('{d / "u.item"}', delim='|',
                header=false, encoding='latin-1', quote='', names=['item_id', 'title'])""")
        else:
            con.execute(f"CREATE OR REPLACE TABLE ratings AS SELECT * FROM read_csv('{source['data']}', header=true)")
            con.execute(f"CREATE OR REPLACE TABLE catalog AS SELECT item_id, title FROM read_csv('{source['catalog']}', header=true)")
        info = f"{con.sql('SELECT count(*) FROM ratings').fetchall()[0][0]} rows loaded"
    elif stage == "check_inputs":
        (found,) = con.sql("""
            SELECT [count(*), count(*) FILTER (user_id IS NULL OR item_id IS NULL), count(*) FILTER (rating NOT BETWEEN 0.5 AND 5),
                    (SELECT count(*) FROM (SELECT 1 FROM ratings GROUP BY user_id, item_id, timestamp HAVING count(*) > 1)),
                    (SELECT count(*) FROM ratings ANTI JOIN catalog USING (item_id))]
            FROM ratings""").fetchall()[0]
        info = "{} rows, {} null ids, {} ratings out of range, {} duplicate events, {} unknown items".format(*found)
    elif stage == "train":
        users, items, likes, seen = matrices()
        train, test = (m.tocsr() for m in train_test_split(likes, train_percentage=0.9, random_state=42))
        with threadpool_limits(1, "blas"):
            model = als()
            model.fit(train, show_progress=False)
            test_users = np.flatnonzero(np.diff(test.indptr) > 0)
            known = (seen - (test > 0).astype(np.float32)).tocsr()
            ids, _ = model.recommend(test_users, known[test_users], N=K, filter_already_liked_items=True)
            held_out = test[test_users]
            hits = (np.asarray(held_out[np.arange(len(test_users))[:, None], np.maximum(ids, 0)].todense()) > 0) & (ids >= 0)
            discounts = 1 / np.log2(np.arange(2, K + 2))
            ideal = np.cumsum(discounts)[np.minimum(np.diff(test.indptr)[test_users], K) - 1]
            ndcg = float(((hits * discounts).sum(axis=1) / ideal).mean())
            model = als()
            model.fit(likes, show_progress=False)
        model.save(str(home / "als.npz"))
        np.save(home / "users.npy", users)
        np.save(home / "items.npy", items)
        info = f"holdout NDCG@10 {ndcg:.4f}"
    elif stage == "candidates":
        model = AlternatingLeastSquares.load(str(home / "als.npz"))
        users, items, likes, seen = matrices()
        rows = np.flatnonzero(np.diff(likes.indptr) > 0)
        with threadpool_limits(1, "blas"):
            ids, scores = model.recommend(rows, seen[rows], N=N_CANDIDATES, filter_already_liked_items=True)
            recommended = time.perf_counter() - started
            evidence = []
            for row, candidates in zip(rows, ids):
                weights, user_evidence = None, []
                for item in candidates:
                    _, top, weights = model.explain(row, likes, int(max(item, 0)), user_weights=weights, N=EVIDENCE)
                    user_evidence.append([int(items[i]) for i, score in top if score > 0])
                evidence.extend(user_evidence)
            explained = time.perf_counter() - started - recommended
        cold = np.flatnonzero(np.diff(likes.indptr) == 0)
        popular = np.argsort(-np.asarray((likes > 0).sum(axis=0)).ravel(), kind="stable")[: N_CANDIDATES + 200]
        cold_ids = np.array([[i for i in popular if seen[u, i] == 0][:N_CANDIDATES] for u in cold], dtype=np.int64)
        cold_ids = cold_ids.reshape(len(cold), N_CANDIDATES if len(cold) == 0 else -1)
        frame = pa.table({
            "user_id": np.concatenate([np.repeat(users[rows], ids.shape[1]), np.repeat(users[cold], cold_ids.shape[1])]),
            "item_id": np.concatenate([items[np.maximum(ids, 0)].ravel(), items[cold_ids].ravel()]),
            "als_rank": np.concatenate([np.tile(np.arange(1, ids.shape[1] + 1), len(rows)), np.tile(np.arange(1, cold_ids.shape[1] + 1), len(cold))]),
            "score": np.concatenate([scores.ravel(), np.zeros(cold_ids.size, np.float32)]),
            "evidence": evidence + [[] for _ in range(cold_ids.size)],
        })  # fmt: skip
        con.register("new_candidates", frame)
        con.execute("CREATE OR REPLACE TABLE candidates AS SELECT * FROM new_candidates")
        info = f"{frame.num_rows} candidates (recommend {recommended:.2f} s, explain {explained:.2f} s)"
    elif stage == "rank":
        con.execute(f"""
            CREATE OR REPLACE TABLE ranked AS
            WITH top AS (SELECT * FROM candidates WHERE als_rank <= {K}),
            cited AS (
                SELECT e.user_id, e.item_id, list(c.title ORDER BY e.pos) AS titles
                FROM (SELECT user_id, item_id, unnest(evidence) AS evidence_id, generate_subscripts(evidence, 1) AS pos FROM top) e
                JOIN catalog c ON c.item_id = e.evidence_id
                GROUP BY ALL
            )
            SELECT top.user_id, top.als_rank AS rank, top.item_id, top.score, top.evidence,
                   CASE WHEN len(titles) > 0 THEN 'Because you liked ' || array_to_string(titles, ', ') || '.'
                        ELSE 'Fits the overall pattern of your ratings.' END AS explanation
            FROM top LEFT JOIN cited USING (user_id, item_id)""")
        info = f"{con.sql('SELECT count(*) FROM ranked').fetchall()[0][0]} ranked rows"
    elif stage == "check_outputs":
        (found,) = con.sql(f"""
            WITH per_user AS (SELECT user_id, count(*) AS n FROM ranked GROUP BY user_id),
                 offered AS (SELECT user_id, count(*) AS n FROM candidates GROUP BY user_id),
                 cited AS (SELECT user_id, unnest(evidence) AS item_id FROM ranked)
            SELECT [count(*) FILTER (rank NOT BETWEEN 1 AND {K}),
                    count(*) FILTER (trim(explanation) = '' OR length(explanation) > 500),
                    (SELECT count(*) FROM (SELECT 1 FROM ranked GROUP BY user_id, rank HAVING count(*) > 1)),
                    (SELECT count(*) FROM (SELECT 1 FROM ranked GROUP BY user_id, item_id HAVING count(*) > 1)),
                    (SELECT count(*) FROM offered LEFT JOIN per_user p USING (user_id) WHERE coalesce(p.n, 0) <> least({K}, offered.n)),
                    (SELECT count(*) FROM ranked SEMI JOIN ratings USING (user_id, item_id)),
                    (SELECT count(*) FROM ranked ANTI JOIN catalog USING (item_id)),
                    (SELECT count(*) FROM cited ANTI JOIN (SELECT user_id, item_id FROM ratings WHERE rating > 3) USING (user_id, item_id))]
            FROM ranked""").fetchall()[0]
        info = "{} ranks out of 1..K, {} bad explanations, {} + {} repeated ranks / items, {} users without K rows, {} seen, {} unknown, {} not liked".format(*found)
    elif stage == "publish":
        out = home / "recommendations.parquet"
        con.execute(f"""COPY (SELECT r.*, c.title FROM ranked r JOIN catalog c USING (item_id) ORDER BY user_id, rank)
                        TO '{out}' (FORMAT parquet, COMPRESSION zstd)""")
        rows = con.sql(f"SELECT count(*) FROM '{out}'").fetchall()[0][0]
        info = f"{rows} rows"
    else:
        info = "imports only"
    seconds = time.perf_counter() - started if stage in STAGES else 0.0
    con.close()
    return {"seconds": seconds, "info": info}


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM): counted from exec, so a large parent never inflates it."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def worker(side: str, stage: str, home: Path, source: dict) -> None:
    run = project_stage if side == "project" else baseline_stage
    print(json.dumps(run(stage, home, source) | {"peak_mib": peak_rss_mib()}))


# ---------------------------------------------------------------- the parent: datasets, children, table


def child(side: str, stage: str, home: Path, source: dict) -> dict:
    """Run one stage in a fresh process; its seconds, wall time with imports, and peak RSS (MiB)."""
    cmd = [sys.executable, __file__, "--worker", side, "--stage", stage, "--home", str(home), "--source", json.dumps(source)]
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "DO_NOT_TRACK": "1"}
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{side} {stage} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"wall": wall}


def prepare(name: str, data_dir: Path) -> dict | None:
    if name == "ml-100k":
        if not (ML100K / "u.data").exists():
            print(f"ml-100k: skipped, MovieLens 100k not found at {ML100K}")
            return None
        return {"kind": "ml100k", "data": str(ML100K)}
    users, items, ratings = GENERATED[name]
    directory = data_dir / f"generated-{users}x{items}x{ratings}-seed7"
    interactions, catalog = directory / "interactions.csv", directory / "catalog.csv"
    if not (interactions.exists() and catalog.exists()):
        from tasks.generate import write_dataset

        started = time.perf_counter()
        write_dataset(directory, n_users=users, n_items=items, n_ratings=ratings, seed=7)
        print(f"{name}: generated {ratings:,} ratings ({users:,} users x {items:,} items) in {time.perf_counter() - started:.0f} s (not timed below)")
    return {"kind": "generated", "data": str(interactions), "catalog": str(catalog)}


def compare(name: str, source: dict, stages: tuple[str, ...] = STAGES) -> None:
    load_before = os.getloadavg()
    floors = {side: child(side, "imports", Path(tempfile.mkdtemp()), source) for side in ("project", "baseline")}
    results: dict[str, dict[str, dict]] = {"project": {}, "baseline": {}}
    with tempfile.TemporaryDirectory(prefix="recs-bench-project-") as p, tempfile.TemporaryDirectory(prefix="recs-bench-base-") as b:
        homes = {"project": Path(p), "baseline": Path(b)}
        for stage in stages:
            for side in ("project", "baseline"):
                results[side][stage] = child(side, stage, homes[side], source)
    load = " / ".join(f"{v:.1f}" for v in load_before) + " before, " + " / ".join(f"{v:.1f}" for v in os.getloadavg()) + " after"
    print(f"\n== {name}  (load average 1/5/15 min: {load}; a child that only imports: project {floors['project']['peak_mib']:.0f} MiB in {floors['project']['wall']:.1f} s, "
          f"baseline {floors['baseline']['peak_mib']:.0f} MiB in {floors['baseline']['wall']:.1f} s)")
    print(f"{'stage':<14}{'project s':>10}{'base s':>9}{'ratio':>7}{'proj MiB':>10}{'base MiB':>10}{'ratio':>7}   project / baseline output")
    totals = {"project": 0.0, "baseline": 0.0}
    for stage in stages:
        pr, ba = results["project"][stage], results["baseline"][stage]
        totals["project"] += pr["seconds"]
        totals["baseline"] += ba["seconds"]
        print(
            f"{stage:<14}{pr['seconds']:>10.2f}{ba['seconds']:>9.2f}{pr['seconds'] / max(ba['seconds'], 1e-3):>7.1f}"
            f"{pr['peak_mib']:>10.0f}{ba['peak_mib']:>10.0f}{pr['peak_mib'] / ba['peak_mib']:>7.2f}   {pr['info']} / {ba['info']}"
        )
    peak = {side: max(r["peak_mib"] for r in results[side].values()) for side in results}
    print(
        f"{'total':<14}{totals['project']:>10.2f}{totals['baseline']:>9.2f}{totals['project'] / totals['baseline']:>7.1f}"
        f"{peak['project']:>10.0f}{peak['baseline']:>10.0f}{peak['project'] / peak['baseline']:>7.2f}   (memory: the largest stage)"
    )
    walls = {side: sum(r["wall"] for r in results[side].values()) for side in results}
    print(f"{'':<14}wall time of the stage children, process start and imports included: "
          f"project {walls['project']:.1f} s, baseline {walls['baseline']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="ml-100k,1m", help="comma-separated: ml-100k, 1m, 5m, 20m, 32m")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated leading stages to run (each needs the ones before it), e.g. ingest")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "recs-bench-data",
                        help="where generated datasets are written once and reused")  # fmt: skip
    parser.add_argument("--worker", choices=("project", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.stage, args.home, json.loads(args.source))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for name, reason in SKIPPED_BY_DEFAULT.items():
        if name not in sizes:
            print(f"{name}: skipped ({reason})")
    print(f"{os.cpu_count()} CPUs; ALS and BLAS settings identical on both sides")
    for name in sizes:
        source = prepare(name, args.data_dir)
        if source is not None:
            compare(name, source, tuple(s.strip() for s in args.stages.split(",") if s.strip()))


if __name__ == "__main__":
    main()
