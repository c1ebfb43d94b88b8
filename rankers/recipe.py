"""The prompt-size baseline: the original MF + LLM recipe's prompt tokens for the same user (up to 300
history titles, candidates in 3 calls of 10), recorded per user (llm_users.recipe_tokens_est) and
compared side by side with the ranker's own prompts (bench/llm_throughput.py)."""

from __future__ import annotations

import polars as pl

from rankers.context import UserContext
from rankers.prompt import contexts, fill, load_prompt, requests
from tasks.llm_client import estimate_tokens
from tasks.settings import Settings

RECIPE_HISTORY = 300  # the original recipe: up to 300 history titles ...
RECIPE_CALLS, RECIPE_PER_CALL = 3, 10  # ... and candidates in 3 calls of 10
RECIPE_PROMPT = "rank_v1"  # ... with the first prompt's instructions (a fixed baseline for every version)


def recipe_tokens(context: UserContext, settings: Settings) -> int:
    """chars/4 of the original recipe: up to 300 history titles, candidates in 3 calls of 10."""
    system = fill(load_prompt(RECIPE_PROMPT)["system"], max_chars=settings.llm_explanation_chars,
                  max_evidence=settings.evidence_items)
    history = "\n".join(context.recipe_titles[:RECIPE_HISTORY])
    titles = [c["title"] for c in context.candidates[: RECIPE_CALLS * RECIPE_PER_CALL]]
    total = 0
    for start in range(0, len(titles), RECIPE_PER_CALL):
        batch = "\n".join(f"c{n + 1}: {t}" for n, t in enumerate(titles[start : start + RECIPE_PER_CALL]))
        total += estimate_tokens(f"{system}\nThe user watched:\n{history}\nRank these candidates:\n{batch}")
    return total


def prompt_tokens(context: UserContext, settings: Settings) -> int:
    """chars/4 of every message the ranker sends for this user (first attempts)."""
    return sum(estimate_tokens(m["content"]) for r in requests(context, settings) for m in r.messages)


def prompt_sizes(con, candidates: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Per user: estimated prompt tokens (chars/4) of the llm ranker vs the original recipe."""
    rows = [{"user_id": c.user_id, "prompt_tokens_est": prompt_tokens(c, settings),
             "recipe_tokens_est": recipe_tokens(c, settings)} for c in contexts(con, candidates, settings)]
    return pl.DataFrame(rows, schema={"user_id": pl.Int64, "prompt_tokens_est": pl.Int64, "recipe_tokens_est": pl.Int64})
