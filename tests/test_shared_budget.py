"""One LLM budget shared by several worker processes (issue 14 §4): two real processes send
requests through the real LlmClient against one rate-limit-enforcing server (tests/llm_server.py)
and a real Prefect server."""

from __future__ import annotations

import multiprocessing

import pytest

from llm_server import OpenAICompatibleServer, content
from tasks.llm_client import LlmClient, prefect_api_url
from tasks.settings import Settings

RPM, WINDOW, PER_WORKER = 120, 2.0, 120  # two workers want two windows' budget at once
# The deadline outlasts a lease (60 s) that a lease call failing on the busy test Prefect server (503)
# may have left behind: its slots come back when it expires.
LIMIT_NAME = "test-shared-budget"


def budget_settings(base_url: str, mode: str) -> Settings:
    return Settings(RECS_LLM_BASE_URL=base_url, RECS_LLM_API_KEY="test-key", llm_rpm=RPM, llm_tpm=10**9,
                    llm_rate_window_seconds=WINDOW, llm_concurrency=32, llm_deadline_seconds=180.0,
                    llm_shared_limit=mode, llm_limit_name=LIMIT_NAME,
                    llm_lease_seconds=WINDOW / 60, llm_lease_poll_seconds=WINDOW / 240)


def worker(phases: list[tuple[str, str]], ready, results) -> None:
    """A worker process: for each (server URL, limit mode), wait for the other worker, then send
    PER_WORKER distinct requests through one LlmClient; report (answered, 429s it saw) per phase."""
    from concurrent.futures import ThreadPoolExecutor

    outcomes = []
    for base_url, mode in phases:
        client = LlmClient(budget_settings(base_url, mode), None)
        ready.wait(timeout=120)

        def ask(n: int) -> int:
            answer = client.complete([{"role": "user", "content": f"request {n}"}], {"type": "object"}, 8)
            return sum(attempt.outcome == "rate_limited" for attempt in answer.attempts)

        with ThreadPoolExecutor(32) as pool:
            limited = list(pool.map(ask, range(PER_WORKER)))
        outcomes.append((len(limited), sum(limited)))
        client.close()
    results.put(outcomes)


@pytest.mark.usefixtures("prefect_server")
def test_two_worker_processes_share_one_budget_without_429s(monkeypatch):
    """Without sharing, two processes each keeping to the limit get 429s together; with the leased
    Prefect limit they send more than one window's budget and the provider refuses none."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url())  # what the worker processes talk to
    context = multiprocessing.get_context("spawn")
    with OpenAICompatibleServer(rpm_limit=RPM, window_seconds=WINDOW, default_brain=content("{}")) as alone, \
            OpenAICompatibleServer(rpm_limit=RPM, window_seconds=WINDOW, default_brain=content("{}")) as shared:
        ready, results = context.Barrier(2), context.Queue()
        phases = [(alone.base_url, "local"), (shared.base_url, "lease")]
        workers = [context.Process(target=worker, args=(phases, ready, results)) for _ in range(2)]
        for process in workers:
            process.start()
        outcomes = [results.get(timeout=420) for _ in workers]
        for process in workers:
            process.join(timeout=30)

        assert [phase[0] for outcome in outcomes for phase in outcome] == [PER_WORKER] * 4, "every request answered"
        assert alone.count(status=429) > 0, "each process alone within the limit: together over it"
        assert sum(outcome[0][1] for outcome in outcomes) == alone.count(status=429)
        assert shared.count(status=429) == 0 and sum(outcome[1][1] for outcome in outcomes) == 0
        assert shared.max_requests_in_window(WINDOW) <= RPM
        assert len(shared.accepted_request_times()) == 2 * PER_WORKER > RPM

