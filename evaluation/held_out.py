"""Rank held-out users with the real LlmRanker (rankers/llm.py), as production ranks everyone.

A holdout (tasks/train.py) hides some likes from a model; its candidates of some test users go into
a DuckDB file that holds the catalogue and only the pairs that model may know, so the ranker reads
candidates, titles, evidence and history exactly as in a nightly run (limits, cache, accounting
included) without ever seeing a held-out pair. Used by the nightly LLM gate (tasks/gate.py) and by
the offline evaluation's LLM rows (evaluation/compare.py).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from evaluation.metrics import hit_matrix, per_user_metrics
from rankers.llm import LlmRanker
from tasks import db
from tasks.candidates import als_candidates, long_frame, store_candidates
from tasks.settings import Settings
from tasks.train import PAD, Holdout


def held_out_candidates(model, likes: sp.csr_matrix, holdout: Holdout, user_rows: np.ndarray, settings: Settings) -> pl.DataFrame:
    """Candidates (external ids, with evidence) of the given user rows from a model trained on `likes`."""
    rows, scores, evidence = als_candidates(model, likes, holdout.seen, user_rows, settings.n_candidates, settings)
    return long_frame(holdout.user_ids[user_rows], holdout.item_ids, rows, scores, evidence, "als")


def known_pairs(holdout: Holdout) -> pl.DataFrame:
    """(user_id, item_id) of every pair the holdout's model may know: all rated pairs but the held-out likes."""
    seen = holdout.seen.tocoo()
    return pl.DataFrame({"user_id": holdout.user_ids[seen.row], "item_id": holdout.item_ids[seen.col]})


def stored_candidates(con, candidates: pl.DataFrame, settings: Settings, model_version: str) -> pl.DataFrame:
    """Store `candidates` as settings.run_date's in `con` and read them back as the rank stage does."""
    store_candidates(con, candidates, settings, model_version)
    params = {"run_date": settings.run_date, "user_ids": candidates["user_id"].unique().to_list(), "max_rank": None}
    return db.frame(con, "rank/batch_candidates", params)


def rank_blends(settings: Settings, candidates: pl.DataFrame, weights: tuple[float, ...], depth: int) -> dict[float, pl.DataFrame]:
    """The LlmRanker's lists (RANKED_COLUMNS) at each blend weight, in settings.home's DuckDB file.

    The prompts do not depend on the weight: the first weight pays for the calls, the others are
    answered from the LLM cache."""
    return {w: LlmRanker(settings.model_copy(update={"llm_blend_weight": w})).rank(candidates, depth) for w in weights}


def item_rows(ranked: pl.DataFrame, holdout: Holdout, depth: int) -> np.ndarray:
    """Ranked lists (external ids) as item rows per test user of the holdout (PAD for users not ranked)."""
    out = np.full((len(holdout.users), depth), PAD, dtype=np.int64)
    ranked = ranked.filter(pl.col("rank") <= depth)
    users = np.searchsorted(holdout.users, np.searchsorted(holdout.user_ids, ranked["user_id"].to_numpy()))
    out[users, ranked["rank"].to_numpy() - 1] = np.searchsorted(holdout.item_ids, ranked["item_id"].to_numpy())
    return out


def ndcg_per_user(recommended: np.ndarray, holdout: Holdout, positions: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k of each test user at `positions` (into holdout.users) for item rows per test user."""
    hits = hit_matrix(recommended[positions, :k], holdout.test[holdout.users[positions]])
    return per_user_metrics(hits, holdout.n_relevant[positions], (k,))[("ndcg", k)]
