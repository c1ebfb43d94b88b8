"""Peak memory per stage: the kernel's high-water mark, reset between stages."""

from __future__ import annotations

import numpy as np

from tasks import memory


def test_peak_follows_a_stage_allocation_and_resets_after_it():
    assert memory.reset_peak(), "this Linux lets a process reset its own peak"
    before = memory.peak_mib()
    block = np.ones(256 * 2**20 // 8)  # 256 MiB, touched
    during = memory.peak_mib()
    del block
    memory.reset_peak()
    after = memory.peak_mib()
    assert during - before >= 250
    assert after < during - 200, "a new stage does not inherit the previous stage's peak"


def resident_mib() -> float:
    status = memory.STATUS.read_text()
    return next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:"))


def test_memory_freed_by_a_stage_goes_back_to_the_system_before_the_next_stage():
    started = resident_mib()
    blocks = [np.ones(1000) for _ in range(100_000)]  # ~800 MiB in small heap chunks, which free() may keep
    kept = np.ones(1000)  # allocated after them: usually at the heap's top, so free() cannot shrink the heap
    del blocks
    memory.release_freed()
    assert resident_mib() - started < 200, "the freed 800 MiB went back to the system"
    assert kept.sum() == 1000
