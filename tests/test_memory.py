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
