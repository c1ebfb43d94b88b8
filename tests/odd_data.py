"""Generated input files for the odd-user cases (tests/test_odd_users.py, bench/one_user.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

EPOCH = 1_577_836_800  # 2020-01-01, inside the input checks' plausible range


def write_ratings(path: Path, users, items, ratings) -> Path:
    """An interactions CSV (user_id,item_id,rating,timestamp), one second apart."""
    pl.DataFrame({
        "user_id": np.asarray(users, dtype=np.int64),
        "item_id": np.asarray(items, dtype=np.int64),
        "rating": np.asarray(ratings, dtype=np.float64),
        "timestamp": EPOCH + np.arange(len(users)),
    }).write_csv(path)
    return path


def write_catalog(path: Path, item_ids, titles: list[str] | None = None, genres: str = "Drama") -> Path:
    """A catalogue CSV (item_id,title,genres), every item with the same `|`-separated genres."""
    ids = [int(i) for i in item_ids]
    pl.DataFrame({"item_id": ids, "title": titles or [f"Film {i} (1999)" for i in ids], "genres": [genres] * len(ids)}).write_csv(path)
    return path


def one_user_dataset(directory: Path, rows: int, rated_items: int = 2_000, catalogue: int = 2_050) -> tuple[Path, Path]:
    """`rows` ratings (likes and dislikes) of user 1 over items 1..rated_items; a catalogue of items 1..catalogue."""
    rng = np.random.default_rng(3)
    items = rng.integers(1, rated_items + 1, size=rows)
    data = write_ratings(directory / "one_user.csv", np.ones(rows), items, rng.choice([1.0, 5.0], size=rows))
    return data, write_catalog(directory / "movies.csv", range(1, catalogue + 1))
