"""Bounded fan-out: work submitted as its inputs are made, at most a few unfinished at a time."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

R = TypeVar("R", covariant=True)
T = TypeVar("T")


class Pending(Protocol[R]):
    """A submitted piece of work: a concurrent.futures Future or a Prefect future."""

    def result(self) -> R: ...


def bounded(submit: Callable[[T], Pending[R]], items: Iterable[T], limit: int) -> list[R]:
    """Every item's result, in item order; each item is submitted as it is taken, and the next is taken only
    when fewer than `limit` are unfinished (an item, e.g. a batch's matrices or a check's chunk, exists only
    from then on: at most `limit` of them are held at once)."""
    results: list[R] = []
    unfinished: deque[Pending[R]] = deque()
    for item in items:
        unfinished.append(submit(item))
        if len(unfinished) >= limit:
            results.append(unfinished.popleft().result())
    return results + [pending.result() for pending in unfinished]
