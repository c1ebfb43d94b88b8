"""Train and candidates: metrics, promotion, grounded evidence, unseen candidates."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest

from conftest import RUN_DATE
from evaluation.metrics import ranking_metrics
from tasks import db
from tasks.candidates import build_candidates, explain_batch, select_evidence
from tasks.ingest import ingest_source, resolve_source
from tasks.settings import Settings
from tasks.train import PAD, latest_ratings, load_interactions, load_model, popular_topk, promotion_decision, to_matrices, train_model


@pytest.fixture
def ingested(settings, con):
    ingest_source(con, resolve_source(settings))
    return con


def test_ranking_metrics_follow_their_definitions():
    hits = np.array([[True, False, True], [False, False, False]])
    metrics = ranking_metrics(hits, n_relevant=np.array([2, 1]), cutoffs=(3,))
    value = dict(zip(metrics["metric"], metrics["value"]))

    assert value["precision"] == pytest.approx((2 / 3 + 0) / 2)
    assert value["recall"] == pytest.approx((1 + 0) / 2)
    dcg = 1 + 1 / np.log2(4)
    assert value["dcg"] == pytest.approx(dcg / 2)
    assert value["ndcg"] == pytest.approx(dcg / (1 + 1 / np.log2(3)) / 2)
    assert value["map"] == pytest.approx((1 + 2 / 3) / 2 / 2)


def test_promotion_keeps_the_current_model_when_the_new_one_is_worse():
    assert promotion_decision(0.20, None, 0.01)[0]
    assert promotion_decision(0.195, ("v1", 0.20), 0.01)[0]
    promoted, decision = promotion_decision(0.10, ("v1", 0.20), 0.01)
    assert not promoted and decision.startswith("kept v1")


def test_training_on_the_default_dataset_saves_a_model_that_beats_popularity(tmp_path):
    settings = Settings(home=tmp_path, run_date=RUN_DATE)  # the default generated size
    with db.connect(settings) as con:
        ingest_source(con, resolve_source(settings))
        result = train_model(con, settings)
        stored = db.run(con, "train/find_model", {"model_version": result.model_version})

    assert result.promoted and result.serving_version == result.model_version
    assert (settings.models_dir / result.model_version / "als.npz").exists()
    ndcg = result.metrics.filter(metric="ndcg", k=10)
    als, popularity = (ndcg.filter(method=m)["value"].item() for m in ("als", "popularity"))
    print(f"NDCG@10 ALS {als:.3f} vs popularity {popularity:.3f}")
    assert als > 1.2 * popularity
    assert set(result.metrics["k"]) == {5, 10, 15, 20}
    assert stored[0][1] is True


def test_rerun_of_the_same_night_resumes(settings, ingested):
    first = train_model(ingested, settings)
    again = train_model(ingested, settings)
    assert again.resumed and again.model_version == first.model_version


def test_a_rerun_whose_model_directory_was_deleted_trains_it_again(settings, ingested):
    first = train_model(ingested, settings)
    shutil.rmtree(settings.models_dir / first.model_version)
    again = train_model(ingested, settings)
    assert not again.resumed and again.serving_version == first.model_version
    assert (settings.models_dir / first.model_version / "als.npz").exists()


def test_a_model_worse_than_the_current_one_is_not_promoted(settings, ingested):
    ingested.execute(
        "INSERT INTO model_runs VALUES ('excellent', '2026-11-01', '2026-11-01', '{}', 1, 1, 1, 0.99, true, 'test')"
    )
    (settings.models_dir / "excellent").mkdir(parents=True)
    (settings.models_dir / "excellent" / "als.npz").touch()  # its directory exists: it can serve
    result = train_model(ingested, settings)

    assert not result.promoted
    assert result.serving_version == "excellent"
    assert result.decision.startswith("kept excellent")


def test_batched_explanations_equal_implicits_explain(settings, ingested):
    version = train_model(ingested, settings).serving_version
    model, users, items = load_model(settings.models_dir / version)
    data = to_matrices(latest_ratings(ingested, settings.like_threshold), users, items, settings.als_alpha)
    user_rows = np.array([0, 3, 7])
    ids, _ = model.recommend(user_rows, data.seen[user_rows], N=5, filter_already_liked_items=True)

    evidence, strength = explain_batch(model, data.likes, user_rows, ids, top=3)

    for n, user in enumerate(user_rows):
        for j, item in enumerate(ids[n]):
            _, contributions, _ = model.explain(int(user), data.likes, int(item), N=3)
            expected = [(int(i), score) for i, score in contributions if score > 0]
            assert evidence[n, j, : len(expected)].tolist() == [i for i, _ in expected]
            assert np.allclose(strength[n, j, : len(expected)], [score for _, score in expected], rtol=1e-3, atol=1e-6)


def test_evidence_varies_only_among_close_contributors_and_drops_weak_ones():
    # one user, four candidates in ALS order; history items 10, 11, 12 with these contributions
    evidence = np.array([[[10, 11, 12], [10, 11, 12], [10, 11, 12], [10, 12, -1]]])
    strength = np.array([[[1.0, 0.9, 0.2], [1.0, 0.95, 0.6], [1.0, 0.5, 0.4], [1.0, 0.85, 0.0]]])

    chosen = select_evidence(evidence, strength, min_share=0.5, closeness=0.8)

    assert chosen[0].tolist() == [
        [10, 11, -1],  # 12 moved the score by a fifth of 10's contribution: not cited
        [11, 10, 12],  # 11 is as strong as 10 (within 0.8) and not used yet: it leads
        [10, 11, -1],  # 11 is clearly weaker here: the strongest leads whatever was cited before; 12 (0.4) dropped
        [12, 10, -1],  # 10 and 11 have led already, 12 is close and has not
    ]
    cited = {int(i) for i in chosen.ravel() if i >= 0}
    assert cited <= {int(i) for i in evidence.ravel() if i >= 0}, "only items that drove a score are cited"


def test_a_users_list_leads_with_more_than_one_history_item(settings, ingested):
    version = train_model(ingested, settings).serving_version
    frame = build_candidates(ingested, settings, version).filter(source="als")
    leads = frame.group_by("user_id").agg(pl.col("evidence_item_ids").list.first().n_unique().alias("leads"))
    assert leads["leads"].mean() > 1.5, "explanations of a user's candidates do not all lead with one item"


def test_candidates_are_unseen_grounded_and_cover_every_user(settings, ingested):
    # a user whose only rating is a dislike gets popular items
    ingested.execute("INSERT INTO interactions VALUES (999999, 1, 1.0, '2020-01-01', now())")
    version = train_model(ingested, settings).serving_version
    frame = build_candidates(ingested, settings, version)

    seen = latest_ratings(ingested, settings.like_threshold).select("user_id", "item_id")
    assert frame.join(seen, on=["user_id", "item_id"]).height == 0, "no candidate was seen before"
    per_user = frame.group_by("user_id").agg(n=pl.len(), distinct=pl.col("item_id").n_unique())
    all_users = seen["user_id"].n_unique()
    assert per_user.height == all_users
    assert (per_user["n"] == settings.n_candidates).all() and (per_user["distinct"] == per_user["n"]).all()

    cold = frame.filter(user_id=999999)
    assert set(cold["source"]) == {"popular"} and cold["evidence_item_ids"].list.len().max() == 0

    liked = ingested.sql("SELECT user_id, item_id FROM likes($t)", params={"t": settings.like_threshold}).pl()
    cited = frame.filter(source="als").explode("evidence_item_ids").drop_nulls("evidence_item_ids")
    outside = cited.join(liked, left_on=["user_id", "evidence_item_ids"], right_on=["user_id", "item_id"], how="anti")
    assert cited.height > 0 and outside.height == 0, "evidence is always the user's own liked items"


def test_a_like_taken_back_is_no_like_in_popularity_training_or_history(settings, con):
    """One definition of a like (latest_ratings in sql/schema.sql): user 1 rated item 10 with 5, later with 1."""
    con.execute("""
        INSERT INTO catalog VALUES (10, 'Retracted (1990)', ['Drama'], 1990, 't'), (20, 'Kept (1991)', ['Drama'], 1991, 't');
        INSERT INTO interactions VALUES
            (1, 10, 5.0, '2020-01-01', now()), (1, 10, 1.0, '2020-02-01', now()),
            (1, 20, 5.0, '2020-01-01', now()), (2, 20, 5.0, '2020-01-01', now())
    """)
    threshold = {"like_threshold": settings.like_threshold}

    popularity = dict(db.frame(con, "candidates/popularity", threshold).iter_rows())
    assert popularity == {10: 0, 20: 2}, "a superseded rating is not counted"

    data = load_interactions(con, settings.like_threshold, settings.als_alpha)
    liked_pairs = {(data.user_ids[u], data.item_ids[i]) for u, i in zip(*data.likes.nonzero())}
    assert liked_pairs == {(1, 20), (2, 20)} and data.seen.nnz == 3

    history = db.frame(con, "llm/history", threshold | {"run_date": RUN_DATE, "user_ids": [1], "max_liked": 8, "max_disliked": 3})
    assert [h["item_id"] for h in history["liked"][0]] == [20]
    assert [h["item_id"] for h in history["disliked"][0]] == [10]
    assert con.sql("SELECT * FROM likes(3) ORDER BY ALL").fetchall() == [(1, 20), (2, 20)]


@pytest.mark.parametrize("block_cells", [1, 7, 1 << 22])
def test_popular_topk_lists_the_most_popular_unseen_items_in_order_whatever_the_block_size(block_cells):
    import scipy.sparse as sp

    rng = np.random.default_rng(3)
    for case in range(25):
        users, items, n = int(rng.integers(1, 40)), int(rng.integers(1, 30)), int(rng.integers(1, 12))
        seen = sp.random(users, items, density=rng.random(), format="csr", random_state=case)
        popularity = rng.integers(0, 4, items).astype(float)  # ties: the lower item row first
        order = np.argsort(-popularity, kind="stable")
        dense = seen.toarray() > 0
        expected = np.full((users, n), PAD, dtype=np.int64)
        for user in range(users):
            unseen = [item for item in order if not dense[user, item]][:n]
            expected[user, : len(unseen)] = unseen
        np.testing.assert_array_equal(popular_topk(popularity, seen, n, block_cells), expected)
