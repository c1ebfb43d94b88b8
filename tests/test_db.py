"""The run's DuckDB connections: memory limit and spill directory, on a real file."""

from __future__ import annotations

import threading

from tasks import db
from tasks.settings import Settings


def test_a_connection_opened_after_a_spill_keeps_the_spill_directory(tmp_path):
    settings = Settings(home=tmp_path / "home", duckdb_memory_limit="64MB")
    with db.connect(settings) as first:
        first.execute("CREATE TEMP TABLE big AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(2000000)")
        first.execute("SELECT s, count(*) FROM big GROUP BY s ORDER BY s LIMIT 1").fetchall()  # spills
        assert any(settings.duckdb_spill_dir.iterdir()), "the aggregate spilled to the run's directory"

        with db.connect(settings) as second:  # the next stage, or a rank task's thread, while the first is open
            limit, spill = second.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()

    assert spill == str(settings.duckdb_spill_dir) and limit.startswith("6")


def test_threads_opening_and_closing_one_file_never_collide(tmp_path):
    """DuckDB 2.0 fails a connect racing another thread's close of the same file (parallel rank tasks hit it; without
    the lock this loop fails a few hundred of its 4,000 connects): db.opened takes them one at a time."""
    path = tmp_path / "recs.duckdb"
    errors: list[BaseException] = []

    def open_and_close(times: int) -> None:
        for _ in range(times):
            try:
                with db.opened(path) as con:
                    con.execute("SELECT 1").fetchall()
            except Exception as error:  # noqa: BLE001 (collected: the assertion names them)
                errors.append(error)

    threads = [threading.Thread(target=open_and_close, args=(500,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
