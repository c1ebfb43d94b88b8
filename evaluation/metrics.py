"""Top-K ranking metrics over a whole user set, vectorised."""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

CUTOFFS = (5, 10, 15, 20)


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """hits[u, r] is True when the r-th recommendation of user row u is relevant to u (-1 pads never are)."""
    relevant = relevant.tocoo()
    relevant_keys = relevant.row.astype(np.int64) * relevant.shape[1] + relevant.col
    recommended_keys = np.arange(recommended.shape[0])[:, None] * relevant.shape[1] + recommended
    return np.isin(recommended_keys, relevant_keys) & (recommended >= 0)


def per_user_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, cutoffs: tuple[int, ...] = CUTOFFS
) -> dict[tuple[str, int], np.ndarray]:
    """Precision, recall, DCG, NDCG and MAP of each user at each cutoff, keyed (metric, k).

    `hits` is users x ranks; `n_relevant` the held-out relevant count of each user (> 0).
    """
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    values: dict[tuple[str, int], np.ndarray] = {}
    for k in cutoffs:
        top = hits[:, :k]
        n_hits = top.sum(axis=1)
        dcg = (top * discounts[:k]).sum(axis=1)
        ideal_counts = np.minimum(n_relevant, k)
        idcg = np.cumsum(discounts[:k])[ideal_counts - 1]
        precision_at_i = np.cumsum(top, axis=1) / np.arange(1, k + 1)
        values[("precision", k)] = n_hits / k
        values[("recall", k)] = n_hits / n_relevant
        values[("dcg", k)] = dcg
        values[("ndcg", k)] = dcg / idcg
        values[("map", k)] = (precision_at_i * top).sum(axis=1) / ideal_counts
    return values


def ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray, cutoffs: tuple[int, ...] = CUTOFFS) -> pl.DataFrame:
    """Mean of `per_user_metrics` over users (columns metric, k, value)."""
    return pl.DataFrame(
        [
            {"metric": metric, "k": k, "value": float(v.mean())}
            for (metric, k), v in per_user_metrics(hits, n_relevant, cutoffs).items()
        ]
    )
