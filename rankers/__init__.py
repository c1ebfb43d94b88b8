"""Rankers: re-order each user's candidates and explain each pick (see rankers/base.py)."""

from __future__ import annotations

from rankers.als import AlsRanker
from rankers.base import Ranker
from rankers.llm import LlmRanker
from tasks.settings import Settings


def make_ranker(settings: Settings) -> Ranker:
    """The ranker `settings.ranker` names."""
    return LlmRanker(settings) if settings.ranker == "llm" else AlsRanker()
