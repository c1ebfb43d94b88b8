"""Stop means stop: a real signal to a real `recs run` against a real HTTP LLM server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from conftest import RUN_DATE
from llm_server import OpenAICompatibleServer, slow
import processes
from processes import descendants, wait_gone
from tasks.publish import partition_dir

pytestmark = pytest.mark.slow
KEY = "sk-test-SECRET-stop-2b7d"
SIZES = {"gen_users": 40, "gen_items": 150, "gen_ratings": 2_500}


def recs_run(home: Path, *args: str, **env: str) -> subprocess.Popen:
    return processes.recs_run(home, *args, sizes=SIZES, **env)


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def llm_env(server: OpenAICompatibleServer) -> dict[str, str]:
    return {"RECS_LLM_BASE_URL": server.base_url, "RECS_LLM_API_KEY": KEY, "RECS_LLM_CONCURRENCY": "2",
            "RECS_LLM_SHARED_LIMIT": "local", "RECS_LLM_RPM": "10000", "RECS_USERS_PER_BATCH": "20"}


def test_sigterm_while_the_llm_ranks_stops_spending_and_the_rerun_pays_only_for_the_rest(tmp_path):
    with OpenAICompatibleServer(default_brain=slow(0.5)) as server:
        victim = recs_run(tmp_path, "--ranker", "llm", **llm_env(server))
        wait_until(lambda: len(server.chat_requests()) >= 8, 240, "the LLM ranking to be under way")
        processes = descendants(victim.pid)
        signalled = time.monotonic()
        answered = [r for r in server.ranking_requests()  # 0.5 s answers: received by now (the preflight is not cached)
                    if r.time < signalled - 1.0]
        victim.send_signal(signal.SIGTERM)
        output, _ = victim.communicate(timeout=60)
        exited = time.monotonic() - signalled
        time.sleep(1.5)  # anything still running would send more requests now
        late = [r for r in server.chat_requests() if r.time > signalled + 0.5]
        paid = len(server.ranking_requests())

        assert victim.returncode == 128 + signal.SIGTERM, output
        assert exited < 10, f"exited {exited:.1f} s after SIGTERM"
        assert late == [], f"{len(late)} LLM requests sent after SIGTERM"
        assert output.strip().splitlines()[-1].startswith("stopped: ")
        assert "SIGTERM" in output.strip().splitlines()[-1]
        assert wait_gone(processes, 10) == set(), "the local Prefect server and helpers died with the run"
        assert not partition_dir(tmp_path / "recommendations", RUN_DATE).exists()
        with duckdb.connect(str(tmp_path / "recs.duckdb"), read_only=True) as con:
            cached = con.sql("SELECT count(*) FROM llm_cache").fetchall()[0][0]
        assert cached >= len(answered) > 0, "answers received before the stop are kept"

        rerun = recs_run(tmp_path, "--ranker", "llm", **llm_env(server))
        output, _ = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, output
        resent = server.ranking_requests()[paid:]
        assert len(resent) <= SIZES["gen_users"] - cached, "answers paid for before the stop are not bought again"
    assert partition_dir(tmp_path / "recommendations", RUN_DATE).joinpath("data.parquet").exists()


def test_kill_9_while_the_llm_ranks_keeps_the_answers_received_and_the_rerun_does_not_buy_them_again(tmp_path):
    """No batch is stored yet (20 users a batch, 2 calls in flight, 0.5 s an answer), yet every answer
    received a few seconds before the kill is in llm_cache, and the rerun pays only for the others."""
    with OpenAICompatibleServer(default_brain=slow(0.5)) as server:
        victim = recs_run(tmp_path, "--ranker", "llm", **llm_env(server))
        wait_until(lambda: len(server.chat_requests()) >= 8, 240, "the LLM ranking to be under way")
        answered_by = time.monotonic()
        answered = [r for r in server.chat_requests() if r.time < answered_by - 1.0]  # 0.5 s answers: received by now
        time.sleep(3.0)  # the answer keeper stores every second
        victim.kill()
        victim.communicate(timeout=60)
        paid = len(server.ranking_requests())
        with duckdb.connect(str(tmp_path / "recs.duckdb"), read_only=True) as con:
            cached = con.sql("SELECT count(*) FROM llm_cache").fetchall()[0][0]
            batches_stored = con.sql("SELECT count(DISTINCT user_id) FROM ranked").fetchall()[0][0]
        assert batches_stored == 0, "the kill came before any batch was stored"
        assert cached >= len(answered) > 0, "answers received before the kill are kept"

        rerun = recs_run(tmp_path, "--ranker", "llm", **llm_env(server))
        output, _ = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, output
        resent = server.ranking_requests()[paid:]
        with duckdb.connect(str(tmp_path / "recs.duckdb"), read_only=True) as con:
            hits = con.sql("SELECT count(*) FROM llm_calls WHERE outcome = 'cache_hit'").fetchall()[0][0]
        assert hits >= cached, "the rerun hits every kept answer"
        assert len(resent) <= SIZES["gen_users"] - cached, "answers paid for before the kill are not bought again"
    assert partition_dir(tmp_path / "recommendations", RUN_DATE).joinpath("data.parquet").exists()


def prefect_server_left_by_kill_9(victim: subprocess.Popen, ready: str) -> set[int]:
    """SIGKILL `victim` once it printed a line containing `ready`; its child processes still alive 15 s later."""
    for line in victim.stdout:
        if ready in line:
            break
    processes = descendants(victim.pid)
    assert processes, "the Prefect server runs as a child"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    return wait_gone(processes, 15)


def test_kill_9_takes_the_local_prefect_server_with_it(tmp_path):
    assert prefect_server_left_by_kill_9(recs_run(tmp_path), "Beginning flow run") == set(), "no Prefect server outlives a killed run"


def test_a_killed_process_takes_its_temporary_prefect_server_with_it():
    """The temporary server of the tests' and benchmarks' Prefect harness (flows.lifeline.temporary_prefect)."""
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    code = "import time\nfrom flows.lifeline import temporary_prefect\nwith temporary_prefect():\n    print('harness-ready', flush=True)\n    time.sleep(600)\n"
    victim = subprocess.Popen([sys.executable, "-c", code], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert prefect_server_left_by_kill_9(victim, "harness-ready") == set(), "no temporary Prefect server outlives a killed process"
