"""A stop asked for by a signal (SIGTERM/SIGINT): every paid or long step checks it, so a run stops
spending within seconds. Work already stored (ranked batches, cached LLM answers) is kept for the
next run of the night to resume from."""

from __future__ import annotations

import threading

from tasks.errors import RecsError

_requested = threading.Event()
_reason: list[str] = []


class Stopped(RecsError):
    """The run was asked to stop; what was finished is stored and the next run resumes from it."""


def request(reason: str) -> None:
    """Ask every worker thread of this process to stop (called from a signal handler)."""
    if not _requested.is_set():
        _reason.append(reason)
    _requested.set()


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise Stopped if a stop was asked for."""
    if _requested.is_set():
        raise Stopped(f"stopped by {_reason[0] if _reason else 'request'}; finished work is kept, rerun the night to resume")


def sleep(seconds: float) -> None:
    """Sleep up to `seconds`, waking at once (with Stopped) when a stop is asked for."""
    if _requested.wait(max(0.0, seconds)):
        check()


def reset() -> None:
    """Forget a stop (a new run in the same process, e.g. tests)."""
    _reason.clear()
    _requested.clear()
