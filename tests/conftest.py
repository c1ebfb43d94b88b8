"""Shared fixtures: a temporary Prefect home, small generated data, MovieLens when present."""

from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path

_PREFECT_HOME = tempfile.mkdtemp(prefix="recs-prefect-")
os.environ.update(
    PREFECT_HOME=_PREFECT_HOME,
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
    DO_NOT_TRACK="1",
    OPENBLAS_NUM_THREADS="1",
    GX_ANALYTICS_ENABLED="false",
)
for _name in [name for name in os.environ if name.startswith(("RECS_", "OPENAI_")) or name == "PREFECT_API_URL"]:
    del os.environ[_name]

import pytest  # noqa: E402

from tasks.db import connect  # noqa: E402
from tasks.settings import Settings  # noqa: E402

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
RUN_DATE = date(2026, 11, 23)
SMALL = {"gen_users": 150, "gen_items": 300, "gen_ratings": 9_000}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a small generated dataset under a fresh home."""
    return Settings(home=tmp_path / "home", run_date=RUN_DATE, **SMALL)


@pytest.fixture
def con(settings: Settings):
    with connect(settings.db_path) as connection:
        yield connection


@pytest.fixture
def ml100k() -> Path:
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100k not found at {ML100K} (it may not be redistributed, so it is not in the repo)")
    return ML100K


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect API for every flow-running test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
