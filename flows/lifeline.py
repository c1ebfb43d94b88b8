"""Prefect's local API servers die with the process that started them, even by kill -9.

Prefect starts its ephemeral server (and the test harness its temporary one) as a child process
and stops it from an exit handler, which a kill -9, an OOM kill or a plain SIGTERM never runs: the
~240 MiB server would live on. `start_local_prefect` and `temporary_prefect` hand the server's pid
to a small watcher process (`python -m flows.lifeline PARENT CHILD`) that stops it once the parent
is gone.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

POLL_SECONDS = 0.5
GRACE_SECONDS = 5.0
_started: list[Any] = []  # the server start_local_prefect started


def start_local_prefect() -> str | None:
    """In local mode (no PREFECT_API_URL): start Prefect's ephemeral server now and tie its life to ours; its API URL."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return None
    server = SubprocessASGIServer()  # the instance Prefect's clients use later in this process
    server.start()
    atexit.unregister(server.stop)  # stop_local_prefect runs after the exit handlers that still log to it
    _started.append(server)
    tie_to_this_process(server)
    return server.api_url


@contextmanager
def named_to_workers(api_url: str | None) -> Iterator[None]:
    """While inside: `api_url` (the local server) is the configured Prefect API. Prefect sends its settings with
    every task to a Dask worker process; without a URL there, each worker starts an ephemeral server of its
    own (one per worker, its task runs out of the run's sight, orphaned when a worker is killed)."""
    if api_url is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


@contextmanager
def temporary_prefect(startup_timeout: int = 180) -> Iterator[None]:
    """Prefect's test harness (a temporary API server and database, for tests and benchmarks) whose server
    dies with this process: the harness itself stops it only when its block exits normally."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=startup_timeout):
        tie_to_this_process(SubprocessASGIServer())  # the harness registers its server as the default instance
        yield


def tie_to_this_process(server: Any) -> None:
    """Start a watcher that stops `server`'s process (a started SubprocessASGIServer) once this process is gone."""
    if server.server_process is not None:
        subprocess.Popen(
            [sys.executable, "-m", "flows.lifeline", str(os.getpid()), str(server.server_process.pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


def stop_local_prefect() -> None:
    """At the end of the process that called start_local_prefect: run the exit handlers first (they
    still send logs and events to the server), then stop the server. A no-op in any other process."""
    if _started:
        atexit._run_exitfuncs()
    while _started:
        _started.pop().stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(parent: int, child: int) -> None:
    """Wait while both live; when the parent is gone first, stop the child (SIGTERM, then SIGKILL)."""
    while os.getppid() == parent and alive(child):
        time.sleep(POLL_SECONDS)
    if not alive(child):
        return
    os.kill(child, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(child):
        os.kill(child, signal.SIGKILL)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: outlive the parent
    watch(int(sys.argv[1]), int(sys.argv[2]))
