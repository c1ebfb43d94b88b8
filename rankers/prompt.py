"""The llm ranker's prompts: a versioned listwise prompt (prompts/<version>.md) per call, its answer schema.

Per user: a compressed history (liked: the ALS evidence first, then the most recent; disliked:
strongest first; a genre profile) and the candidates, all referred to by short ids (h1.., c1..)
and fenced as JSON data inside <data>…</data> with `<` escaped. Pure functions but `contexts`
(which reads the histories).
"""

from __future__ import annotations

import json
import random
import re
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from rankers.base import grounded_explanation
from rankers.context import EMPTY_HISTORY, UserContext, histories
from tasks.settings import Settings

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
ITEM_FIELDS = ("id", "like", "explanation", "evidence")  # the answer's fields per candidate, classic order
PROFILE, PROFILE_CHARS = "profile", 400  # rationale-first prompts: the taste profile written before the ranking


class Request(NamedTuple):
    """One call of a user's ranking: the candidates it presents (indices), its messages, schema and token budget."""

    chunk: list[int]
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    max_tokens: int


@cache
def load_prompt(version: str) -> dict[str, str]:
    """The sections (system, user, repair) of prompts/<version>.md."""
    text = (PROMPTS_DIR / f"{version}.md").read_text()
    parts = re.split(r"^=== (\w+) ===\s*$", text, flags=re.MULTILINE)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2])}


def fill(template: str, **values: Any) -> str:
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", str(value))
    return template


def fence(data: dict[str, Any]) -> str:
    """JSON for inside <data>…</data>: compact, and no `<`/`>` so no title can close the fence."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")


def answer_fields(prompt: dict[str, str]) -> tuple[str, ...]:
    """The answer's fields in the order the model writes them: the prompt's `answer` section (e.g.
    "profile, id, explanation, evidence, like" for rationale first), else ITEM_FIELDS."""
    fields = tuple(name.strip() for name in prompt.get("answer", ", ".join(ITEM_FIELDS)).split(","))
    if sorted(set(fields) - {PROFILE}) != sorted(ITEM_FIELDS) or len(set(fields)) != len(fields):
        raise ValueError(f"answer section {fields}: needs each of {ITEM_FIELDS} once, optionally {PROFILE!r}")
    return fields


def ranking_schema(candidate_ids: list[str], liked_ids: list[str], max_chars: int, max_evidence: int,
                   fields: tuple[str, ...] = ITEM_FIELDS) -> dict[str, Any]:
    """The answer's JSON schema, its properties in `fields` order (a server decoding under the schema
    generates them in that order: rationale before decision). Ids are enums of the ids in the prompt, so
    such a server (llama.cpp's grammar, OpenAI strict mode) cannot invent or misspell one."""
    evidence = {"type": "string", "enum": liked_ids} if liked_ids else {"type": "string"}
    properties = {
        "id": {"type": "string", "enum": candidate_ids},
        "like": {"type": "boolean"},
        "explanation": {"type": "string", "maxLength": max_chars},
        "evidence": {"type": "array", "items": evidence, "maxItems": max_evidence if liked_ids else 0},
    }
    item_fields = [name for name in fields if name != PROFILE]
    item = {"type": "object", "properties": {name: properties[name] for name in item_fields},
            "required": item_fields, "additionalProperties": False}
    answer = {PROFILE: {"type": "string", "maxLength": PROFILE_CHARS},
              "ranking": {"type": "array", "items": item, "maxItems": len(candidate_ids)}}
    top = [name for name in fields if name == PROFILE] + ["ranking"]
    return {"type": "object", "properties": {name: answer[name] for name in top}, "required": top, "additionalProperties": False}


def presentation_orders(n: int, user_id: int, settings: Settings) -> list[list[int]]:
    """The candidate orders (indices, ALS order = identity) one user's prompts present: the first is ALS
    order or the llm_shuffle_seed shuffle; llm_permutations - 1 more seeded shuffles against position bias."""
    orders = []
    for permutation in range(settings.llm_permutations):
        order = list(range(n))
        seed = settings.llm_shuffle_seed
        if permutation:
            random.Random(f"{seed or 0}:{user_id}:{permutation}").shuffle(order)
        elif seed is not None:
            random.Random(f"{seed}:{user_id}").shuffle(order)
        orders.append(order)
    return orders


def user_context(user_id: int, frame: pl.DataFrame, history: dict | None, settings: Settings) -> UserContext:
    """One user's context from their candidates (ALS order, with als_explanation) and history (None: empty)."""
    history = history or EMPTY_HISTORY
    liked = {f"h{n + 1}": entry for n, entry in enumerate(history["liked"])}
    disliked = {f"h{len(liked) + n + 1}": entry for n, entry in enumerate(history["disliked"])}
    rows = frame.to_dicts()
    return UserContext(user_id, rows, liked, disliked, history["n_liked"], history["n_disliked"],
                       list(history["top_genres"] or []), list(history["recipe_titles"] or []),
                       presentation_orders(len(rows), user_id, settings))


def with_als_explanation(candidates: pl.DataFrame) -> pl.DataFrame:
    """Candidates in ALS order per user, each with its grounded ALS explanation (the fallback)."""
    return candidates.sort("user_id", "als_rank").with_columns(als_explanation=grounded_explanation())


def contexts(con, candidates: pl.DataFrame, settings: Settings) -> list[UserContext]:
    """Every user's prompt context (candidates: rank/batch_candidates rows)."""
    candidates = with_als_explanation(candidates)
    history = histories(con, candidates["user_id"].unique().to_list(), settings)
    return [user_context(uid, frame, history.get(uid), settings)
            for (uid,), frame in candidates.partition_by("user_id", maintain_order=True, as_dict=True).items()]


def chunks(context: UserContext, settings: Settings) -> list[list[int]]:
    """The candidates of each call: every permutation cut into llm_candidates_per_call pieces."""
    size = settings.llm_candidates_per_call or len(context.candidates) or 1
    return [order[i : i + size] for order in context.orders for i in range(0, len(order), size)]


def prompt_data(context: UserContext, chunk: list[int]) -> str:
    """Every catalogue-derived string of the prompt (genres, titles), fenced: nothing of the catalogue goes elsewhere."""
    return fence({
        "top_genres": context.genres,
        "liked": [{"id": h, "title": e["title"]} for h, e in context.liked.items()],
        "disliked": [{"id": h, "title": e["title"]} for h, e in context.disliked.items()],
        "candidates": [{"id": context.cid(i), "title": context.candidates[i]["title"]} for i in chunk],
    })


def messages(prompt: dict[str, str], context: UserContext, chunk: list[int], settings: Settings) -> list[dict[str, str]]:
    s = settings
    system = fill(prompt["system"], max_chars=s.llm_explanation_chars, max_evidence=s.evidence_items)
    user = fill(prompt["user"], n_liked=context.n_liked, n_disliked=context.n_disliked, n_candidates=len(chunk),
                data=prompt_data(context, chunk))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def repair_messages(prompt: dict[str, str], request: Request, answer: str, reason: str, context: UserContext) -> list[dict[str, str]]:
    """The one repair retry: the request, the unusable answer (first 2000 characters) and the repair prompt."""
    repair = fill(prompt["repair"], reason=reason, data=prompt_data(context, request.chunk))
    return [*request.messages, {"role": "assistant", "content": answer[:2000]}, {"role": "user", "content": repair}]


def requests(context: UserContext, settings: Settings) -> list[Request]:
    """Each call this user's ranking needs, with the prompt of settings.llm_prompt_version."""
    s = settings
    prompt = load_prompt(s.llm_prompt_version)
    fields = answer_fields(prompt)
    out = []
    for chunk in chunks(context, s):
        schema = ranking_schema([context.cid(i) for i in chunk], list(context.liked), s.llm_explanation_chars,
                                s.evidence_items, fields)
        profile = PROFILE_CHARS if PROFILE in fields else 0
        max_tokens = 64 + -(-(profile + len(chunk) * (s.llm_explanation_chars + 60 + 8 * s.evidence_items)) // 4)
        out.append(Request(chunk, messages(prompt, context, chunk, s), schema, max_tokens))
    return out
