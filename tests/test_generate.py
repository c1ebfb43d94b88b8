"""The built-in generated dataset: shape, determinism, realism and collaborative-filtering signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from implicit.evaluation import ranking_metrics_at_k, train_test_split
from polars.testing import assert_frame_equal
from threadpoolctl import threadpool_limits

from tasks.generate import MIN_RATINGS_PER_USER, generate_dataset, write_dataset

SMALL = {"n_users": 200, "n_items": 400, "n_ratings": 8_000}
K = 10


@pytest.fixture(scope="module")
def default_dataset() -> tuple[pl.DataFrame, pl.DataFrame]:
    return generate_dataset()


def test_same_seed_same_frames_other_seed_other_frames() -> None:
    catalog, ratings = generate_dataset(**SMALL, seed=3)
    again_catalog, again_ratings = generate_dataset(**SMALL, seed=3)
    other_catalog, other_ratings = generate_dataset(**SMALL, seed=4)
    assert_frame_equal(catalog, again_catalog)
    assert_frame_equal(ratings, again_ratings)
    assert not catalog.equals(other_catalog)
    assert not ratings.equals(other_ratings)


def test_catalog_shape_dtypes_and_ranges(default_dataset: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    catalog, _ = default_dataset
    assert catalog.schema == pl.Schema(
        {"item_id": pl.Int64, "title": pl.Utf8, "genres": pl.List(pl.Utf8), "year": pl.Int32}
    )
    assert catalog["item_id"].to_list() == list(range(1, 2_001))
    assert catalog["title"].n_unique() == catalog.height
    assert catalog.select(pl.col("title").str.ends_with(pl.format(" ({})", "year")).all()).item()
    assert catalog["year"].min() >= 1950 and catalog["year"].max() <= 2024
    genre_counts = catalog["genres"].list.len()
    assert genre_counts.min() >= 1 and genre_counts.max() <= 3
    assert catalog["genres"].list.n_unique().equals(genre_counts)
    assert 12 <= catalog["genres"].explode().n_unique() <= 20


def test_ratings_shape_dtypes_and_ranges(default_dataset: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, ratings = default_dataset
    assert ratings.schema == pl.Schema(
        {"user_id": pl.Int64, "item_id": pl.Int64, "rating": pl.Int64, "timestamp": pl.Int64}
    )
    assert ratings.height == 100_000
    assert ratings["user_id"].min() == 1 and ratings["user_id"].max() == 1_000
    assert ratings["item_id"].min() >= 1 and ratings["item_id"].max() <= 2_000
    assert set(ratings["rating"].unique()) == {1, 2, 3, 4, 5}
    assert 3.3 <= ratings["rating"].mean() <= 3.8
    assert 0.35 <= (ratings["rating"] > 3).mean() <= 0.65
    assert not ratings.select("user_id", "item_id").is_duplicated().any()


def test_every_user_has_a_few_ratings_and_activity_is_long_tailed(
    default_dataset: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    _, ratings = default_dataset
    per_user = ratings.group_by("user_id").len()["len"]
    assert per_user.len() == 1_000
    assert per_user.min() >= MIN_RATINGS_PER_USER
    assert per_user.max() > 5 * per_user.median()


def test_item_popularity_is_long_tailed(default_dataset: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, ratings = default_dataset
    per_item = ratings.group_by("item_id").len()["len"].sort(descending=True)
    assert per_item.head(20).sum() / ratings.height > 0.05  # top 1 % of items


def test_timestamps_span_years_and_follow_releases(default_dataset: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    catalog, ratings = default_dataset
    dates = pl.from_epoch(ratings["timestamp"])
    assert dates.dt.year().n_unique() >= 3
    rated_years = ratings.join(catalog, on="item_id").select(pl.from_epoch("timestamp").dt.year() >= pl.col("year"))
    assert rated_years.to_series().all()
    assert ratings.select((pl.col("timestamp").diff().over("user_id").fill_null(0) >= 0).all()).item()


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="n_ratings"):
        generate_dataset(n_users=100, n_items=50, n_ratings=100)


def _likes(ratings: pl.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    likes = ratings.filter(pl.col("rating") > 3)
    rows, cols = likes["user_id"].to_numpy() - 1, likes["item_id"].to_numpy() - 1
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))


def _popularity_ndcg(train: sp.csr_matrix, test: sp.csr_matrix) -> float:
    """NDCG@K of recommending the K most liked unseen train items, as implicit computes it."""
    users = np.flatnonzero(np.diff(test.indptr))
    scores = np.tile(np.asarray(train.sum(axis=0), dtype=float).ravel(), (len(users), 1))
    scores[train[users].toarray() > 0] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    hits = np.take_along_axis(test[users].toarray() > 0, top, axis=1)
    discount = 1 / np.log2(np.arange(2, K + 2))
    ideal = np.cumsum(discount)[np.minimum(np.diff(test.indptr)[users], K) - 1]
    return float(((hits * discount).sum(axis=1) / ideal).mean())


def test_als_beats_popularity_clearly(default_dataset: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, ratings = default_dataset
    train, test = train_test_split(_likes(ratings, 1_000, 2_000), train_percentage=0.9, random_state=0)
    with threadpool_limits(1, "blas"):  # implicit's ALS is slow with a threaded BLAS
        model = AlternatingLeastSquares(factors=32, iterations=15, regularization=0.05, random_state=0)
        model.fit(train, show_progress=False)
    als = ranking_metrics_at_k(model, train, test, K=K, show_progress=False)["ndcg"]
    popularity = _popularity_ndcg(train, test)
    print(f"NDCG@{K}: ALS {als:.4f}, popularity {popularity:.4f}, ratio {als / popularity:.2f}")
    assert 0.1 <= als <= 0.5
    assert popularity >= 0.03  # still a meaningful baseline
    assert als >= 1.3 * popularity


def test_write_dataset_round_trips(tmp_path: Path) -> None:
    interactions_path, catalog_path = write_dataset(tmp_path / "built-in", **SMALL, seed=5)
    catalog, ratings = generate_dataset(**SMALL, seed=5)
    assert interactions_path.read_text().splitlines()[0] == "user_id,item_id,rating,timestamp"
    assert catalog_path.read_text().splitlines()[0] == "item_id,title,genres"
    assert_frame_equal(pl.read_csv(interactions_path), ratings)
    written = pl.read_csv(catalog_path).with_columns(pl.col("genres").str.split("|"))
    assert_frame_equal(written, catalog.drop("year"))
