"""The rank fan-out on Dask worker processes (issue 14 §3): rank tasks open no database, the flow
process stores every batch, so a 2-process cluster publishes what threads publish, and a killed
worker process's batch is run again elsewhere."""

from __future__ import annotations

import os
import signal
import threading
import time

import duckdb
import polars as pl
import pytest
from distributed import Client, LocalCluster

from conftest import RUN_DATE, SMALL
from llm_server import OpenAICompatibleServer, correct, slow
from processes import command_line, descendants, recs_run
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


def test_sigterm_stops_the_llm_requests_of_batches_on_an_existing_cluster_and_keeps_their_answers(tmp_path, cluster):
    """The worker processes of a cluster the run does not own hear no signal of the flow's and outlive it: the flow
    tells them, they stop paying within a second and hand back the answers they received, which the flow stores
    (a rerun finds them in llm_cache: tests/test_stop.py). The run (local mode: its own Prefect server) names
    that server to its tasks: no worker starts a Prefect server of its own."""
    local, client = cluster
    with OpenAICompatibleServer(default_brain=slow(0.5)) as server:
        log = (tmp_path / "run.log").open("w")  # a file, not a pipe: nothing blocks the run while nobody reads
        victim = recs_run(tmp_path, sizes=LLM_SIZES, stdout=log, RECS_TASK_RUNNER="dask",
                          RECS_DASK_ADDRESS=local.scheduler_address, RECS_RANKER="llm", RECS_LLM_BASE_URL=server.base_url,
                          RECS_LLM_API_KEY="sk-test-dask", RECS_LLM_SHARED_LIMIT="local", RECS_LLM_CONCURRENCY="2",
                          RECS_USERS_PER_BATCH="30")  # 2 batches of 7.5 s, one per worker
        deadline = time.monotonic() + 240
        while len([r for r in server.ranking_requests() if r.time < time.monotonic() - 1.5]) < 4:  # answered 1 s ago
            assert time.monotonic() < deadline and victim.poll() is None, "the LLM ranking never got under way"
            time.sleep(0.1)
        servers = [pid for worker in client.run(os.getpid).values() for pid in descendants(worker)
                   if "prefect.server" in command_line(pid)]
        signalled = time.monotonic()
        answered = [r for r in server.ranking_requests() if r.time < signalled - 1.0]  # 0.5 s answers: received by now
        victim.send_signal(signal.SIGTERM)
        victim.wait(timeout=60)
        log.close()
        output = (tmp_path / "run.log").read_text()
        time.sleep(2.0)  # the workers live on: anything still ranking would send more requests now
        late = [r for r in server.chat_requests() if r.time > signalled + 1.0]
        with duckdb.connect(str(tmp_path / "recs.duckdb"), read_only=True) as con:
            cached = con.sql("SELECT count(*) FROM llm_cache").fetchall()[0][0]

        assert servers == [], "a worker process started a Prefect server of its own"
        assert victim.returncode == 128 + signal.SIGTERM, output
        assert late == [], f"{len(late)} LLM requests sent by the workers more than 1 s after SIGTERM"
        assert cached >= len(answered) > 0, "the answers the workers received before the stop are stored"
