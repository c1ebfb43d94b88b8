"""Input can't hurt, night after night (issue 12 §2, §3, §6): real `flows.nightly` runs on a real home."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from conftest import RUN_DATE, SMALL
from flows.nightly import nightly
from flows.parameters import RunParameters
from tasks.generate import write_dataset
from tasks.publish import PARTITION_FILE, partition_dir

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]
FUTURE, EARLY = 4_102_444_800, 788_832_000  # 2100-01-01 and 1994-12-31, in seconds


def generated(directory: Path, seed: int) -> tuple[pl.DataFrame, Path]:
    """A small generated dataset's interactions and the path of its catalogue CSV."""
    interactions, catalog = write_dataset(directory, n_users=SMALL["gen_users"], n_items=SMALL["gen_items"],
                                          n_ratings=SMALL["gen_ratings"], seed=seed)  # fmt: skip
    return pl.read_csv(interactions), catalog


def query(home: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(home / "recs.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def published(home: Path, run_date) -> Path:
    return partition_dir(home / "recommendations", run_date) / PARTITION_FILE


def test_millisecond_file_then_a_bad_file_then_its_correction_every_good_night_publishes(tmp_path):
    ratings, catalog = generated(tmp_path / "source", seed=3)
    feed, home = tmp_path / "feed", tmp_path / "home"
    feed.mkdir()
    first, rest = ratings.head(8_000), ratings.tail(1_000)
    odd = pl.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "rating": [4, 4], "timestamp": [FUTURE, EARLY]})
    pl.concat([first, odd]).with_columns(pl.col("timestamp") * 1000).write_csv(feed / "day1.csv")
    nights = [RUN_DATE - timedelta(days=2), RUN_DATE - timedelta(days=1), RUN_DATE]

    def night(run_date, day: str):
        return nightly(RunParameters(home=home, data=feed / day, catalog=catalog, run_date=run_date), return_state=True)

    one = night(nights[0], "day1.csv")
    assert one.is_completed(), one.message
    report = one.result()["ingested"]
    assert (report.rows_loaded, report.rows_converted, report.rows_quarantined) == (8_000, 8_000, 2)
    assert query(home, "SELECT max(ts)::VARCHAR < '2026', min(ts)::VARCHAR > '1995' FROM interactions") == [(True, True)]
    reasons = [reason.split(" is ")[1][:9] for (reason,) in query(home, "SELECT reason FROM quarantine ORDER BY row_number")]
    assert reasons == ["in the fu", "before th"]

    rest.with_columns(pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("yesterday")).otherwise(pl.col("timestamp").cast(str))
                      .alias("timestamp")).write_csv(feed / "day2.csv")  # fmt: skip
    two = night(nights[1], "day2.csv")
    assert two.is_failed() and "ingest failed: " in two.message and "nothing of it was loaded" in two.message
    assert "\n" not in two.message and "Traceback" not in two.message
    assert query(home, "SELECT count(*) FROM interactions") == [(8_000,)]
    assert not published(home, nights[1]).exists()

    rest.write_csv(feed / "day2.csv")  # the corrected file, at the same path
    three = night(nights[2], "day2.csv")
    assert three.is_completed(), three.message
    assert query(home, "SELECT count(*) FROM interactions") == [(9_000,)]
    assert published(home, nights[2]).exists()


def test_a_home_built_from_the_built_in_data_refuses_another_source_until_replaced(tmp_path, monkeypatch):
    for name, value in SMALL.items():
        monkeypatch.setenv(f"RECS_{name.upper()}", str(value))
    home, other = tmp_path / "home", tmp_path / "other"
    ratings, catalog = generated(other, seed=11)
    ratings.write_csv(other / "ratings.csv")
    earlier = RUN_DATE - timedelta(days=1)
    assert nightly(RunParameters(home=home, run_date=earlier), return_state=True).is_completed()
    before = published(home, earlier).read_bytes()
    params = RunParameters(home=home, data=other / "ratings.csv", catalog=catalog, run_date=RUN_DATE)

    refused = nightly(params, return_state=True)

    assert refused.is_failed() and "\n" not in refused.message
    assert (
        f"home {home} was built from the built-in dataset generated-150x300x9000-seed7, not {other}: use another --home,"
        " or --replace-source" in refused.message
    )
    assert not published(home, RUN_DATE).exists()

    monkeypatch.setenv("RECS_REPLACE_SOURCE", "true")
    replaced = nightly(params, return_state=True)

    assert replaced.is_completed(), replaced.message
    assert published(home, earlier).read_bytes() == before, "published partitions are never touched"
    assert query(home, "SELECT count(*), count(DISTINCT l.source) FROM interactions JOIN interaction_loads AS l USING (loaded_at)") == [
        (SMALL["gen_ratings"], 1)]
    assert query(home, "SELECT kind, location FROM home_source") == [("files", str(other))]
