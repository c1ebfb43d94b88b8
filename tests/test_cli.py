"""`recs` as a person meets it when something is wrong: one line naming the cause, before any work starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.home import exclusive
from tasks.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RECS = [sys.executable, "-m", "flows.cli"]


def recs(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*RECS, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300)


def closing_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--k", "0"], {}, "k: Input should be greater than or equal to 1"),
        (["--k", "50"], {}, "k (50) is more than n_candidates (30)"),
        (["--run-date", "2026-02-30"], {}, "'2026-02-30' is not a date (YYYY-MM-DD): day is out of range for month"),
        (["--run-date", "9999-12-31"], {}, "run_date 9999-12-31 is outside"),
        ([], {"RECS_K": "abc"}, "k: Input should be a valid integer"),
        ([], {"RECS_LLM_BLEND_WEIGHT": "2"}, "llm_blend_weight: Input should be less than or equal to 1"),
        (["--data", "no/such/dir"], {}, "data source no/such/dir does not exist"),
    ],
)
def test_impossible_settings_fail_in_one_line_before_prefect_starts(tmp_path, args, env, says):
    done = recs("run", "--home", str(tmp_path / "home"), *args, cwd=tmp_path, env=env)

    assert done.returncode == 2
    assert closing_lines(done) == [f"error: {closing_lines(done)[0].removeprefix('error: ')}"], "exactly one line"
    assert says in done.stderr
    assert "Starting temporary server" not in done.stderr, "nothing started"
    assert not (tmp_path / "home" / "recs.duckdb").exists()


def test_unknown_ranker_is_a_usage_error_and_help_lists_the_choices(tmp_path):
    done = recs("run", "--ranker", "foo", cwd=tmp_path)

    assert done.returncode == 2
    assert closing_lines(done)[-1] == "Error: Invalid value for '--ranker': Value error, 'foo' is not one of 'als', 'llm'."
    assert "pydantic" not in done.stderr and "Traceback" not in done.stderr
    assert "--ranker <als|llm>" in recs("run", "--help", cwd=tmp_path).stdout


def test_a_home_in_use_is_named_with_the_run_that_holds_it(tmp_path):
    settings = Settings(home=tmp_path / "home")
    with exclusive(settings):
        done = recs("run", "--home", str(settings.home), cwd=tmp_path)

    assert done.returncode == 2
    (line,) = closing_lines(done)
    assert line.startswith(f"error: home {settings.home} is in use by the run for {settings.run_date} (pid {os.getpid()} on ")
    assert line.endswith("wait for it or use another --home")


def test_a_home_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    done = recs("run", "--home", str(blocker / "home"), cwd=tmp_path)

    assert done.returncode == 2
    assert closing_lines(done) == [f"error: home {blocker / 'home'} cannot be written: Not a directory"]


def test_serve_without_a_prefect_server_says_what_it_needs(tmp_path):
    done = recs("serve", cwd=tmp_path)

    assert done.returncode == 2
    (line,) = closing_lines(done)
    assert line.startswith("error: recs serve needs a Prefect server") and "PREFECT_API_URL" in line


def test_a_damaged_database_stops_the_run_in_one_line_before_any_work(tmp_path):
    from tasks.db import connect
    from tasks.home import HomeUnusable, check_state

    settings = Settings(home=tmp_path / "home")
    with connect(settings) as con:
        con.execute("INSERT INTO quarantine SELECT 'f.csv', i, 'reason', repeat('x', 200), now() FROM range(50000) t(i)")
    size = settings.db_path.stat().st_size
    with settings.db_path.open("r+b") as damaged:
        damaged.seek(size // 2)
        damaged.write(os.urandom(256 * 1024))

    with pytest.raises(HomeUnusable, match=r"^database .*recs.duckdb is damaged \(.*\); restore it from a backup or start a new --home$"):
        check_state(settings)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MiB tmpfs: a disk that fills up during the run."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root (a full disk is simulated with one)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_fails_the_run_in_one_line_without_a_traceback(tmp_path, tiny_disk):
    small = {"RECS_GEN_USERS": "150", "RECS_GEN_ITEMS": "300", "RECS_GEN_RATINGS": "9000"}
    done = recs("run", "--home", str(tiny_disk / "home"), cwd=tmp_path, env=small)

    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert closing_lines(done)[-1].startswith("run failed: ") and "No space left on device" in closing_lines(done)[-1]


def test_the_state_check_of_a_big_home_reads_every_table_without_fetching_it(tmp_path):
    """A second night on a 20M home fetched every row into Python here (8.7 GiB, 61 s): the check folds each column
    in DuckDB instead."""
    from tasks import memory
    from tasks.db import connect
    from tasks.home import check_state

    settings = Settings(home=tmp_path / "home")
    with connect(settings) as con:
        con.execute("INSERT INTO interactions SELECT i % 5000, i % 977, 4, make_timestamp(i * 1000000), now()::TIMESTAMP"
                    " FROM range(3000000) t(i)")
    memory.release_freed()
    before = memory.peak_mib() if memory.reset_peak() else None
    assert check_state(settings).endswith(" tables readable")
    if before is not None:
        assert memory.peak_mib() - before < 300, "3M rows fetched as Python tuples would take over 1 GiB"
