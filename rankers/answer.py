"""The llm ranker's answers: parsed, validated with pydantic and repaired (pure functions of the context).

Unknown ids are dropped (counted), duplicates removed, missing candidates appended in ALS order,
citations outside the liked history stripped, and empty/overlong/ungrounded explanations (citing
an unknown id, or naming none of the liked items given as evidence) dropped, so the grounded ALS
explanation is used. An answer that cannot be used at all raises Unusable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from rankers.context import Pick, UserContext

ID_TOKEN = re.compile(r"\b([hc]\d+)\b")
FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class Unusable(Exception):
    """The answer cannot be used at all (worth one repair retry); `hallucinated_ids`: the invalid or unknown entries it held."""

    def __init__(self, reason: str, hallucinated_ids: int = 0) -> None:
        super().__init__(reason)
        self.hallucinated_ids = hallucinated_ids


class LlmItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    like: bool = True
    explanation: str = ""
    evidence: list[str] = []


@dataclass
class Repaired:
    """A usable answer: every candidate of the call once, in the answer's order, and what was repaired."""

    ordered: list[Pick]
    hallucinated_ids: int
    duplicate_ids: int
    missing_ids: int
    stripped_citations: int


def extract_json(text: str | None) -> Any:
    """The JSON in a message: as is, inside a code fence, or between the outermost braces."""
    if text is None or not text.strip():
        raise Unusable("empty answer")
    candidates = [text.strip(), *FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise Unusable("answer is not JSON")


def parse_items(content: str | None, refusal: str | None) -> list[LlmItem | None]:
    """The answer's ranking entries, validated one by one (None where an entry is invalid)."""
    if refusal and not content:
        raise Unusable("refusal")
    data = extract_json(content)
    ranking = data.get("ranking") if isinstance(data, dict) else data
    if not isinstance(ranking, list):
        raise Unusable("no ranking list")
    items: list[LlmItem | None] = []
    for entry in ranking:
        try:
            items.append(LlmItem.model_validate(entry))
        except ValidationError:
            items.append(None)
    return items


def repair_answer(context: UserContext, chunk: list[int], content: str | None, refusal: str | None,
                  max_evidence: int, max_chars: int) -> Repaired:
    """Answer -> (candidate index, like, explanation or None, evidence item ids), every chunk candidate once."""
    items = parse_items(content, refusal)
    known = {context.cid(i): i for i in chunk}
    seen: set[int] = set()
    ordered: list[Pick] = []
    hallucinated = duplicates = stripped = 0
    for item in items:
        if item is None or item.id not in known:
            hallucinated += 1
            continue
        index = known[item.id]
        if index in seen:
            duplicates += 1
            continue
        seen.add(index)
        cited = [h for h in dict.fromkeys(item.evidence) if h in context.liked]
        stripped += len(item.evidence) - len(cited)
        cited = cited[:max_evidence]
        explanation = checked_explanation(context, item.explanation, cited, max_chars)
        ordered.append((index, item.like, explanation, [context.liked[h]["item_id"] for h in cited]))
    if not ordered:
        raise Unusable("no known candidate id" if items else "empty ranking", hallucinated)
    missing = [i for i in sorted(chunk) if i not in seen]  # candidates are in ALS order
    ordered += [(i, False, None, []) for i in missing]
    return Repaired(ordered, hallucinated, duplicates, len(missing), stripped)


def checked_explanation(context: UserContext, text: str, cited: list[str], max_chars: int) -> str | None:
    """The explanation with short ids replaced by titles; None (the grounded ALS one is used) when it
    is empty, overlong, cites an unknown id, or names none of the liked items it cites as evidence."""
    text = " ".join(text.split())
    if not text or len(text) > max_chars:
        return None
    titles = {h: e["title"] for h, e in {**context.liked, **context.disliked}.items()}
    titles.update({context.cid(i): c["title"] for i, c in enumerate(context.candidates)})
    named = {match.group(1) for match in ID_TOKEN.finditer(text)}
    if not named <= titles.keys():
        return None
    if not any(h in named or titles[h].casefold() in text.casefold() for h in cited):
        return None

    out, at = [], 0
    for match in ID_TOKEN.finditer(text):
        title = titles[match.group(1)]
        out += [text[at : match.start()], title]
        at = match.end()
        echoed = f" ({title})"  # "h1 (Toy Story)" -> "Toy Story"
        if text.startswith(echoed, at):
            at += len(echoed)
    return "".join([*out, text[at:]])
