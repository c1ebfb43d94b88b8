"""Ingest: every supported format, idempotent reloads, quarantine with reasons."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tasks.db import connect
from tasks.ingest import InputError, Limits, detect_source, ingest_source, resolve_source
from tasks.settings import Settings

TOLERANT = Limits.of(Settings(max_quarantined_share=1.0))  # files that are mostly bad rows, on purpose


def table_count(con, table: str) -> int:
    return con.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_movielens_100k_directory_loads_every_rating_and_title(con, ml100k):
    report = ingest_source(con, detect_source(ml100k))

    assert table_count(con, "interactions") == 100_000
    assert table_count(con, "catalog") == 1_682
    assert report.rows_quarantined == 0
    users, items = con.sql("SELECT count(DISTINCT user_id), count(DISTINCT item_id) FROM interactions").fetchall()[0]
    assert (users, items) == (943, 1_682)
    titles = con.sql("SELECT title FROM catalog").pl()["title"]
    assert not titles.str.contains("\ufffd").any(), "latin-1 titles must decode without replacement characters"
    assert titles.str.contains("[^\\x00-\\x7f]").any(), "accented latin-1 titles survive"
    assert con.sql("SELECT count(*) FROM catalog WHERE len(genres) > 0 AND year IS NOT NULL").fetchall()[0][0] > 1_600


def test_same_file_twice_adds_nothing_and_a_new_file_appends(con, tmp_path):
    first = write(tmp_path / "a.csv", "user_id,item_id,rating,timestamp\n1,10,5,978300000\n2,10,3,978300001\n")
    ingest_source(con, detect_source(first))
    again = ingest_source(con, detect_source(first))
    assert (again.files_skipped, table_count(con, "interactions")) == (1, 2)

    overlapping = write(tmp_path / "b.csv", "user_id,item_id,rating,timestamp\n1,10,5,978300000\n3,11,4,978300002\n")
    report = ingest_source(con, detect_source(overlapping))
    assert table_count(con, "interactions") == 3, "the shared row (same user, item, timestamp) is not duplicated"
    assert (report.rows_read, report.rows_loaded, report.row_by_row) == (2, 1, False)


def test_unusable_rows_are_quarantined_with_line_and_reason(con, tmp_path):
    catalog = write(tmp_path / "catalog.csv", 'item_id,title,genres\n10,"Heat, The (1995)",Action|Crime\n11,Ronin (1998),Action\n')
    data = write(
        tmp_path / "ratings.csv",
        "user_id,item_id,rating,timestamp\n"
        "1,10,5,978300760\n"  # 2: fine
        "1,11\n"  # 3
        ",10,4,978300760\n"  # 4
        "x,10,4,978300760\n"  # 5
        "2,10,9,978300760\n"  # 6
        "2,10,4,yesterday\n"  # 7
        "2,99,4,978300760\n"  # 8
        "1,10,5,978300760\n"  # 9: duplicate of line 2
        "3,11,4,2001-01-01T10:00:00+02:00\n",  # 10: fine, ISO 8601
    )
    report = ingest_source(con, detect_source(data, catalog), TOLERANT)

    reasons = dict(con.sql("SELECT row_number, reason FROM quarantine WHERE source LIKE '%ratings.csv'").fetchall())
    assert reasons == {
        3: "expected 4 fields, found 2",
        4: "missing user_id",
        5: "user_id 'x' is not an integer",
        6: "rating 9.0 out of range [0.5, 5.0]",
        7: "bad timestamp 'yesterday'",
        8: "unknown item 99",
        9: "duplicate of an earlier row (user_id, item_id, timestamp)",
    }
    assert (report.rows_read, report.rows_quarantined, table_count(con, "interactions")) == (9, 7, 2)
    assert (report.catalog_rows_loaded, report.catalog_rows_quarantined) == (2, 0)
    iso = con.sql("SELECT ts::VARCHAR FROM interactions WHERE user_id = 3").fetchall()[0][0]
    assert iso == "2001-01-01 08:00:00", "offsets are normalised to UTC"
    assert con.sql("SELECT title, genres FROM catalog WHERE item_id = 10").fetchall() == [("Heat, The (1995)", ["Action", "Crime"])]


def test_movielens_dat_and_csv_layouts(con, tmp_path):
    dat = tmp_path / "ml-1m"
    dat.mkdir()
    write(dat / "movies.dat", "1::Caf\xe9 Stories (1999)::Drama|Romance\n2::Night Train (2001)::Thriller\n", "latin-1")
    write(dat / "ratings.dat", "7::1::5::978300760\n7::2::2::978300761\n8::2::4::978300762\n")
    write(dat / "users.dat", "7::F::1::10::48067\n8::M::56::16::70072\n")  # ML-1M: latin-1 by its published format
    ingest_source(con, detect_source(dat))
    ten = tmp_path / "ml-10m"  # ML-10M (no users.dat): UTF-8
    ten.mkdir()
    write(ten / "movies.dat", "5::Am\xe9lie (2001)::Comedy\n")
    write(ten / "ratings.dat", "7::5::5::978300763\n")
    ingest_source(con, detect_source(ten))

    csv = tmp_path / "ml-20m"
    csv.mkdir()
    write(csv / "movies.csv", 'movieId,title,genres\n3,"Long Road, The (1980)",Drama\n4,Quiet (1990),(no genres listed)\n')
    write(csv / "ratings.csv", "userId,movieId,rating,timestamp\n9,3,4.5,1100000000\n9,4,0.5,1100000001\n")
    ingest_source(con, detect_source(csv))

    assert table_count(con, "interactions") == 6
    assert con.sql("SELECT title FROM catalog WHERE item_id IN (1, 5) ORDER BY item_id").fetchall() == [
        ("Caf\xe9 Stories (1999)",),
        ("Am\xe9lie (2001)",),
    ]
    assert con.sql("SELECT title, genres FROM catalog WHERE item_id IN (3, 4) ORDER BY item_id").fetchall() == [
        ("Long Road, The (1980)", ["Drama"]),
        ("Quiet (1990)", []),
    ]


def test_parquet_interactions_with_weights_and_placeholder_titles(con, tmp_path):
    path = tmp_path / "events.parquet"
    pl.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 6, 5], "weight": [3.0, -1.0, 12.0], "timestamp": [978300001, 978300002, 978300003]}).write_parquet(path)
    report = ingest_source(con, detect_source(path), TOLERANT)

    assert (report.rows_quarantined, table_count(con, "interactions")) == (1, 2)
    assert con.sql("SELECT reason FROM quarantine").fetchall()[0][0].startswith("rating -1.0 out of range")
    assert con.sql("SELECT title FROM catalog ORDER BY item_id").fetchall() == [("Item 5",)]


@pytest.mark.parametrize(
    ("files", "message"),
    [({}, "does not exist"), ({"x.csv": "a,b\n1,2\n"}, "lacks"), ({"x.txt": "1"}, "unsupported")],
)
def test_unreadable_sources_fail_with_a_clear_error(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path / name, text)
    target = tmp_path / (next(iter(files)) if files else "missing.csv")
    with pytest.raises(InputError, match=message):
        detect_source(target)


def test_default_dataset_is_generated_once_and_ingested(settings, con):
    source = resolve_source(settings)
    first_mtime = source.interactions.path.stat().st_mtime_ns
    ingest_source(con, source)

    assert resolve_source(settings).interactions.path.stat().st_mtime_ns == first_mtime
    assert table_count(con, "interactions") == settings.gen_ratings
    assert table_count(con, "quarantine") == 0


def test_a_home_from_before_issue_14_is_upgraded_keeps_its_primary_key_and_loads_an_overlapping_file(tmp_path):
    """Such a home's `interactions` names its file on every row and has a primary key. Opened, its rows name their
    load instead (the file moves to interaction_loads); the one-pass insert of a row it holds fails on the key, and
    the file is classified row by row instead, its known row skipped."""
    path, old_file = tmp_path / "old.duckdb", str(tmp_path / "old.csv")
    with duckdb.connect(str(path)) as old:
        old.execute("CREATE TABLE interactions (user_id BIGINT NOT NULL, item_id BIGINT NOT NULL, rating DOUBLE NOT NULL,"
                    " ts TIMESTAMP NOT NULL, source VARCHAR NOT NULL, loaded_at TIMESTAMP NOT NULL, PRIMARY KEY (user_id, item_id, ts))")
        old.execute("INSERT INTO interactions VALUES (1, 10, 5, make_timestamp(978300000000000), ?, TIMESTAMP '2026-01-01'),"
                    " (2, 10, 3, make_timestamp(978300001000000), ?, TIMESTAMP '2026-01-01')", [old_file, old_file])

    with connect(path) as con:
        assert [c for (c,) in con.sql("SELECT column_name FROM (DESCRIBE interactions)").fetchall()] == [
            "user_id", "item_id", "rating", "ts", "loaded_at"]
        assert con.sql("SELECT * FROM interaction_loads").fetchall() == [(datetime(2026, 1, 1), old_file)]
        overlapping = write(tmp_path / "b.csv", "user_id,item_id,rating,timestamp\n1,10,5,978300000\n3,11,4,978300002\n")
        report = ingest_source(con, detect_source(overlapping))

        assert (report.rows_read, report.rows_loaded, report.row_by_row) == (2, 1, True)
        assert table_count(con, "interactions") == 3
        assert sorted(s for (s,) in con.sql("SELECT source FROM interaction_loads").fetchall()) == sorted([old_file, str(overlapping)])
