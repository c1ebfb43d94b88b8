"""A run killed with SIGKILL mid-flow and started again finishes without redoing finished work."""

from __future__ import annotations

import re
import signal
import subprocess

import duckdb
import polars as pl
import pytest

import processes
from conftest import RUN_DATE, SMALL
from tasks.publish import partition_dir

pytestmark = pytest.mark.slow


def recs_run(home) -> subprocess.Popen:
    return processes.recs_run(home, sizes=SMALL, RECS_USERS_PER_BATCH="50")


def test_killed_while_ranking_resumes_with_the_same_model_and_no_duplicates(tmp_path):
    victim = recs_run(tmp_path)
    for line in victim.stdout:
        if "rank: batch 1 of 3 stored" in line:  # the first of three batches is stored
            victim.send_signal(signal.SIGKILL)
            break
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert not partition_dir(tmp_path / "recommendations", RUN_DATE).exists(), "nothing published by the killed run"

    rerun = recs_run(tmp_path)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    assert "reused, already trained tonight" in output
    reranked = re.search(r"rank: [\d.]+ s, peak [\d,]+ MiB — \{(?:'als': (\d+))?\}", output)
    assert reranked and int(reranked.group(1) or 0) < 150 * 10, "batches stored before the kill are not ranked again"

    recs = pl.read_parquet(partition_dir(tmp_path / "recommendations", RUN_DATE) / "data.parquet")
    per_user = recs.group_by("user_id").agg(n=pl.len(), distinct=pl.col("item_id").n_unique())
    assert (per_user["n"] == 10).all() and (per_user["distinct"] == 10).all()
    con = duckdb.connect(str(tmp_path / "recs.duckdb"), read_only=True)
    models = con.sql("SELECT count(*) FROM model_runs").fetchall()[0][0]
    stored = con.sql("SELECT count(*), count(DISTINCT (user_id, rank)) FROM ranked").fetchall()[0]
    assert models == 1, "the model trained before the kill was reused"
    assert stored[0] == stored[1] == recs.height
