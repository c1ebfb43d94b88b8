"""Data checks: each critical check fails on crafted data, warnings do not stop a run, and a
failing output check stops the flow before publish, leaving the published partition as it was."""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from conftest import RUN_DATE, SMALL
from rankers.als import AlsRanker
from tasks import db
from tasks.candidates import build_candidates, store_candidates
from tasks.ingest import ingest_source, resolve_source
from tasks.publish import PARTITION_FILE, partition_dir, publish_run
from tasks.rank import rank_users
from tasks.settings import Settings
from tasks.train import train_model
from tasks.validate import (
    InputChecksFailed,
    ValidationFailed,
    check_inputs,
    check_outputs,
    gate,
    gx_context,
    load_suite,
    quarantine_dir,
    render,
    validate_frame,
)

# One ALS user and a few of their facts, for tampering with ranked rows.
USER = "(SELECT min(user_id) FROM ranked WHERE ranker = 'als' AND len(evidence_item_ids) > 0)"
SEEN_UNRANKED = f"""(SELECT min(item_id) FROM interactions WHERE user_id = {USER}
                     AND item_id NOT IN (SELECT item_id FROM ranked WHERE user_id = {USER}))"""
DISLIKED = f"(SELECT min(item_id) FROM interactions WHERE user_id = {USER} AND rating <= 3)"
WHOLE = {"chunks": 1, "chunk": 0}  # a check batch in one chunk
INPUT_PARAMS = {"rating_min": 0.5, "rating_max": 5.0, "previous_row_count": 0}
COPY_ONE_WITH_TS = (
    "INSERT INTO interactions SELECT user_id, item_id, rating, TIMESTAMP '{}', loaded_at FROM interactions LIMIT 1"
)


@pytest.fixture(scope="module")
def ready_home(tmp_path_factory) -> Path:
    """Every stage run on the small generated dataset and the night published (plain functions, no Prefect)."""
    settings = Settings(home=tmp_path_factory.mktemp("ready") / "home", run_date=RUN_DATE, **SMALL)
    with db.connect(settings) as con:
        ingest_source(con, resolve_source(settings))
        version = train_model(con, settings).serving_version
        store_candidates(con, build_candidates(con, settings, version), settings, version)
        rank_users(con, settings, AlsRanker(), db.frame(con, "candidates/users")["user_id"].to_list())
        publish_run(con, settings)
    return settings.home


@pytest.fixture
def settings(ready_home: Path, tmp_path: Path) -> Settings:
    """A private copy of the ready home (overrides conftest's `settings`; its `con` opens this copy)."""
    home = tmp_path / "home"
    shutil.copytree(ready_home, home)
    return Settings(home=home, run_date=RUN_DATE, **SMALL)


def published_file(settings: Settings) -> Path:
    return partition_dir(settings.recommendations_dir, settings.run_date) / PARTITION_FILE


def gated_publish(con, settings: Settings) -> None:
    """The tail of the nightly flow: output checks, then publish only if they pass."""
    gate(check_outputs(con, settings))
    publish_run(con, settings)


def failed_names(report) -> set[str]:
    return {o.name for o in report.failures}


def test_clean_night_passes_both_suites_and_records_them(con, settings):
    inputs, outputs = gate(check_inputs(con, settings)), gate(check_outputs(con, settings))

    assert not inputs.failures and not inputs.warnings and not outputs.failures and not outputs.warnings
    assert inputs.quarantine is None and outputs.quarantine is None
    assert not quarantine_dir(settings).exists()
    stored = con.sql("SELECT suite, count(*), bool_and(success) FROM validation_runs GROUP BY suite ORDER BY suite").fetchall()
    assert stored == [("interactions", len(inputs.outcomes), True), ("recommendations", len(outputs.outcomes), True)]
    row_count = con.sql("SELECT observed_value FROM validation_runs WHERE expectation = 'row_count'").fetchall()[0][0]
    assert json.loads(row_count) == SMALL["gen_ratings"]
    assert "| rank_in_1_to_k | critical | ok |" in render(outputs)


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (f"UPDATE ranked SET rank = 11 WHERE user_id = {USER} AND rank = 10", "rank_in_1_to_k"),
        (f"UPDATE ranked SET item_id = {SEEN_UNRANKED} WHERE user_id = {USER} AND rank = 1", "no_seen_items"),
        (f"UPDATE ranked SET item_id = 999999 WHERE user_id = {USER} AND rank = 1", "items_in_catalogue"),
        (
            f"UPDATE ranked SET item_id = (SELECT item_id FROM ranked WHERE user_id = {USER} AND rank = 2) "
            f"WHERE user_id = {USER} AND rank = 1",
            "items_unique_per_user",
        ),
        (f"UPDATE ranked SET explanation = ' ' WHERE user_id = {USER} AND rank = 3", "explanation_not_blank"),
        (f"UPDATE ranked SET explanation = repeat('x', 501) WHERE user_id = {USER} AND rank = 3", "explanation_short"),
        (f"UPDATE ranked SET evidence_item_ids = [{DISLIKED}] WHERE user_id = {USER} AND rank = 1", "evidence_is_liked_history"),
        (f"UPDATE ranked SET ranker = 'gpt' WHERE user_id = {USER}", "ranker_known"),
        (f"DELETE FROM ranked WHERE user_id = {USER}", "every_user_ranked"),
        (f"DELETE FROM ranked WHERE user_id = {USER} AND rank = 10", "k_per_user"),
    ],
)
def test_a_failing_output_check_stops_publish_and_quarantines_the_rows(con, settings, tamper, expected):
    published = published_file(settings).read_bytes()
    con.execute(tamper)

    with pytest.raises(ValidationFailed, match=rf"(?s)recommendations checks failed.*- {expected}: .*e\.g\. \{{user_id: ") as failed:
        gated_publish(con, settings)

    report = check_outputs(con, settings)
    assert failed_names(report) == {expected}
    assert published_file(settings).read_bytes() == published
    quarantined = pl.read_parquet(quarantine_dir(settings) / "recommendations.parquet")
    assert set(quarantined["expectation"]) == {expected} and quarantined.height >= 1
    assert str(report.quarantine) in str(failed.value)


def test_duplicate_rank_fails_ranks_unique_per_user(con, settings):
    """The ranked table's key forbids duplicate ranks, so the expectation is shown a crafted batch."""
    batch = db.frame(con, "validate/recommendations_batch", {"run_date": RUN_DATE, **WHOLE})
    twin = batch.head(2).with_columns(rank=pl.lit(1, dtype=batch["rank"].dtype))

    crafted = pl.concat([batch[2:], twin])

    checked = {o.name: (o, rows) for o, rows in validate_frame(load_suite("recommendations").rows, crafted, {"k": 10})}

    outcome, rows = checked["ranks_unique_per_user"]
    assert not outcome.success and outcome.severity == "critical" and outcome.unexpected_count == 2
    assert rows.select("user_id", "rank").unique().rows() == [(batch["user_id"][0], 1)]
    assert all(o.success for name, (o, _) in checked.items() if name != "ranks_unique_per_user")


def test_duplicate_event_fails_no_duplicate_events(con, settings):
    batch = db.frame(con, "validate/interactions_batch", WHOLE)
    checked = validate_frame(load_suite("interactions").rows, pl.concat([batch, batch.head(1)]), INPUT_PARAMS)

    assert {o.name for o, _ in checked if not o.success} == {"no_duplicate_events"}


def test_an_expectation_that_cannot_be_evaluated_counts_as_failed(con, settings):
    batch = db.frame(con, "validate/interactions_batch", WHOLE).drop("rating")
    checked = validate_frame(load_suite("interactions").rows, batch, INPUT_PARAMS)

    (outcome,) = [o for o, _ in checked if not o.success]
    assert outcome.name == "rating_in_range" and outcome.observed.startswith("error: ")


def test_stored_future_and_old_timestamps_warn_and_never_crash_the_check(con, settings):
    """Ingest quarantines such rows now; history stored before that (even year 52673, which Python and pandas
    cannot represent: the crash of issue 12 §2) is reported as a warning and the night goes on."""
    con.execute(COPY_ONE_WITH_TS.format("52673-06-01"))
    con.execute(COPY_ONE_WITH_TS.format("1980-01-01"))

    report = gate(check_inputs(con, settings))

    assert {o.name for o in report.warnings} == {"ts_not_in_future", "ts_after_floor"} and not report.failures
    quarantined = pl.read_parquet(quarantine_dir(settings) / "interactions.parquet")
    assert sorted(zip(quarantined["expectation"], quarantined["ts"].str.slice(0, 5))) == [
        ("ts_after_floor", "1980-"),
        ("ts_not_in_future", "52673"),
    ]


@pytest.mark.parametrize("threads", [1, 4])
def test_checks_in_chunks_of_users_give_the_verdicts_and_rows_of_the_whole_batch(con, settings, threads):
    """Chunks of at most 1,000 rows (9 or more for 9,000 ratings and 1,500 ranked rows), validated one at a time or
    4 side by side: an event stored twice and ranks out of range in many chunks are found with every offending row
    (each from its own chunk), the clean checks pass."""
    chunked = settings.model_copy(update={"check_chunk_rows": 1_000, "check_threads": threads})
    con.execute("INSERT INTO interactions SELECT * FROM interactions WHERE user_id = (SELECT max(user_id) FROM interactions) LIMIT 1")
    con.execute("UPDATE ranked SET rank = 11 WHERE user_id % 7 = 0 AND rank = 10")
    out_of_range = sorted(u for (u,) in con.sql("SELECT user_id FROM ranked WHERE rank = 11").fetchall())

    inputs, outputs = check_inputs(con, chunked), check_outputs(con, chunked)

    assert failed_names(inputs) == {"no_duplicate_events"} and failed_names(outputs) == {"rank_in_1_to_k"}
    duplicated = next(o for o in inputs.outcomes if o.name == "no_duplicate_events")
    assert duplicated.unexpected_count == 2 and len({tuple(e.values()) for e in duplicated.examples}) == 1
    assert next(o for o in outputs.outcomes if o.name == "rank_in_1_to_k").unexpected_count == len(out_of_range) > 10
    assert next(o for o in inputs.outcomes if o.name == "row_count").observed == SMALL["gen_ratings"] + 1
    quarantined = pl.read_parquet(quarantine_dir(settings) / "recommendations.parquet")
    assert set(quarantined["rank"]) == {11} and sorted(quarantined["user_id"]) == out_of_range


def test_after_the_checks_no_gx_context_keeps_a_batch(con, settings):
    """GX's execution engine keeps the last batch it validated until the next one: each of the checks' idle contexts
    would hold a chunk (up to RECS_CHECK_CHUNK_ROWS rows) through the rest of the night (~500 MiB at 20M ratings)."""
    gate(check_inputs(con, settings.model_copy(update={"check_chunk_rows": 1_000, "check_threads": 3})))
    gate(check_outputs(con, settings))

    with ExitStack() as stack:
        contexts = [stack.enter_context(gx_context()) for _ in range(3)]
        kept = [len(c.data_sources.get("recs").get_execution_engine().batch_manager.batch_data_cache) for c in contexts]
    assert kept == [0, 0, 0]


@pytest.mark.parametrize(
    "expectation",
    [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["item_id", "rank"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "item_id", "mostly": 0.9}},
    ],
    ids=["over the whole table", "unique across users", "a share of all rows"],
)
def test_a_check_that_chunks_of_users_would_change_is_refused_on_the_row_batch(tmp_path, expectation):
    suite = json.loads(Path("expectations/recommendations.json").read_text())
    suite["expectations"].append(expectation | {"meta": {"name": "changed"}, "severity": "critical"})
    (tmp_path / "changed.json").write_text(json.dumps(suite))

    with pytest.raises(ValueError, match="changed cannot be checked chunk by chunk of user_id"):
        load_suite("changed", tmp_path)


def test_input_checks_that_cannot_run_on_the_stored_rows_fail_in_one_line(con, settings):
    con.execute("ALTER TABLE interactions RENAME COLUMN rating TO stars")

    with pytest.raises(InputChecksFailed, match=r"^input checks could not run on the stored interactions: Binder Error") as failed:
        check_inputs(con, settings)
    assert "\n" not in str(failed.value)


def test_unknown_item_fails_the_input_suite(con, settings):
    con.execute("INSERT INTO interactions SELECT user_id, 999999, rating, ts, loaded_at FROM interactions LIMIT 1")

    assert failed_names(check_inputs(con, settings)) == {"items_in_catalogue"}


def test_falling_row_count_fails_against_the_previous_night(con, settings):
    yesterday = settings.model_copy(update={"run_date": RUN_DATE - timedelta(days=1)})
    assert not check_inputs(con, yesterday).failures
    con.execute("DELETE FROM interactions WHERE user_id = (SELECT min(user_id) FROM interactions)")

    report = check_inputs(con, settings)

    assert failed_names(report) == {"row_count"}
    assert next(o for o in report.outcomes if o.name == "row_count").observed < SMALL["gen_ratings"]


def test_quarantine_share_above_one_percent_warns_and_the_run_goes_on(con, settings):
    con.execute("INSERT INTO ingested_files VALUES ('feed', 'bad.csv', 1000, 950, 50, now()::TIMESTAMP)")

    report = gate(check_inputs(con, settings))

    assert [o.name for o in report.warnings] == ["quarantine_share_low"] and not report.failures
    assert "warning: quarantine_share_low" in str(report)


def test_a_suite_with_repeated_check_names_is_rejected(tmp_path):
    suite = json.loads(Path("expectations/recommendations.json").read_text())
    suite["expectations"][1]["meta"]["name"] = suite["expectations"][0]["meta"]["name"]
    (tmp_path / "broken.json").write_text(json.dumps(suite))

    with pytest.raises(ValueError, match="unique name"):
        load_suite("broken", tmp_path)


@pytest.mark.usefixtures("prefect_server")
def test_flow_fails_before_publish_when_outputs_are_tampered(tmp_path, monkeypatch):
    from flows.nightly import nightly
    from flows.parameters import RunParameters

    for name, value in SMALL.items():
        monkeypatch.setenv(f"RECS_{name.upper()}", str(value))
    params = RunParameters(home=tmp_path, run_date=RUN_DATE)
    assert nightly(params)["output_checks"].failures == ()
    published = partition_dir(tmp_path / "recommendations", RUN_DATE) / PARTITION_FILE
    before = published.read_bytes()
    with duckdb.connect(str(tmp_path / "recs.duckdb")) as con:
        con.execute(f"UPDATE ranked SET evidence_item_ids = [999999] WHERE user_id = {USER} AND rank = 1")
        published_at = con.sql("SELECT published_at FROM published_runs").fetchall()

    state = nightly(params, return_state=True)

    assert state.is_failed() and "evidence_is_liked_history" in state.message
    assert published.read_bytes() == before
    with duckdb.connect(str(tmp_path / "recs.duckdb"), read_only=True) as con:
        assert con.sql("SELECT published_at FROM published_runs").fetchall() == published_at
        failed = con.sql("SELECT suite, expectation FROM validation_runs WHERE NOT success").fetchall()
    assert failed == [("recommendations", "evidence_is_liked_history")]
    quarantined = pl.read_parquet(tmp_path / "quarantine" / f"run_date={RUN_DATE}" / "recommendations.parquet")
    assert quarantined["unliked_evidence"].to_list() == [[999999]]
