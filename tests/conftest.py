"""Shared fixtures: a temporary Prefect home, small generated data, MovieLens when present."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from isolated_env import isolate_environment

isolate_environment("recs-prefect-")
os.environ["RECS_LLM_GATE"] = "off"  # LLM tests keep their behaviour and cost; tests/test_gate.py turns the gate on

import pytest  # noqa: E402

from tasks.db import connect  # noqa: E402
from tasks.settings import Settings  # noqa: E402

# MovieLens 100k is never in this repository (its licence forbids redistribution): ML100K_DIR points at
# a copy, else the shared one beside the checkout.
ML100K = Path(os.environ.get("ML100K_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k")
RUN_DATE = date(2026, 11, 23)
SMALL = {"gen_users": 150, "gen_items": 300, "gen_ratings": 9_000}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a small generated dataset under a fresh home."""
    return Settings(home=tmp_path / "home", run_date=RUN_DATE, **SMALL)


@pytest.fixture
def con(settings: Settings):
    with connect(settings) as connection:
        yield connection


@pytest.fixture
def ml100k() -> Path:
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100k not found at {ML100K} (not redistributable, so not in the repo; set ML100K_DIR to a copy)")
    return ML100K


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect API for every flow-running test of the session (gone with the session, even a killed one)."""
    from flows.lifeline import temporary_prefect

    with temporary_prefect():
        yield
