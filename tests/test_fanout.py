"""Bounded fan-out (tasks/fanout.py): the candidates stage's tasks and the checks' chunks go through it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks import fanout


def test_results_come_in_item_order_and_at_most_limit_items_exist_unfinished():
    """Eight threads could run every item at once; with a limit of 3, no item is taken while 3 are unfinished."""
    lock, unfinished, most = threading.Lock(), [0], [0]

    def square(n: int) -> int:
        time.sleep(0.002 * (n % 4))  # finishing out of order
        with lock:
            unfinished[0] -= 1
        return n * n

    def items():
        for n in range(40):
            with lock:
                unfinished[0] += 1
                most[0] = max(most[0], unfinished[0])
            yield n

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = fanout.bounded(lambda n: pool.submit(square, n), items(), 3)

    assert results == [n * n for n in range(40)]
    assert most[0] == 3


def test_a_failing_item_raises_its_error():
    def fail_on_five(n: int) -> int:
        if n == 5:
            raise ValueError("item 5")
        return n

    with ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(ValueError, match="item 5"):
        fanout.bounded(lambda n: pool.submit(fail_on_five, n), iter(range(10)), 2)
