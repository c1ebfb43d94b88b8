"""The nightly report, `recs report` and `recs show` (issue 15 §1, §2): real flow runs on a small generated
dataset fed night by night, a real DuckDB home, the CLI through typer's runner."""

from __future__ import annotations

import math
from datetime import timedelta
from itertools import combinations
from pathlib import Path

import duckdb
import polars as pl
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from typer.testing import CliRunner

from conftest import RUN_DATE, SMALL
from llm_server import OpenAICompatibleServer
from flows.cli import app
from flows.nightly import nightly_for
from flows.parameters import RunParameters
from tasks import dictionary
from tasks.db import connect
from tasks.generate import write_dataset
from tasks.llm_client import reset_shared_state
from tasks.publish import PARTITION_FILE, partition_dir

pytestmark = pytest.mark.usefixtures("prefect_server")
FIRST, SECOND = RUN_DATE - timedelta(days=1), RUN_DATE
PRICE_INPUT, PRICE_OUTPUT = 0.15, 0.60


@pytest.fixture(scope="module")
def home(tmp_path_factory, prefect_server):
    """Two published nights: ALS on 8,000 ratings, then the LLM ranker (20 users) after 1,000 more, with prices."""
    root = tmp_path_factory.mktemp("report")
    interactions, catalog = write_dataset(root / "source", n_users=SMALL["gen_users"], n_items=SMALL["gen_items"],
                                          n_ratings=SMALL["gen_ratings"], seed=5)  # fmt: skip
    ratings = pl.read_csv(interactions)
    (root / "feed").mkdir()
    ratings.head(8_000).write_csv(root / "feed" / "day1.csv")
    ratings.slice(8_000, 1_000).write_csv(root / "feed" / "day2.csv")
    home = root / "home"
    run(home, FIRST, data=root / "feed" / "day1.csv", catalog=catalog)
    reset_shared_state()
    with pytest.MonkeyPatch.context() as env, OpenAICompatibleServer() as server:
        for name, value in {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test-report",
                            "RECS_LLM_SHARED_LIMIT": "local", "RECS_LLM_RPM": 100_000, "RECS_LLM_MAX_USERS": 20,
                            "RECS_LLM_PRICE_INPUT": PRICE_INPUT, "RECS_LLM_PRICE_OUTPUT": PRICE_OUTPUT}.items():  # fmt: skip
            env.setenv(name, str(value))
        first_report = run(home, SECOND, data=root / "feed" / "day2.csv", catalog=catalog, ranker="llm")
        yield home, first_report, lambda **more: run(home, SECOND, data=root / "feed" / "day2.csv", catalog=catalog, ranker="llm", **more)
    reset_shared_state()


def run(home: Path, run_date, **params):
    """One completed nightly run; its flow run id."""
    params = RunParameters(home=home, run_date=run_date, **params)
    state = nightly_for(params.settings())(params, return_state=True)
    assert state.is_completed(), state.message
    return state.state_details.flow_run_id


def query(home: Path, sql: str, **params) -> pl.DataFrame:
    with connect(home / "recs.duckdb") as con:  # with the schema's macros (likes, latest_ratings)
        return con.sql(sql, params=params).pl()


def published(home: Path, run_date) -> pl.DataFrame:
    return pl.read_parquet(partition_dir(home / "recommendations", run_date) / PARTITION_FILE)


def lists(frame: pl.DataFrame) -> dict[int, set[int]]:
    return {user: set(items) for user, items in frame.group_by("user_id").agg("item_id").iter_rows()}


# The figures, computed here from the published Parquet files and the home's tables (the specification).

def churn(tonight: dict[int, set[int]], before: dict[int, set[int]]) -> float:
    shared = [u for u in tonight if u in before]
    return sum(1 - len(tonight[u] & before[u]) / len(tonight[u]) for u in shared) / len(shared)


def personalisation(by_user: dict[int, set[int]]) -> float:
    pairs = list(combinations(by_user.values(), 2))
    return 1 - sum(len(a & b) / math.sqrt(len(a) * len(b)) for a, b in pairs) / len(pairs)


def diversity(by_user: dict[int, set[int]], genres: dict[int, set[str]]) -> float:
    def user(items: set[int]) -> float:
        pairs = [(genres[a], genres[b]) for a, b in combinations(sorted(items), 2) if genres[a] | genres[b]]
        return sum(1 - len(a & b) / len(a | b) for a, b in pairs) / len(pairs)

    return sum(map(user, by_user.values())) / len(by_user)


def novelty(frame: pl.DataFrame, home: Path) -> float:
    ratings = query(home, "SELECT user_id, item_id, rating, ts FROM interactions")
    latest = ratings.sort("ts").group_by("user_id", "item_id").agg(pl.col("rating").last())
    likes = latest.filter(pl.col("rating") > 3.0).group_by("item_id").len("likes")
    items = query(home, "SELECT item_id FROM catalog").join(likes, on="item_id", how="left").fill_null(0)
    ranks = items.with_columns(popularity_rank=pl.col("likes").rank("min", descending=True))
    return frame.join(ranks, on="item_id")["popularity_rank"].mean()


def test_each_night_stores_the_figures_of_its_published_lists(home):
    home, _, _ = home
    stored = {row["run_date"]: row for row in query(home, "FROM report_nights").iter_rows(named=True)}
    first, second = published(home, FIRST), published(home, SECOND)
    genres = {item: set(g or []) for item, g in query(home, "SELECT item_id, genres FROM catalog").iter_rows()}
    catalog_items = len(genres)

    assert set(stored) == {FIRST, SECOND}
    one, two = stored[FIRST], stored[SECOND]
    assert (one["previous_run_date"], one["churn"]) == (None, None), "no night before the first"
    assert two["previous_run_date"] == FIRST
    assert 0 < two["churn"] < 1 and two["churn"] == pytest.approx(churn(lists(second), lists(first)))
    for row, frame in ((one, first), (two, second)):
        assert (row["users"], row["rows"], row["catalog_items"]) == (frame["user_id"].n_unique(), frame.height, catalog_items)
        assert row["coverage"] == pytest.approx(frame["item_id"].n_unique() / catalog_items)
        assert row["personalisation"] == pytest.approx(personalisation(lists(frame)))
        assert row["diversity"] == pytest.approx(diversity(lists(frame), genres))
    assert two["novelty"] == pytest.approx(novelty(second, home))

    assert one["rows_als"] == first.height and one["rows_llm"] == one["rows_als_fallback"] == one["rows_popular"] == 0
    mix = dict(second.group_by("ranker").len().iter_rows())  # no cold users here: no popular rows
    assert mix == {"llm": 20 * 10, "als_fallback": second.height - 200}, "20 users within the LLM cap, the rest over it"
    assert {name: two[f"rows_{name}"] for name in ("llm", "als_fallback", "als", "popular")} == mix | {"als": 0, "popular": 0}
    tokens = query(home, "SELECT sum(prompt_tokens)::BIGINT AS p, sum(completion_tokens)::BIGINT AS c FROM llm_calls "
                         "WHERE run_date = $d AND outcome = 'ok'", d=SECOND).row(0)  # fmt: skip
    assert tokens[0] > 0 and (two["llm_prompt_tokens"], two["llm_completion_tokens"]) == tokens
    assert two["llm_cost"] == pytest.approx((tokens[0] * PRICE_INPUT + tokens[1] * PRICE_OUTPUT) / 1e6)
    assert one["llm_cost"] == 0


def test_the_report_artifact_shows_tonight_next_to_the_night_before(home):
    home, flow_run_id, _ = home
    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if a.flow_run_id == flow_run_id and a.key == f"recs-{SECOND}-report"]
    assert len(artifacts) == 1
    lines = artifacts[0].data.splitlines()
    header = next(line for line in lines if line.startswith("| run_date"))
    assert {"coverage", "novelty", "diversity", "personalisation", "churn", "llm_share", "llm_cost"} <= {c.strip() for c in header.split("|")}
    nights = [line.split("|")[1].strip() for line in lines if line.startswith("| 20")]
    assert nights == [SECOND.isoformat(), FIRST.isoformat()], "tonight first, then the nights before"


def test_a_rerun_replaces_its_row_and_a_failing_report_never_fails_the_published_night(home):
    home, _, rerun = home
    before = query(home, "FROM report_nights WHERE run_date = $d", d=SECOND)
    rerun()
    after = query(home, "FROM report_nights WHERE run_date = $d", d=SECOND)
    assert after.height == 1 and after["reported_at"][0] > before["reported_at"][0]
    assert after.drop("reported_at").row(0, named=True) == pytest.approx(before.drop("reported_at").row(0, named=True)), (
        "same night, same figures (up to the summation order of parallel aggregates)"
    )

    with duckdb.connect(str(home / "recs.duckdb")) as con:  # an analyst's extra column: the report cannot write its row
        con.execute("ALTER TABLE report_nights ADD COLUMN analyst_note VARCHAR")
    flow_run_id = rerun()

    assert query(home, "SELECT reported_at FROM report_nights WHERE run_date = $d", d=SECOND)["reported_at"][0] == after["reported_at"][0]
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        records = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    warnings = [r.message for r in records if r.level == 30 and "report" in r.message]
    assert warnings and warnings[0].startswith("the night is published, but its report failed: report failed: "), warnings
    assert published(home, SECOND).height > 0


def test_recs_report_prints_the_trend_and_plots_it(home, tmp_path):
    home, _, _ = home
    plot = tmp_path / "trend.png"
    result = CliRunner().invoke(app, ["report", "--home", str(home), "--nights", "5", "--plot", str(plot)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert FIRST.isoformat() in result.output and SECOND.isoformat() in result.output
    assert "personalisation" in result.output and "churn" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    empty = CliRunner().invoke(app, ["report", "--home", str(tmp_path / "nowhere")])
    assert empty.exit_code == 2 and empty.output.strip().startswith("error: no recs.duckdb in ")


def test_recs_show_prints_the_users_list_and_liked_history_or_refuses_in_one_line(home):
    home, _, _ = home
    second = published(home, SECOND)
    user = second.filter(ranker="llm")["user_id"][0]
    result = CliRunner().invoke(app, ["show", "--user", str(user), "--home", str(home)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    mine = second.filter(user_id=user).sort("rank")
    assert all(title in result.output for title in mine["title"])
    assert f"recommendations of {SECOND}" in result.output and "llm" in result.output
    liked = query(home, "SELECT c.title FROM latest_ratings(3.0) AS l JOIN catalog AS c USING (item_id) "
                        "WHERE l.user_id = $u AND l.liked ORDER BY l.rating DESC, l.ts DESC, c.title LIMIT 1", u=user)  # fmt: skip
    assert liked["title"][0] in result.output and "top liked history" in result.output

    earlier = CliRunner().invoke(app, ["show", "--user", str(user), "--home", str(home), "--run-date", FIRST.isoformat()], env={"COLUMNS": "250"})
    assert earlier.exit_code == 0 and f"recommendations of {FIRST}" in earlier.output

    for args, message in (
        (["--user", "999999"], f"error: user 999999 has no published list on {SECOND}"),
        (["--user", str(user), "--run-date", "2026-01-01"], f"error: no published night 2026-01-01 in {home}"),
        (["--user", str(user), "--run-date", "yesterday"], "error: --run-date 'yesterday' is not a date (YYYY-MM-DD): "),
    ):
        refused = CliRunner().invoke(app, ["show", "--home", str(home), *args])
        assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1, refused.output
        assert refused.output.strip().startswith(message), refused.output


def test_the_parquet_file_and_every_table_and_view_of_the_home_carry_the_dictionary(home):
    home, _, _ = home
    path = partition_dir(home / "recommendations", SECOND) / PARTITION_FILE
    metadata = dict(query(home, "SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata($p)", p=str(path)).iter_rows())
    assert metadata["recs.description"] == dictionary.PARQUET_DESCRIPTION
    columns = published(home, SECOND).columns
    assert {k.removeprefix("recs.column.") for k in metadata if k.startswith("recs.column.")} == set(columns)
    assert all(metadata[f"recs.column.{c}"] == dictionary.SHARED[c] for c in columns)

    objects = query(home, "SELECT table_name AS name, comment FROM duckdb_tables() WHERE NOT temporary "
                          "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE NOT internal AND NOT temporary")  # fmt: skip
    missing = set(objects["name"]) - set(dictionary.OBJECTS)
    assert not missing, f"add these tables/views to tasks/dictionary.py: {sorted(missing)}"
    assert all(comment == dictionary.OBJECTS[name].description for name, comment in objects.iter_rows())
    comments = query(home, "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE NOT internal")
    for table, column, comment in comments.iter_rows():
        if dictionary.OBJECTS[table].kind == "VIEW" or column in dictionary.SHARED:
            assert comment == dictionary.column_description(table, column), (table, column)


def test_the_readme_data_dictionary_is_the_generated_one():
    readme = dictionary.README.read_text()
    assert dictionary.markdown() in readme, "README data dictionary is stale: run `python -m tasks.dictionary`"
