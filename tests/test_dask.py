"""The rank fan-out on Dask worker processes (issue 14 §3): rank tasks open no database, the flow
process stores every batch, so a 2-process cluster publishes what threads publish, and a killed
worker process's batch is run again elsewhere."""

from __future__ import annotations

import os
import signal
import threading
import time

import polars as pl
import pytest
from distributed import Client, LocalCluster

from conftest import RUN_DATE, SMALL
from llm_server import OpenAICompatibleServer, correct, slow
from flows.nightly import nightly_for
from flows.parameters import RunParameters
from tasks.db import connect
from tasks.llm_client import reset_shared_state
from tasks.publish import partition_dir
from tasks.settings import Settings

pytestmark = pytest.mark.usefixtures("prefect_server")
SAME_COLUMNS = pl.exclude("model_version")  # the version names the load time of each home's data
LLM_SIZES = {"gen_users": 60, "gen_items": 150, "gen_ratings": 3_000}  # an llm night: a few seconds of ranking


@pytest.fixture
def small_data(monkeypatch):
    for name, value in SMALL.items():
        monkeypatch.setenv(f"RECS_{name.upper()}", str(value))


@pytest.fixture
def llm_endpoint(monkeypatch):
    """An llm night against the real local server (listening on 127.0.0.1: reachable from the workers)."""
    reset_shared_state()
    for name, value in LLM_SIZES.items():
        monkeypatch.setenv(f"RECS_{name.upper()}", str(value))

    def use(server: OpenAICompatibleServer) -> None:
        for name, value in {"RECS_RANKER": "llm", "RECS_LLM_BASE_URL": server.base_url, "RECS_LLM_API_KEY": "sk-test-dask",
                            "RECS_LLM_SHARED_LIMIT": "local", "RECS_LLM_RPM": "100000", "RECS_LLM_TPM": "100000000",
                            "RECS_LLM_CONCURRENCY": "2", "RECS_USERS_PER_BATCH": "10"}.items():
            monkeypatch.setenv(name, value)

    yield use
    reset_shared_state()


def run_night(home, **runner) -> pl.DataFrame:
    """One night in `home` with the given task runner settings; its published rows."""
    params = RunParameters(home=home, run_date=RUN_DATE)
    state = nightly_for(params.settings().model_copy(update=runner))(params, return_state=True)
    assert state.is_completed(), state.message
    return pl.read_parquet(partition_dir(home / "recommendations", RUN_DATE) / "data.parquet").select(SAME_COLUMNS)


def test_a_local_cluster_of_two_processes_publishes_what_threads_publish(tmp_path, small_data):
    batches = {"candidate_users_per_batch": 20, "users_per_batch": 20}  # candidates and rank tasks: several per worker
    threads = run_night(tmp_path / "threads", **batches)
    processes = run_night(tmp_path / "dask", task_runner="dask", dask_workers=2, dask_threads_per_worker=1, **batches)

    assert processes.equals(threads)
    assert processes["user_id"].n_unique() == SMALL["gen_users"] and (processes["ranker"] == "als").all()


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, one task at a time each; the tests reach them by the scheduler's address."""
    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None) as local:
        with Client(local) as client:
            yield local, client


def test_the_llm_ranker_on_worker_processes_publishes_what_threads_publish(tmp_path, llm_endpoint, cluster):
    local, _ = cluster
    with OpenAICompatibleServer(default_brain=correct()) as server:
        llm_endpoint(server)
        threads = run_night(tmp_path / "threads")
        paid_by_threads = len(server.chat_requests())
        processes = run_night(tmp_path / "dask", task_runner="dask", dask_address=local.scheduler_address)
        paid_by_processes = len(server.chat_requests()) - paid_by_threads

    assert processes.equals(threads)
    assert (processes["ranker"] == "llm").all() and processes["user_id"].n_unique() == LLM_SIZES["gen_users"]
    assert paid_by_processes == paid_by_threads
    with connect(Settings(home=tmp_path / "dask", run_date=RUN_DATE)) as con:
        cached, users = con.sql("SELECT (SELECT count(*) FROM llm_cache), (SELECT count(*) FROM llm_users)").fetchall()[0]
        calls = con.sql("SELECT count(*) FILTER (WHERE outcome = 'ok'), count(DISTINCT user_id) FROM llm_calls").fetchall()[0]
    assert cached == users == LLM_SIZES["gen_users"], "the flow stored every worker's answers and accounting"
    assert calls == (LLM_SIZES["gen_users"], LLM_SIZES["gen_users"])


def test_a_killed_worker_process_loses_no_batch(tmp_path, llm_endpoint, cluster):
    local, client = cluster
    killed: list[int] = []

    def kill_a_busy_worker(server: OpenAICompatibleServer) -> None:
        """Once the rank stage is under way, SIGKILL a worker process in the middle of a rank batch."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if len(server.chat_requests()) >= 15:
                running = client.run(lambda dask_worker: (os.getpid(), dask_worker.state.executing_count))
                busy = [pid for pid, executing in running.values() if executing]
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
            time.sleep(0.05)

    with OpenAICompatibleServer(default_brain=slow(0.2, then=correct())) as server:
        llm_endpoint(server)
        killer = threading.Thread(target=kill_a_busy_worker, args=(server,), daemon=True)
        killer.start()
        published = run_night(tmp_path, task_runner="dask", dask_address=local.scheduler_address)
        killer.join(timeout=5)
        requests = server.ranking_requests()

    assert killed, "a worker process was killed while it ranked"
    assert len(requests) > LLM_SIZES["gen_users"], "answers of the killed batch were lost with its process and asked again"
    assert published["user_id"].n_unique() == LLM_SIZES["gen_users"]
    assert published.group_by("user_id").len()["len"].to_list() == [10] * LLM_SIZES["gen_users"]
    assert (published["ranker"] == "llm").all(), "the killed worker's batch was ranked again, by the LLM"
