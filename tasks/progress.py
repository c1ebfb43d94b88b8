"""Progress of the ranking stage, across every rank batch of the process (they run in parallel
threads): a line every `progress_seconds` in the run log (users done/total, LLM calls, cache hits,
fallbacks, rate, ETA), a rich bar on stderr when it is a terminal, and one warning when the LLM
circuit opened, saying how many users it hit.

Rankers report through `current()`, which is None outside a tracked stage (reports are dropped).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Progress:
    """Counters of one ranking stage, safe to update from many threads."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self.calls = self.cache_hits = 0
        self.fell_back: dict[int, bool] = {}  # user id -> ranked by a fallback (a retried batch's users count once)
        self.circuit_users = 0
        self.circuit_cause: str | None = None
        self._lock = threading.Lock()
        self._advance: Callable[[], None] | None = None  # the terminal bar, when there is one

    @property
    def users(self) -> int:
        return len(self.fell_back)

    @property
    def fallbacks(self) -> int:
        return sum(self.fell_back.values())

    def user_done(self, user_id: int, calls: int, cache_hits: int, fallback: bool, circuit_cause: str | None = None) -> None:
        """One user ranked (by the LLM or a fallback); `circuit_cause` when an open circuit made it fall back."""
        with self._lock:
            new = user_id not in self.fell_back
            self.fell_back[user_id] = fallback
            self.calls += calls
            self.cache_hits += cache_hits
            if circuit_cause is not None:
                self.circuit_users += 1
                self.circuit_cause = self.circuit_cause or circuit_cause
        if new and self._advance is not None:
            self._advance()

    def circuit_opened(self, cause: str) -> None:
        """The circuit opened and the run fails (llm_on_outage=fail): say so once at the end."""
        with self._lock:
            self.circuit_cause = self.circuit_cause or cause

    def line(self) -> str:
        """'rank: 120/1000 users (12 %), 130 LLM calls, 20 cache hits, 3 fallbacks, 2.10 users/s, ETA 7m 00s'."""
        with self._lock:
            users, calls, hits, fallbacks = self.users, self.calls, self.cache_hits, self.fallbacks
        elapsed = max(1e-9, time.monotonic() - self.started)
        rate = users / elapsed
        eta = _duration((self.total - users) / rate) if rate > 0 else "unknown"
        share = 100 * users // self.total if self.total else 100
        return (f"rank: {users}/{self.total} users ({share} %), {calls} LLM calls, {hits} cache hits, "
                f"{fallbacks} fallbacks, {rate:.2f} users/s, ETA {eta}")

    def circuit_warning(self, failed: bool) -> str | None:
        """The one line about an open circuit, or None when it never opened for a user."""
        with self._lock:
            if self.circuit_cause is None:
                return None
            if failed:
                return f"{self.circuit_cause}: the run fails (RECS_LLM_ON_OUTAGE=fail), {self.total - self.users} users not ranked"
            return f"{self.circuit_cause}: {self.circuit_users} users ranked by ALS instead (ranker=als_fallback)"


_current: list[Progress] = []
_current_lock = threading.Lock()


def current() -> Progress | None:
    """The tracker of the ranking stage running in this process, if any."""
    with _current_lock:
        return _current[-1] if _current else None


@contextmanager
def tracking(total: int, every: float, logger: logging.Logger | logging.LoggerAdapter) -> Iterator[Progress]:
    """Track a ranking stage: a line every `every` seconds and a final one (plus the circuit
    warning), and a rich bar on stderr when it is a terminal."""
    progress = Progress(total)
    finished = threading.Event()

    def report() -> None:
        while not finished.wait(every):
            logger.info(progress.line())

    ticker = threading.Thread(target=report, name="rank-progress", daemon=True)
    with _current_lock:
        _current.append(progress)
    ticker.start()
    failed = True
    try:
        with _bar(progress):
            yield progress
        failed = False
    finally:
        finished.set()
        ticker.join()
        with _current_lock:
            _current.remove(progress)
        logger.info(progress.line())
        warning = progress.circuit_warning(failed)
        if warning:
            logger.warning(warning)


@contextmanager
def _bar(progress: Progress) -> Iterator[None]:
    """A rich progress bar on stderr while it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

    with Bar(TextColumn("rank"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
             console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("rank", total=progress.total)
        progress._advance = lambda: bar.advance(task)
        try:
            yield
        finally:
            progress._advance = None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"
