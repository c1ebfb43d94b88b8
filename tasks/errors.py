"""Failures a user can fix (bad input, failed checks, a full disk): reported in one line, without a traceback."""

from __future__ import annotations

import errno
import os

from pydantic import ValidationError

# OS errors an operator fixes from the message alone (disk full, permissions, read-only mount).
OPERATOR_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})
OPERATOR_MESSAGES = tuple(os.strerror(number) for number in OPERATOR_ERRNOS)  # as DuckDB quotes them


class RecsError(Exception):
    """An expected failure whose message says what is wrong."""


class InputError(RecsError, ValueError):
    """The source cannot be read as any supported format, or holds too little to work with."""


class SettingsError(RecsError, ValueError):
    """A setting (flag, form field or RECS_* variable) has an impossible value."""


class StageFailed(Exception):
    """A stage of the flow failed; the message names the stage and the cause."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage} failed: {describe(cause)}")
        self.stage = stage
        self.expected = is_expected(cause)


def is_expected(error: BaseException | None) -> bool:
    """True for failures the user can fix from the message alone."""
    if isinstance(error, OSError) and error.errno in OPERATOR_ERRNOS:
        return True
    if error is not None and any(message in str(error) for message in OPERATOR_MESSAGES):
        return True  # e.g. DuckDB: 'Could not write file ".../recs.duckdb.wal": No space left on device'
    return isinstance(error, RecsError) or (isinstance(error, StageFailed) and error.expected)


def describe(error: BaseException) -> str:
    """One line for any error: OS errors say which file; expected errors keep every line of their
    message (joined), others their first line."""
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return " ".join(lines) if isinstance(error, RecsError) else lines[0]


def one_line(error: ValidationError) -> str:
    """A pydantic error as one line per problem: `k: Input should be greater than or equal to 1`."""
    parts = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def retry_unless_expected(task: object, task_run: object, state: object) -> bool:
    """Prefect retry condition: retry transient failures, not expected ones (bad data or a stop fail again)."""
    return not is_expected(state.result(raise_on_failure=False))  # type: ignore[attr-defined]
