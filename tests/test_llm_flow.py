"""`nightly` with the llm ranker, as Prefect runs it: the preflight fails fast before any work,
progress of all rank batches reaches the run's logs, an LLM outage under llm_on_outage=fail fails
the run in one line without Prefect retrying the batches."""

from __future__ import annotations

import socket
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler

from conftest import RUN_DATE
from flows.nightly import nightly_for
from flows.parameters import RunParameters
from llm_server import OpenAICompatibleServer, correct, server_error, slow
from tasks import stop
from tasks.llm_client import reset_shared_state

pytestmark = pytest.mark.usefixtures("prefect_server")
KEY = "sk-test-SECRET-flow-8d2e"


@pytest.fixture(autouse=True)
def llm_env(monkeypatch):
    reset_shared_state()
    stop.reset()
    values = {"OPENAI_API_KEY": KEY, "RECS_GEN_USERS": 60, "RECS_GEN_ITEMS": 150, "RECS_GEN_RATINGS": 3000,
              "RECS_USERS_PER_BATCH": 20, "RECS_LLM_SHARED_LIMIT": "local", "RECS_LLM_RPM": 100_000,
              "RECS_LLM_BACKOFF_SECONDS": 0.01, "RECS_LLM_DEADLINE_SECONDS": 5}
    for name, value in values.items():
        monkeypatch.setenv(name, str(value))
    yield monkeypatch
    reset_shared_state()


def run(home, **params):
    """The flow run's outcome (a summary or the exception), its id and how long it took."""
    settings_params = RunParameters(home=home, run_date=RUN_DATE, ranker="llm", **params)
    started = time.monotonic()
    state = nightly_for(settings_params.settings())(settings_params, return_state=True)
    elapsed = time.monotonic() - started
    return state.result(raise_on_failure=False), state.state_details.flow_run_id, elapsed


def logs(flow_run_id) -> list[tuple[int, str]]:
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        records = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [(r.level, r.message) for r in sorted(records, key=lambda r: r.timestamp)]


def test_an_unreachable_endpoint_fails_the_run_in_seconds_before_any_work(tmp_path, llm_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    llm_env.setenv("OPENAI_BASE_URL", url)
    outcome, _, elapsed = run(tmp_path)
    assert str(outcome) == f"llm preflight failed: LLM endpoint {url} unreachable: Connection refused"
    assert elapsed < 10, f"{elapsed:.1f} s"
    assert not (tmp_path / "recs.duckdb").exists(), "nothing was ingested"


def test_progress_of_every_batch_reaches_the_run_logs(tmp_path, llm_env):
    llm_env.setenv("RECS_PROGRESS_SECONDS", "0.3")
    with OpenAICompatibleServer(default_brain=slow(0.1)) as server:
        llm_env.setenv("OPENAI_BASE_URL", server.base_url)
        outcome, flow_run_id, _ = run(tmp_path, llm_concurrency=3)
        calls = server.count()
    assert outcome["users"] == 60, outcome
    lines = [message for _, message in logs(flow_run_id) if message.startswith("rank: ") and " users (" in message]
    assert len(lines) >= 3, lines
    assert lines[-1].startswith(f"rank: 60/60 users (100 %), {calls - 1} LLM calls, 0 cache hits, 0 fallbacks, ")
    assert any(0 < int(line.split()[1].split("/")[0]) < 60 for line in lines), "lines while ranking, not only at the end"


def test_an_outage_under_on_outage_fail_fails_the_run_in_one_line_without_retrying_batches(tmp_path, llm_env):
    llm_env.setenv("RECS_LLM_ON_OUTAGE", "fail")
    llm_env.setenv("RECS_LLM_BREAKER_FAILURES", "2")
    with OpenAICompatibleServer(default_brain=server_error(503)) as server:
        server.script(correct())  # the preflight passes; then the endpoint dies
        llm_env.setenv("OPENAI_BASE_URL", server.base_url)
        outcome, flow_run_id, _ = run(tmp_path, llm_concurrency=2)
        calls = server.count()
    message = str(outcome)
    assert message.startswith("rank failed: llm circuit open: 2 consecutive failures, last: HTTP 503 (RECS_LLM_ON_OUTAGE=fail")
    assert "\n" not in message and calls <= 1 + 3
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    batches = [t for t in task_runs if t.name.startswith("rank-batch")]
    assert batches and all(t.run_count == 1 for t in batches), "an expected failure is not retried"
    warnings = [m for level, m in logs(flow_run_id) if level == 30]
    assert len(warnings) == 1 and "the run fails (RECS_LLM_ON_OUTAGE=fail), " in warnings[0], warnings
