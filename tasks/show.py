"""`recs show`: one user's published list of a night, with the history items they liked most."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl
from rich.table import Table

from tasks import db
from tasks.errors import RecsError
from tasks.settings import Settings

LIKED_ITEMS = 5


class NotFound(RecsError):
    """The home, night or user asked for has nothing published."""


@dataclass(frozen=True)
class UserNight:
    user_id: int
    run_date: date
    recommendations: pl.DataFrame  # rank, title, explanation, evidence, ranker
    liked: pl.DataFrame  # title, rating, rated_on


def existing_home(settings: Settings) -> None:
    """Refuse a home without a DuckDB file (opening one would create it)."""
    if not settings.db_path.is_file():
        raise NotFound(f"no recs.duckdb in {settings.home}: run `recs run --home {settings.home}` first")


def user_night(settings: Settings, user_id: int, run_date: date | None) -> UserNight:
    """The user's list of the published night `run_date` (None: the latest) and their top liked items."""
    existing_home(settings)
    with db.connect(settings) as con:
        nights = db.run(con, "show/night", {"run_date": run_date})
        if not nights:
            raise NotFound(f"no published night {run_date} in {settings.home}" if run_date else f"nothing published in {settings.home}")
        night = nights[0][0]
        recommendations = db.frame(con, "show/list", {"run_date": night, "user_id": user_id})
        if recommendations.is_empty():
            raise NotFound(f"user {user_id} has no published list on {night}")
        liked = db.frame(con, "show/liked", {"like_threshold": settings.like_threshold, "user_id": user_id, "items": LIKED_ITEMS})
    return UserNight(user_id, night, recommendations, liked)


def render(shown: UserNight) -> tuple[Table, Table]:
    """The list as a rich table, and the liked history items as a second one."""
    recommendations = Table(title=f"user {shown.user_id} — recommendations of {shown.run_date}", show_lines=True)
    for column, justify in (("rank", "right"), ("title", "left"), ("explanation", "left"), ("evidence", "left"), ("ranker", "left")):
        recommendations.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in shown.recommendations.iter_rows(named=True):
        recommendations.add_row(str(row["rank"]), row["title"], row["explanation"], "\n".join(row["evidence"]), row["ranker"])
    liked = Table(title=f"user {shown.user_id} — top liked history")
    for column in shown.liked.columns:
        liked.add_column(column, justify="right" if column == "rating" else "left")
    for row in shown.liked.iter_rows():
        liked.add_row(*(str(value) for value in row))
    return recommendations, liked
