"""`recs run` as a child process, and processes seen from /proc: what a test asks of the processes a run
left or started."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from conftest import RUN_DATE


def recs_run(home: Path, *args: str, sizes: Mapping[str, int], stdout: int | IO = subprocess.PIPE,
             **env: str) -> subprocess.Popen:
    """`recs run` of RUN_DATE in `home` as a child process in local mode (its own Prefect server) on the generated
    dataset of `sizes`, with the RECS_* variables `env`; its output (text) on `stdout`, stderr included."""
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    environment.update({f"RECS_{k.upper()}": str(v) for k, v in sizes.items()}, **env)
    command = [sys.executable, "-m", "flows.cli", "run", "--home", str(home), "--run-date", RUN_DATE.isoformat(), *args]
    return subprocess.Popen(command, env=environment, stdout=stdout, stderr=subprocess.STDOUT, text=True)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (read from /proc)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo += children - found
            found |= children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    return {p for p in pids if alive(p)}


def command_line(pid: int) -> str:
    """The process's command line ('' once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
