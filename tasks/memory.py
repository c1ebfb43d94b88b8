"""Peak resident memory of this process, per stage of a run (Linux /proc; elsewhere unknown)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pyarrow

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
RESET_PEAK = "5"  # proc(5): writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS


def release_freed() -> None:
    """Give memory freed by the last stage back to the system: glibc's heap (malloc_trim, where the C library
    has it) and Arrow's pool keep freed memory for reuse, and the next stage's peak would count it."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)
    pyarrow.default_memory_pool().release_unused()


def reset_peak() -> bool:
    """Start a new peak at the current resident set; False where the kernel does not allow it."""
    try:
        CLEAR_REFS.write_text(RESET_PEAK)
    except OSError:
        return False
    return True


def peak_mib() -> float | None:
    """This process's peak resident set (VmHWM) in MiB since it started or since the last reset_peak; None off Linux."""
    try:
        status = STATUS.read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), None)
