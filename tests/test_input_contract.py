"""Input can't hurt (issue 12 §1-§4, §6), on a real DuckDB file: ids are never converted, text is
decoded per line, a file is checked before it joins the history, row-level problems are
quarantined, only regular files are read, and a home keeps the one source it was built from."""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from tasks.db import connect
from tasks.ingest import FileRejected, InputError, Limits, claim_home, detect_source, ingest, ingest_source
from tasks.settings import Settings

HEADER = "user_id,item_id,rating,timestamp\n"
TS = 978300760  # 2000-12-31 22:12:40 UTC


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def quarantined(con) -> dict[int, str]:
    return dict(con.sql("SELECT row_number, reason FROM quarantine ORDER BY row_number").fetchall())


def count(con, table: str) -> int:
    return con.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def limits(**overrides) -> Limits:
    return Limits.of(Settings(**overrides))


# --- §1 ids and text --------------------------------------------------------------------------


def test_ids_are_integers_written_as_integers_anything_else_is_quarantined_by_value(con, tmp_path):
    rows = ["1,10,4", "61.5,10,4", "2,10.5,4", "0x10,10,4", "1_000,10,4", "1e2,10,4", "1.0,10,4", "+3, 11 ,4"]
    data = write(tmp_path / "r.csv", HEADER + "".join(f"{row},{TS + i}\n" for i, row in enumerate(rows)))

    report = ingest_source(con, detect_source(data), limits(max_quarantined_share=1.0))

    assert quarantined(con) == {
        3: "user_id '61.5' is not an integer",
        4: "item_id '10.5' is not an integer",
        5: "user_id '0x10' is not an integer",
        6: "user_id '1_000' is not an integer",
        7: "user_id '1e2' is not an integer",
        8: "user_id '1.0' is not an integer",
    }
    assert con.sql("SELECT user_id, item_id FROM interactions ORDER BY user_id").fetchall() == [(1, 10), (3, 11)]
    assert (report.rows_loaded, report.rows_quarantined) == (2, 6)


def test_parquet_float_ids_are_quarantined_not_rounded(con, tmp_path):
    path = tmp_path / "events.parquet"
    frame = {"user_id": [61.5, 7.0, 8.0, 9.0, 10.0], "item_id": [5, 5, 6, 7, 8], "rating": [4.0] * 5, "timestamp": [TS] * 5}
    pl.DataFrame(frame).write_parquet(path)

    ingest_source(con, detect_source(path), limits(max_quarantined_share=1.0))

    assert con.sql("SELECT count(*) FROM interactions WHERE user_id = 62").fetchall() == [(0,)]
    assert quarantined(con)[1] == "user_id '61.5' is not an integer"
    assert quarantined(con)[2] == "user_id '7.0' is not an integer", "a DOUBLE id column is not an integer column"


def test_one_stray_latin1_byte_quarantines_its_line_and_never_re_decodes_good_utf8(con, tmp_path):
    catalog = write(
        tmp_path / "catalog.csv",
        "item_id,title,genres\n".encode() + "10,Amélie (2001),Comedy\n".encode() + b"11,Caf\xe9 (1999),Drama\n"
        + "12,Heat (1995),Action\n13,Ronin (1998),Action\n14,Brazil (1985),Drama\n15,Ran (1985),Drama\n".encode(),
    )  # fmt: skip
    rows = "".join(f"{u},{i},4,{TS}\n" for u, i in [(1, 10), (1, 12), (2, 13), (2, 14), (3, 15), (3, 12)])
    data = write(tmp_path / "ratings.csv", HEADER + rows + "4,11,4,978300760\n")

    ingest_source(con, detect_source(data, catalog))

    assert con.sql("SELECT title FROM catalog WHERE item_id = 10").fetchall() == [("Amélie (2001)",)]
    reasons = dict(con.sql("SELECT row_number, reason FROM quarantine WHERE source LIKE '%catalog.csv'").fetchall())
    assert reasons == {3: "line is not valid utf-8"}
    assert count(con, "catalog") == 5, "every other catalogue line loads"
    assert quarantined(con)[8] == "unknown item 11", "the undecodable item is missing, its rating says so"


def test_bom_header_and_a_10_mb_line_with_exact_line_numbers_around_it(con, tmp_path):
    lines = [f"1,{i},4,{TS + i}" for i in range(10, 16)]
    lines[2] = "x" * (10 << 20)
    lines[4] = "2,99,4,yesterday"
    data = write(tmp_path / "r.csv", "\ufeff" + HEADER + "\n".join(lines) + "\n")

    report = ingest_source(con, detect_source(data), limits(max_quarantined_share=0.5))

    assert quarantined(con) == {4: f"line too long (over {1 << 20} bytes, RECS_MAX_LINE_BYTES)", 6: "bad timestamp 'yesterday'"}
    assert len(con.sql("SELECT raw FROM quarantine WHERE row_number = 4").fetchall()[0][0]) < 100_000
    assert (report.rows_read, report.rows_loaded) == (6, 4)
    assert con.sql("SELECT list(item_id ORDER BY item_id) FROM interactions").fetchall() == [([10, 11, 13, 15],)]


def test_empty_and_rejected_lines_keep_every_later_line_number_and_raw_line_exact(con, tmp_path):
    """The typed CSV read skips empty lines and rejects others: the quarantine still names each line as it is in the file."""
    data = write(
        tmp_path / "r.csv",
        HEADER.encode() + f"1,10,4,{TS}\n\n".encode()  # 2 fine, 3 empty
        + b"1,11,4,978300760,extra\n   \n"  # 4 a field too many, 5 blanks only (skipped like an empty line)
        + b"2,1\xff,4,978300760\n\n"  # 6 not UTF-8, 7 empty
        + f"1,10,4,{TS}\n2, 12 ,4,yesterday\n3,\"13\",4,{TS}\n".encode(),  # 8 duplicate of 2, 9 bad timestamp, 10 fine
    )  # fmt: skip

    report = ingest_source(con, detect_source(data), limits(max_quarantined_share=1.0))

    rows = con.sql("SELECT row_number, reason, raw FROM quarantine ORDER BY row_number").fetchall()
    assert rows == [
        (4, "expected 4 fields, found 5", "1,11,4,978300760,extra"),
        (6, "line is not valid utf-8", rows[1][2]),
        (8, "duplicate of an earlier row (user_id, item_id, timestamp)", f"1,10,4,{TS}"),
        (9, "bad timestamp 'yesterday'", "2, 12 ,4,yesterday"),
    ]
    assert (report.rows_read, report.rows_loaded) == (6, 2)
    assert con.sql("SELECT user_id, item_id FROM interactions ORDER BY user_id").fetchall() == [(1, 10), (3, 13)]


def test_an_unparsable_or_quoted_rating_is_quarantined_by_value_and_later_lines_keep_their_numbers(con, tmp_path):
    """The rating is typed from its text (DuckDB 2.0 turns a TRY_CAST straight over read_csv into a rejected line, duckdb#23818)."""
    data = write(tmp_path / "r.csv", HEADER + f"1,10,4,{TS}\n2,10,abc,{TS}\n2,11,4,yesterday\n3,12,\"4\",{TS}\n")

    report = ingest_source(con, detect_source(data), limits(max_quarantined_share=1.0))

    assert quarantined(con) == {3: "unparsable rating 'abc'", 4: "bad timestamp 'yesterday'"}
    assert con.sql("SELECT user_id, item_id, rating FROM interactions ORDER BY user_id").fetchall() == [(1, 10, 4.0), (3, 12, 4.0)]
    assert (report.rows_read, report.rows_loaded) == (4, 2)


def test_the_same_content_under_another_name_is_skipped_and_a_repeated_row_is_its_only_problem(con, tmp_path):
    rows = "".join(f"{u},{u + 9},4,{TS + u}\n" for u in range(1, 6))
    first = write(tmp_path / "day1.csv", HEADER + rows)
    ingest_source(con, detect_source(first))
    copy = write(tmp_path / "copy.csv", HEADER + rows)

    assert ingest_source(con, detect_source(copy)).files_skipped == 1, "hashed while read: known content, nothing loaded"
    repeated = write(tmp_path / "day2.csv", HEADER + f"7,10,4,{TS}\n8,10,4,{TS}\n7,10,4,{TS}\n" + rows)
    report = ingest_source(con, detect_source(repeated))

    assert quarantined(con) == {4: "duplicate of an earlier row (user_id, item_id, timestamp)"}
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (8, 2, 1), "rows loaded before are kept as they are"
    assert count(con, "interactions") == 7


def test_a_file_mixing_crlf_and_lf_line_ends_loads_with_exact_line_numbers(con, tmp_path):
    """Files concatenated from Windows and Unix sources: DuckDB's CSV reader refuses them, ingest reads an LF copy."""
    lines = [HEADER.rstrip("\n"), f"1,10,4,{TS}", "", f"1,11,4,{TS},extra", f"2,12,4,{TS}", "2,13,4,yesterday", f"3,13,4,{TS}"]
    data = write(tmp_path / "r.csv", "".join(line + ("\r\n" if n % 2 else "\n") for n, line in enumerate(lines)))
    catalog = write(tmp_path / "items.csv", "item_id,title,genres\r\n10,Alpha,Drama\n11,Beta,Comedy\r\n12,Gamma,\n13,Delta,Drama\r\n")

    report = ingest_source(con, detect_source(data, catalog), limits(max_quarantined_share=1.0))

    assert con.sql("SELECT row_number, reason, raw FROM quarantine ORDER BY row_number").fetchall() == [
        (4, "expected 4 fields, found 5", f"1,11,4,{TS},extra"),
        (6, "bad timestamp 'yesterday'", "2,13,4,yesterday"),
    ]
    assert (report.rows_read, report.rows_loaded) == (5, 3)
    assert con.sql("SELECT user_id, item_id FROM interactions ORDER BY user_id").fetchall() == [(1, 10), (2, 12), (3, 13)]
    assert con.sql("SELECT item_id, title FROM catalog ORDER BY item_id").fetchall() == [
        (10, "Alpha"), (11, "Beta"), (12, "Gamma"), (13, "Delta")]


def test_a_carriage_return_inside_a_line_refuses_the_file_in_one_line_and_records_it(con, tmp_path):
    data = write(tmp_path / "r.csv", HEADER + f"1,10,4,{TS}\n2,1\r1,4,{TS}\n")

    with pytest.raises(FileRejected, match="DuckDB's CSV reader cannot split it into lines: Invalid Input Error"):
        ingest_source(con, detect_source(data), limits())

    assert count(con, "interactions") == 0
    assert con.sql("SELECT reason FROM rejected_files").fetchall()[0][0].startswith("DuckDB's CSV reader cannot split it")


# --- §2 and §3: epochs, row-level timestamps, stage-check-commit --------------------------------


def test_milli_micro_and_nanosecond_epochs_are_converted_with_a_note(con, tmp_path):
    data = write(
        tmp_path / "r.csv",
        HEADER + f"1,10,4,{TS}\n1,11,4,{TS}123\n1,12,4,{TS}123456\n1,13,4,{TS}123456789\n1,14,4,{TS}999\n",
    )

    report = ingest_source(con, detect_source(data))

    stamps = dict(con.sql("SELECT item_id, ts::VARCHAR FROM interactions").fetchall())
    assert stamps == {
        10: "2000-12-31 22:12:40",
        11: "2000-12-31 22:12:40.123",
        12: "2000-12-31 22:12:40.123456",
        13: "2000-12-31 22:12:40.123457",
        14: "2000-12-31 22:12:40.999",
    }
    notes = con.sql("SELECT note, rows, first_line FROM ingest_notes ORDER BY first_line").fetchall()
    assert notes == [
        ("timestamp in milliseconds since the epoch, converted", 2, 3),
        ("timestamp in microseconds since the epoch, converted", 1, 4),
        ("timestamp in nanoseconds since the epoch, converted", 1, 5),
    ]
    assert report.rows_converted == 4 and "4 converted" in str(report)


def test_future_early_and_negative_timestamps_are_quarantined_and_the_rest_loads(con, tmp_path):
    settings = Settings(run_date=datetime(2026, 11, 23).date())
    good = "".join(f"{u},{i},4,{TS}\n" for u in range(1, 5) for i in range(10, 13))
    data = write(
        tmp_path / "r.csv",
        HEADER + good + "9,10,4,4102444800\n9,11,4,1980-01-01T00:00:00Z\n9,12,4,-5\n9,13,4,2026-11-24T23:00:00Z\n",
    )

    report = ingest_source(con, detect_source(data), Limits.of(settings))

    reasons = quarantined(con)
    assert reasons[14].startswith("timestamp 2100-01-01 00:00:00 is in the future (after ")
    assert reasons[15] == "timestamp 1980-01-01 00:00:00 is before the floor 1995-01-01 00:00:00 (RECS_MIN_TIMESTAMP)"
    assert reasons[16] == "negative timestamp '-5'"
    assert 17 not in reasons, "within run_date + the tolerance"
    assert (report.rows_loaded, report.rows_quarantined) == (13, 3)


def test_a_file_over_the_quarantine_share_changes_nothing_and_a_later_good_file_loads(con, tmp_path):
    first = write(tmp_path / "day1.csv", HEADER + f"1,10,4,{TS}\n")
    ingest_source(con, detect_source(first))
    bad = write(tmp_path / "day2.csv", HEADER + f"2,10,4,{TS}\n" + "".join(f"2,{i},4,yesterday\n" for i in range(11, 14)))

    with pytest.raises(FileRejected, match=r"day2\.csv: 3 of 4 rows would be quarantined \(75%.*most often: bad timestamp 'yesterday' \(3 rows\)") as refused:
        ingest_source(con, detect_source(bad))

    assert "\n" not in str(refused.value)
    assert (count(con, "interactions"), count(con, "quarantine"), count(con, "ingested_files")) == (1, 0, 1)
    assert con.sql("SELECT source LIKE '%day2.csv', reason LIKE '3 of 4 rows%' FROM rejected_files").fetchall() == [(True, True)]
    corrected = write(tmp_path / "day2.csv", HEADER + f"2,10,4,{TS}\n" + "".join(f"2,{i},4,{TS}\n" for i in range(11, 14)))
    assert ingest_source(con, detect_source(corrected)).rows_loaded == 4
    assert count(con, "interactions") == 5


# --- §4 inputs that are not files --------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: os.mkfifo(p), "is a FIFO; only regular files are read"),
        (lambda p: os.symlink("/dev/zero", p), r"\(-> /dev/zero\) is a character device; only regular files are read"),
    ],
)
def test_a_fifo_or_a_csv_symlink_to_dev_zero_is_refused_at_once(tmp_path, make, message):
    path = tmp_path / "ratings.csv"
    make(path)
    outcome: list[BaseException] = []

    def detect() -> None:
        try:
            detect_source(path)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)

    worker = threading.Thread(target=detect, daemon=True)  # a reader that hangs must not hang the suite
    worker.start()
    worker.join(1.0)

    assert not worker.is_alive(), "still reading after 1 s"
    assert outcome, "a non-file was accepted"
    with pytest.raises(InputError, match=message):
        raise outcome[0]


def test_a_directory_catalogue_and_an_oversized_file_are_refused(tmp_path):
    data = write(tmp_path / "r.csv", HEADER + f"1,10,4,{TS}\n")
    (tmp_path / "movies.csv").mkdir()

    with pytest.raises(InputError, match="catalogue .*movies.csv is a directory"):
        detect_source(data, tmp_path / "movies.csv")
    with pytest.raises(InputError, match=r"r.csv has \d+ bytes, more than RECS_MAX_INPUT_BYTES \(10\)"):
        detect_source(data, max_bytes=10)


# --- §6 one home, one source ---------------------------------------------------------------------


def small_catalog(directory: Path, titles: dict[int, str]) -> Path:
    return write(directory / "catalog.csv", "item_id,title,genres\n" + "".join(f"{i},{t},Drama\n" for i, t in titles.items()))


def test_a_home_refuses_another_source_in_one_line_and_replace_starts_afresh(tmp_path):
    feed, other = tmp_path / "feed", tmp_path / "other"
    feed.mkdir(), other.mkdir()
    write(feed / "day1.csv", HEADER + f"1,10,4,{TS}\n")
    write(feed / "day2.csv", HEADER + f"2,10,4,{TS}\n")
    write(other / "ratings.csv", HEADER + f"7,70,4,{TS}\n")
    home = tmp_path / "home"
    ingest.fn(Settings(home=home, data=feed / "day1.csv"))
    ingest.fn(Settings(home=home, data=feed / "day2.csv"))  # a new day's file of the same source

    with pytest.raises(InputError, match=rf"^home {home} was built from {feed}, not {other}: use another --home, or --replace-source"):
        claim_home(Settings(home=home, data=other))

    ingest.fn(Settings(home=home, data=other, replace_source=True))
    with connect(home / "recs.duckdb") as con:
        assert con.sql("SELECT user_id FROM interactions").fetchall() == [(7,)]
        assert con.sql("SELECT kind, location FROM home_source").fetchall() == [("files", str(other))]
    assert len(list(home.glob("recs.duckdb.replaced-*"))) == 1, "the old data is set aside, not lost"


def test_a_home_built_before_home_source_existed_is_recognised_from_its_files(tmp_path):
    home = tmp_path / "home"
    settings = Settings(home=home, gen_users=20, gen_items=40, gen_ratings=400)
    ingest.fn(settings)
    with connect(settings) as con:
        con.execute("DELETE FROM home_source")

    claim_home(settings)  # the same built-in dataset: fine
    with pytest.raises(InputError, match="was built from the built-in dataset generated-20x40x400-seed7"):
        claim_home(settings.model_copy(update={"data": tmp_path}))


def test_renamed_titles_are_counted_and_renaming_most_of_the_catalogue_is_refused(con, tmp_path):
    ratings = write(tmp_path / "ratings.csv", HEADER + "".join(f"1,{i},4,{TS + i}\n" for i in range(1, 5)))
    titles = {1: "Heat (1995)", 2: "Ronin (1998)", 3: "Ran (1985)", 4: "Brazil (1985)"}
    ingest_source(con, detect_source(ratings, small_catalog(tmp_path, titles)))

    fixed = ingest_source(con, detect_source(ratings, small_catalog(tmp_path, {**titles, 3: "Ran (1985, restored)"})))
    assert fixed.catalog_titles_changed == 1 and "1 titles changed" in str(fixed)

    other = {1: "Air Bud (1997)", 2: "Foxfire (1996)", 3: "Ran (1985, restored)", 4: "Jaws (1975)"}
    with pytest.raises(FileRejected, match="renames 3 of the 4 items .*another --home, or --replace-source"):
        ingest_source(con, detect_source(ratings, small_catalog(tmp_path, other)))
    assert con.sql("SELECT title FROM catalog WHERE item_id = 1").fetchall() == [("Heat (1995)",)]


# --- one pass for the plain file, row by row for any other: the same result ---------------------------------------

ODD_FIELDS = ["61.5", "1.0", "1e2", "1E2", "0x10", "0b11", "1_000", "+3", "-3", " 3", "3 ", "3\t", "03", "", '"3"', "3.",
              ".5", "nan", "inf", "-inf", "9223372036854775808", "١٢", "1,5", "4.5", "0", "6"]  # fmt: skip
ODD_TIMESTAMPS = [str(TS * 1000), str(TS * 1_000_000), str(TS * 1_000_000_000), f"{TS}.5", f"{TS}.0", f"{TS}e0",
                  "2000-12-31T22:12:40", "-1", "0", "99999999999", "100000000000", f"0{TS}", f"+{TS}", f" {TS}"]  # fmt: skip


def rows_and_quarantine(home: Path, data: Path, **attempt) -> tuple[tuple[list, list, tuple], bool]:
    """(interactions, quarantine, report counts) after ingesting `data` into a new home; whether it went row by row."""
    from tasks.ingest import Attempt

    with connect(home / "recs.duckdb") as con:
        report = ingest_source(con, detect_source(data), limits(max_quarantined_share=1.0), attempt=Attempt(**attempt))
        return (
            con.sql("SELECT user_id, item_id, rating, ts FROM interactions ORDER BY ALL").fetchall(),
            con.sql("SELECT row_number, reason, raw FROM quarantine ORDER BY ALL").fetchall(),
            (report.rows_read, report.rows_loaded, report.rows_quarantined, report.rows_converted),
        ), report.row_by_row


@pytest.mark.parametrize("field", ["user_id", "item_id", "rating", "timestamp"])
def test_a_file_with_one_odd_value_loads_exactly_as_classified_row_by_row(tmp_path, field):
    """The plain file's one-pass load (DuckDB's reader parses leniently: '61.5' as 62, '1e2' as 100) gives exactly the
    rows and quarantine the row-by-row classification gives, whatever one odd value a file holds."""
    good = [(1, 10, 4, TS), (2, 11, 3, TS + 1), (3, 10, 5, TS + 2)]
    plain = write(tmp_path / "plain.csv", HEADER + "".join(",".join(map(str, r)) + "\n" for r in good))
    assert rows_and_quarantine(tmp_path / "plain", plain)[1] is False, "a plain file loads in one pass"
    odd_values = ODD_TIMESTAMPS + ["", "x", "1.5"] if field == "timestamp" else ODD_FIELDS
    position = ["user_id", "item_id", "rating", "timestamp"].index(field)
    for n, value in enumerate(odd_values):
        row = [str(v) for v in (4, 12, 4, TS + 3)]
        row[position] = value
        data = write(tmp_path / f"{field}-{n}.csv", HEADER + "".join(",".join(map(str, r)) + "\n" for r in good) + ",".join(row) + "\n")
        one_pass, _ = rows_and_quarantine(tmp_path / f"one-pass-{n}", data)
        by_row, classified = rows_and_quarantine(tmp_path / f"row-by-row-{n}", data, row_by_row=True)
        assert classified and one_pass == by_row, f"{field} {value!r}"
        assert len(one_pass[0]) + len(one_pass[1]) == 4, f"{field} {value!r}: every row loaded or quarantined"
