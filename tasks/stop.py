"""A stop asked for by a signal (SIGTERM/SIGINT): every paid or long step checks it, so a run stops
spending within seconds. Work already stored (ranked batches, cached LLM answers) is kept for the
next run of the night to resume from.

A Dask worker process hears no signal of the flow's: the flow announces its stop as a Dask `Event`
(`announce`) and a task on a worker `listening` to it stops as the flow's own threads do, while
other runs' tasks on the same worker go on (the stop is scoped to the task's context)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType

from tasks.errors import RecsError

_requested = threading.Event()
_reason: list[str] = []
_heard: ContextVar[threading.Event | None] = ContextVar("recs_stop_heard", default=None)  # set inside `listening`
POLL_SECONDS = 0.1  # how often a wait looks at a stop request (one heard from the flow cannot be waited on)
LISTEN_SECONDS = 0.5  # how long one wait of a listener lasts before it looks whether its task ended


class Stopped(RecsError):
    """The run was asked to stop; what was finished is stored and the next run resumes from it."""


def request(reason: str) -> None:
    """Ask every worker thread of this process to stop (called from a signal handler)."""
    if not _requested.is_set():
        _reason.append(reason)
    _requested.set()


def requested() -> bool:
    """Whether this process was asked to stop, or (inside `listening`) the flow run of this task."""
    heard = _heard.get()
    return _requested.is_set() or (heard is not None and heard.is_set())


def reason() -> str | None:
    """What asked for the stop (e.g. 'SIGTERM'), if anything did."""
    return _reason[0] if _reason else None


def check() -> None:
    """Raise Stopped if a stop was asked for."""
    if requested():
        cause = _reason[0] if _reason else "its flow run" if _heard.get() is not None else "request"
        raise Stopped(f"stopped by {cause}; finished work is kept, rerun the night to resume")


def sleep(seconds: float) -> None:
    """Sleep up to `seconds`, waking (with Stopped) within POLL_SECONDS when a stop is asked for."""
    deadline = time.monotonic() + max(0.0, seconds)
    while not requested() and (left := deadline - time.monotonic()) > 0:
        _requested.wait(min(left, POLL_SECONDS))
    check()


def announce(name: str, client) -> None:
    """Tell every task `listening` to the Dask event `name` (on any worker of `client`'s cluster) to stop. The
    event stays set in the scheduler, so a task of this run that starts later stops at once."""
    from distributed import Event

    Event(name, client=client).set()


@contextmanager
def listening(name: str | None) -> Iterator[None]:
    """While inside (a task, possibly on a Dask worker): a stop `announce`d as `name` counts as requested in this
    context and in work run with a copy of it (contextvars.copy_context()); heard within about a second."""
    if name is None:
        yield
        return
    from distributed import Event, get_client

    heard, finished = threading.Event(), threading.Event()
    event = Event(name, client=get_client())  # the worker's client, found from the task's thread

    def listen() -> None:
        while not finished.is_set():
            if event.wait(timeout=LISTEN_SECONDS):
                heard.set()
                return

    token = _heard.set(heard)
    listener = threading.Thread(target=listen, name="stop-listener", daemon=True)
    listener.start()
    try:
        yield
    finally:
        finished.set()
        _heard.reset(token)


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
