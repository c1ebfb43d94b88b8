"""One user's prompt context: the candidates, the compressed history and the short ids (h1.., c1..)
that map the model's answer back to items. The base of the llm ranker's prompt, answer and blend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks import db
from tasks.settings import Settings

Pick = tuple[int, bool, str | None, list[int]]  # one answered candidate: index, like, explanation or None, evidence item ids
EMPTY_HISTORY = {"liked": [], "disliked": [], "n_liked": 0, "n_disliked": 0, "top_genres": [], "recipe_titles": []}


@dataclass
class UserContext:
    """One user's prompt data and the maps from short ids back to items."""

    user_id: int
    candidates: list[dict[str, Any]]  # ALS order, with als_explanation
    liked: dict[str, dict[str, Any]]  # h-id -> {item_id, title}
    disliked: dict[str, dict[str, Any]]
    n_liked: int
    n_disliked: int
    genres: list[str]
    recipe_titles: list[str]
    orders: list[list[int]]  # presentation orders (indices into candidates), one per permutation

    def cid(self, index: int) -> str:
        return f"c{index + 1}"


def histories(con, user_ids: list[int], settings: Settings) -> dict[int, dict]:
    """Each user's compressed history (sql/llm/history.sql), by user id."""
    s = settings
    history = db.frame(con, "llm/history", {
        "run_date": s.run_date, "user_ids": user_ids, "like_threshold": s.like_threshold,
        "max_liked": s.llm_history_liked, "max_disliked": s.llm_history_disliked,
    })
    return {row["user_id"]: row for row in history.iter_rows(named=True)}
