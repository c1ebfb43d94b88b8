"""Prefect's local (ephemeral) API server dies with the process that started it, even by kill -9.

Prefect starts that server as a child process and stops it from an exit handler, which a kill -9
(or an OOM kill) never runs: the ~240 MiB server would live on. `start_local_prefect` starts it
up front and hands its pid to a small watcher process (`python -m flows.lifeline PARENT CHILD`)
that stops it once the parent is gone.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from typing import Any

POLL_SECONDS = 0.5
GRACE_SECONDS = 5.0
_started: list[Any] = []  # the server start_local_prefect started


def start_local_prefect() -> None:
    """In local mode (no PREFECT_API_URL): start Prefect's ephemeral server now and tie its life to ours."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return
    server = SubprocessASGIServer()  # the instance Prefect's clients use later in this process
    server.start()
    atexit.unregister(server.stop)  # stop_local_prefect runs after the exit handlers that still log to it
    _started.append(server)
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
