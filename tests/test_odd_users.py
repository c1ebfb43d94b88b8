"""Odd users and tiny catalogues through the real nightly flow (issue 12 §1, §3, §4; issue 11 §5):
any integer id is a normal item, users get only real unseen items, long titles stay bounded,
and a lost model directory does not stop a night."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from conftest import RUN_DATE
from flows.nightly import nightly
from flows.parameters import RunParameters
from odd_data import one_user_dataset, write_catalog, write_ratings
from tasks.publish import partition_dir

pytestmark = pytest.mark.usefixtures("prefect_server")

LONG_TITLE = "A" * 20_000


def run_night(home: Path, data: Path, catalog: Path | None = None, run_date=RUN_DATE) -> pl.DataFrame:
    """One real nightly run; the published partition."""
    nightly(RunParameters(home=home, data=data, catalog=catalog, run_date=run_date))
    return pl.read_parquet(partition_dir(home / "recommendations", run_date) / "data.parquet")


def history(home: Path) -> pl.DataFrame:
    with duckdb.connect(str(home / "recs.duckdb"), read_only=True) as con:
        return con.sql("SELECT user_id, item_id FROM interactions").pl()


def odd_dataset(tmp_path: Path) -> tuple[Path, Path, dict[str, int]]:
    """200 users over items -40..59 (so -2, -1 and 0 are ordinary items); items -1 and -2 liked by the
    same users; a user who has seen every item; one with 3 unseen items; a 20,000-character title."""
    rng = np.random.default_rng(7)
    items = np.arange(-40, 60)
    users, rated, ratings = [], [], []
    for user in range(1, 201):
        chosen = rng.choice(items[items > 0], size=15, replace=False)
        users += [user] * 15
        rated += chosen.tolist()
        ratings += rng.choice([2.0, 4.0, 5.0], size=15).tolist()
        if user % 4 == 0:  # items -1 and -2: equally popular, the same likers
            users += [user, user]
            rated += [-1, -2]
            ratings += [5.0, 5.0]
    special = {"seen_all": 9001, "three_unseen": 9002}
    users += [special["seen_all"]] * len(items) + [special["three_unseen"]] * (len(items) - 3)
    rated += items.tolist() + items[3:].tolist()
    ratings += [4.0] * (2 * len(items) - 3)
    titles = [LONG_TITLE if i == 1 else f"Film {i} (1999)" for i in items]
    data = write_ratings(tmp_path / "ratings.csv", users, rated, ratings)
    return data, write_catalog(tmp_path / "movies.csv", items, titles), special


def test_any_integer_id_is_an_item_users_get_only_unseen_items_and_long_titles_stay_bounded(tmp_path):
    data, catalog, special = odd_dataset(tmp_path)
    home = tmp_path / "home"
    recs = run_night(home, data, catalog)
    seen = history(home)
    with duckdb.connect(str(home / "recs.duckdb"), read_only=True) as con:
        candidates = con.sql("SELECT user_id, item_id, evidence_item_ids FROM candidates").pl()

    assert recs.join(seen, on=["user_id", "item_id"]).is_empty(), "never an already-seen item"
    per_user = dict(recs.group_by("user_id").len().iter_rows())
    assert special["seen_all"] not in per_user, "a user who has seen every item gets no rows"
    assert per_user[special["three_unseen"]] == 3
    assert set(recs.filter(user_id=special["three_unseen"])["item_id"]) == {-40, -39, -38}
    assert sum(n == 10 for n in per_user.values()) >= 195

    def counts(item: int) -> tuple[int, int, int]:
        cited = candidates.explode("evidence_item_ids")["evidence_item_ids"] == item
        return candidates.filter(item_id=item).height, recs.filter(item_id=item).height, int(cited.sum())

    minus_one, minus_two = counts(-1), counts(-2)
    print(f"item -1: candidates/recommendations/citations {minus_one}; item -2: {minus_two}")
    assert min(minus_two) > 0
    for one, two in zip(minus_one, minus_two):
        assert 0.5 * two <= one <= 2 * two, (minus_one, minus_two)

    citing_long = recs.filter(pl.col("evidence_item_ids").list.contains(1))
    assert citing_long.height > 0
    assert citing_long["explanation"].str.len_chars().max() <= 500
    assert citing_long["explanation"].str.contains("AAAA…").all()


def test_one_user_with_one_item_publishes_the_rest_of_the_catalogue(tmp_path):
    data = write_ratings(tmp_path / "one.csv", [7], [3], [5.0])
    catalog = write_catalog(tmp_path / "movies.csv", [3, 4, 5])
    recs = run_night(tmp_path / "home", data, catalog)
    assert sorted(recs["item_id"]) == [4, 5] and sorted(recs["rank"]) == [1, 2]
    assert set(recs["ranker"]) == {"als"} and (recs["explanation"].str.len_chars() > 0).all()


def test_a_hundred_thousand_rows_of_one_user_publish(tmp_path):
    """The suite's size; bench/one_user.py runs the same case with 1,000,000 rows."""
    data, catalog = one_user_dataset(tmp_path, 100_000)
    recs = run_night(tmp_path / "home", data, catalog)
    assert recs["user_id"].unique().to_list() == [1]
    assert recs.height == 10 and set(recs["item_id"]) <= set(range(2_001, 2_051)), "only unseen catalogue items"


def test_a_night_that_would_keep_a_model_whose_directory_was_deleted_trains_instead(tmp_path):
    data, catalog, _ = odd_dataset(tmp_path)
    home = tmp_path / "home"
    first = run_night(home, data, catalog)
    with duckdb.connect(str(home / "recs.duckdb")) as con:  # so good that the next night's model is not promoted
        con.execute("UPDATE model_runs SET ndcg_at_10 = 0.99")
    shutil.rmtree(home / "models")

    second = run_night(home, data, catalog, run_date=RUN_DATE + timedelta(days=1))
    assert second.height == first.height
    assert second["model_version"].unique().to_list() == [path.name for path in (home / "models").iterdir()]
