"""MovieLens 100k with some likes hidden from the pipeline, and how published lists score on them
(tests/test_gate.py, bench/llm_gate.py). Files go to a temporary directory, never into the repo."""

from __future__ import annotations

import math
import shutil
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from tasks.publish import partition_dir

K = 10


def hide_likes(ml100k: Path, target: Path, share: float, users: int | None = None, seed: int = 0
               ) -> tuple[pl.DataFrame, list[tuple[int, str, float]]]:
    """Write a MovieLens 100k directory to `target` without a seeded `share` of the likes (rating > 3) of
    users 1..`users` (all when None); return the hidden likes (user_id, item_id) and every true
    (user_id, title, rating) of those users (what a brain of tests/llm_server.py may know)."""
    ratings = pl.read_csv(ml100k / "u.data", separator="\t", has_header=False,
                          new_columns=["user_id", "item_id", "rating", "ts"]).with_row_index()
    if users is not None:
        ratings = ratings.filter(pl.col("user_id") <= users)
    likes = ratings.filter(pl.col("rating") > 3)
    hidden = likes[np.sort(np.random.default_rng(seed).choice(likes.height, size=int(share * likes.height), replace=False))]
    target.mkdir(parents=True, exist_ok=True)
    ratings.join(hidden, on="index", how="anti").drop("index").write_csv(target / "u.data", separator="\t", include_header=False)
    for name in ("u.item", "u.genre"):
        shutil.copyfile(ml100k / name, target / name)
    lines = (line.split("|") for line in (ml100k / "u.item").read_text(encoding="latin-1").splitlines())
    titles = pl.DataFrame([(int(f[0]), f[1]) for f in lines], schema=["item_id", "title"], orient="row")
    truth = ratings.join(titles, on="item_id").select("user_id", "title", "rating").rows()
    return hidden.select("user_id", "item_id"), truth


def published(home: Path, run_date: date) -> pl.DataFrame:
    """The night's published Parquet partition."""
    return pl.read_parquet(partition_dir(home / "recommendations", run_date) / "data.parquet")


def als_lists(home: Path, run_date: date) -> pl.DataFrame:
    """The ALS-only lists of the night (user_id, rank, item_id): each user's first K candidates in ALS order."""
    with duckdb.connect(str(home / "recs.duckdb"), read_only=True) as con:
        return con.sql("SELECT user_id, als_rank AS rank, item_id FROM candidates WHERE run_date = $d AND als_rank <= $k",
                       params={"d": run_date, "k": K}).pl()


def ndcg(lists: pl.DataFrame, hidden: pl.DataFrame) -> float:
    """Mean NDCG@K of lists (user_id, rank, item_id) over the users with hidden likes."""
    relevant = hidden.group_by("user_id").agg(pl.len().alias("relevant"))
    hits = lists.join(hidden.with_columns(hit=pl.lit(True)), on=["user_id", "item_id"], how="left")
    dcg = hits.group_by("user_id").agg((pl.col("hit").fill_null(False) / (pl.col("rank") + 1).log(2)).sum().alias("dcg"))
    ideal = {n: sum(1 / math.log2(r + 2) for r in range(min(n, K))) for n in relevant["relevant"].unique()}
    scored = relevant.join(dcg, on="user_id", how="left").with_columns(
        idcg=pl.col("relevant").replace_strict(ideal, return_dtype=pl.Float64))
    return float((scored["dcg"].fill_null(0.0) / scored["idcg"]).mean())
