"""The data home: one run at a time, and a state that is checked before any work starts."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import duckdb
from prefect import task

from tasks import db
from tasks.errors import RecsError
from tasks.settings import Settings

LOCK_FILE = ".recs.lock"


class HomeBusy(RecsError):
    """Another run holds the home."""


class HomeUnusable(RecsError):
    """The home cannot be written, or its database fails its own checks."""


def holder(settings: Settings) -> str:
    """Who holds the lock, as written into the lock file for the next run to read."""
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"the run for {settings.run_date} (pid {os.getpid()} on {socket.gethostname()}, started {started})"


def open_lock_file(settings: Settings) -> int:
    """Create the home if needed and open its lock file for writing; HomeUnusable says why it cannot be."""
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        return os.open(settings.home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise HomeUnusable(f"home {settings.home} cannot be written: {error.strerror}") from None


@contextmanager
def exclusive(settings: Settings) -> Iterator[None]:
    """Hold the home's run lock for the whole run; HomeBusy names the run that holds it."""
    fd = open_lock_file(settings)
    with os.fdopen(fd, "r+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HomeBusy(
                f"home {settings.home} is in use by {lock.read().strip() or 'another run'}; wait for it or use another --home"
            ) from None
        lock.truncate(0)
        lock.write(holder(settings) + "\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)


def check_state(settings: Settings) -> str:
    """Open the home's database and read every table once, so a damaged file stops the run before any work."""
    try:
        with db.connect(settings) as con:
            tables = [name for (name,) in db.run(con, "home/tables")]
            for table in tables:
                db.run(con, "home/read_table", {"table": table})
    except duckdb.Error as error:
        first_line = str(error).strip().splitlines()[0]
        raise HomeUnusable(
            f"database {settings.db_path} is damaged ({first_line}); restore it from a backup or start a new --home"
        ) from None
    return f"{len(tables)} tables readable"


@task(name="check-home")
def check_home(settings: Settings) -> str:
    """Prefect task: the home's database reads back whole before the night touches it."""
    return check_state(settings)
