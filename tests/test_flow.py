"""The nightly flow end to end on the built-in dataset, publishing, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import duckdb
import polars as pl
import pytest
from prefect.client.orchestration import get_client

from conftest import RUN_DATE, SMALL
from llm_server import OpenAICompatibleServer, correct, server_error
from flows.nightly import nightly
from flows.parameters import RunParameters
from tasks.db import connect
from tasks.publish import partition_dir

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def small_data(monkeypatch):
    for name, value in SMALL.items():
        monkeypatch.setenv(f"RECS_{name.upper()}", str(value))


def read_artifacts(prefix: str):
    with get_client(sync_client=True) as client:
        return [a for a in client.read_artifacts() if a.key and a.key.startswith(prefix)]


def read_partition(home, run_date) -> pl.DataFrame:
    return pl.read_parquet(partition_dir(home / "recommendations", run_date) / "data.parquet")


def test_nightly_run_gives_every_user_k_unseen_explained_items(tmp_path, small_data):
    state = nightly(RunParameters(home=tmp_path, run_date=RUN_DATE), return_state=True)
    summary = state.result()
    recs = read_partition(tmp_path, RUN_DATE)
    with connect(tmp_path / "recs.duckdb") as con:
        history = con.sql("SELECT user_id, item_id, rating FROM interactions").pl()
        titles = con.sql("SELECT item_id, title FROM catalog").pl()
        liked = con.sql("SELECT user_id, item_id FROM likes(3.0)").pl()  # the one definition of a like

    per_user = recs.group_by("user_id").agg(n=pl.len(), distinct=pl.col("item_id").n_unique(), ranks=pl.col("rank").sort())
    assert per_user.height == history["user_id"].n_unique() == summary["users"]
    assert (per_user["n"] == 10).all() and (per_user["distinct"] == 10).all()
    assert per_user["ranks"].to_list() == [list(range(1, 11))] * per_user.height
    assert recs.join(history, on=["user_id", "item_id"]).height == 0, "only unseen items"
    assert (recs["explanation"].str.len_chars() > 0).all()

    evidence = recs.explode("evidence_item_ids").drop_nulls("evidence_item_ids")
    assert evidence.join(liked, left_on=["user_id", "evidence_item_ids"], right_on=["user_id", "item_id"], how="anti").is_empty()
    first_evidence = recs.with_columns(first_id=pl.col("evidence_item_ids").list.first()).drop_nulls("first_id")
    named = first_evidence.drop("title").join(titles, left_on="first_id", right_on="item_id")
    assert all(title in explanation for title, explanation in zip(named["title"], named["explanation"]))
    artifacts = {a.key: a for a in read_artifacts(f"recs-{RUN_DATE.isoformat()}") if a.flow_run_id == state.state_details.flow_run_id}
    assert artifacts.keys() == {f"recs-{RUN_DATE.isoformat()}-{name}" for name in ("summary", "model", "sample", "report")}
    assert summary["peak_mib"].keys() == summary["seconds"].keys() and all(mib > 0 for mib in summary["peak_mib"].values())
    assert "| stage | seconds | peak MiB |" in artifacts[f"recs-{RUN_DATE.isoformat()}-summary"].data
    distinct = recs["explanation"].n_unique() / recs.height
    assert f"- explanations: {distinct:.0%} distinct texts" in artifacts[f"recs-{RUN_DATE.isoformat()}-summary"].data
    assert recs["explanation"].str.starts_with("Shares ").any() and recs["explanation"].str.starts_with("Because ").any()
    assert set(recs.columns) >= {"user_id", "rank", "item_id", "title", "score", "explanation", "evidence_item_ids", "ranker", "model_version"}


def test_rerun_replaces_only_its_own_partition(tmp_path, small_data):
    earlier = RUN_DATE - timedelta(days=1)
    nightly(RunParameters(home=tmp_path, run_date=earlier))
    nightly(RunParameters(home=tmp_path, run_date=RUN_DATE))
    earlier_file = partition_dir(tmp_path / "recommendations", earlier) / "data.parquet"
    earlier_bytes = earlier_file.read_bytes()
    first = read_partition(tmp_path, RUN_DATE)

    summary = nightly(RunParameters(home=tmp_path, run_date=RUN_DATE))

    assert earlier_file.read_bytes() == earlier_bytes
    assert read_partition(tmp_path, RUN_DATE).equals(first), "same inputs, same night: same output"
    assert summary["ingested"].files_skipped == 2
    con = duckdb.connect(str(tmp_path / "recs.duckdb"), read_only=True)
    assert con.sql("SELECT count(*) FROM ranked WHERE run_date = $d", params={"d": RUN_DATE}).fetchall()[0][0] == first.height
    hive = con.sql(
        "SELECT run_date, count(*) FROM read_parquet($glob, hive_partitioning = true) GROUP BY ALL ORDER BY ALL",
        params={"glob": str(tmp_path / "recommendations" / "*" / "*.parquet")},
    ).fetchall()
    assert hive == [(earlier, first.height), (RUN_DATE, first.height)]
    assert not list((tmp_path / "staging").iterdir()), "no staging leftovers"


def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\n1,2\n")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--data", str(bad), "--home", str(tmp_path / "home")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    assert "lacks" in done.stderr and "Traceback" not in done.stderr + done.stdout


def test_a_rerun_ranks_again_what_this_run_would_publish_differently(tmp_path, small_data, monkeypatch):
    nightly(RunParameters(home=tmp_path, run_date=RUN_DATE))
    users = read_partition(tmp_path, RUN_DATE)["user_id"].n_unique()

    fewer = nightly(RunParameters(home=tmp_path, run_date=RUN_DATE, k=5))
    assert fewer["rows"] == 5 * users and read_partition(tmp_path, RUN_DATE).height == 5 * users

    for name, value in {"RECS_LLM_SHARED_LIMIT": "local", "RECS_LLM_RPM": "10000", "RECS_LLM_TPM": "100000000", "RECS_LLM_DEADLINE_SECONDS": "1",
                        "RECS_LLM_BACKOFF_SECONDS": "0.01", "RECS_LLM_API_KEY": "sk-test-rerun"}.items():
        monkeypatch.setenv(name, value)
    with OpenAICompatibleServer(default_brain=server_error(503)) as server:
        monkeypatch.setenv("RECS_LLM_BASE_URL", server.base_url)
        server.script(correct())  # the endpoint answers one request, then goes down for the night
        nightly(RunParameters(home=tmp_path, run_date=RUN_DATE, ranker="llm"))
        down = read_partition(tmp_path, RUN_DATE)
        assert (down["ranker"] == "als_fallback").mean() > 0.9

        server.default_brain = correct()  # back up: the same night is run again
        nightly(RunParameters(home=tmp_path, run_date=RUN_DATE, ranker="llm"))
    back = read_partition(tmp_path, RUN_DATE)
    assert (back["ranker"] == "llm").all() and back.height == 10 * users
