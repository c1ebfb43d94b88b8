"""A stop asked for by a signal (SIGTERM/SIGINT): every paid or long step checks it, so a run stops
spending within seconds. Work already stored (ranked batches, cached LLM answers) is kept for the
next run of the night to resume from."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

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


def reason() -> str | None:
    """What asked for the stop (e.g. 'SIGTERM'), if anything did."""
    return _reason[0] if _reason else None


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


@contextmanager
def on_signals() -> Iterator[None]:
    """While inside: SIGTERM and SIGINT first ask every thread to stop, then do what they did before
    (Prefect's handler marks the run crashed; SIGINT raises KeyboardInterrupt). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}

    def handler(number: int, frame: FrameType | None) -> None:
        request(signal.Signals(number).name)
        before = previous[number]
        if callable(before):
            before(number, frame)
        elif before == signal.SIG_DFL:
            raise Stopped(f"stopped by {signal.Signals(number).name}")

    for number in previous:
        signal.signal(number, handler)
    try:
        yield
    finally:
        for number, before in previous.items():
            if signal.getsignal(number) is handler:
                signal.signal(number, before)
