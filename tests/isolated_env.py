"""One isolated environment for tests and benchmarks: a throwaway Prefect home, no telemetry, one
BLAS thread, and none of the user's RECS_* / OPENAI_* / PREFECT_API_URL settings leaking in."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile


def isolate_environment(prefix: str, **extra: str) -> str:
    """Set the isolated environment (plus `extra` variables); return the new PREFECT_HOME (removed at exit)."""
    home = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ.update(
        PREFECT_HOME=home,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        DO_NOT_TRACK="1",
        OPENBLAS_NUM_THREADS="1",
        GX_ANALYTICS_ENABLED="false",
        **extra,
    )
    for name in [n for n in os.environ if n.startswith(("RECS_", "OPENAI_")) or n == "PREFECT_API_URL"]:
        del os.environ[name]
    return home
