"""The `llm` ranker: an LLM re-orders each user's ALS candidates and explains each pick from
the user's history — repaired, blended with ALS, and never worse off than ALS.

Per user: a versioned listwise prompt (prompts/<version>.md) with a compressed history (liked:
the ALS evidence first, then the most recent; disliked: strongest first; a genre profile) and
the candidates, all referred to by short ids (h1.., c1..) and fenced as JSON data inside
<data>…</data> with `<` escaped. The answer is validated with pydantic and repaired: unknown ids
dropped (counted), duplicates removed, missing candidates appended in ALS order, citations
outside the liked history stripped, empty/overlong/ungrounded explanations (citing an unknown
id, or naming none of the liked items given as evidence) replaced by the grounded ALS
explanation. An unusable answer gets one repair retry; after that (or when the
call fails) the user gets the ALS order with ranker='als_fallback' and the reason.

Final order: liked before disliked, then a blend of the LLM position and the normalised ALS
score (`llm_blend_weight`). Accounting goes to `llm_calls` / `llm_users` and the run log.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

from tasks import db, progress, stop
from tasks.llm_client import (
    Attempt, CircuitOpen, LlmCache, LlmCallFailed, LlmClient, LlmUnavailable, estimate_tokens, redact,
)
from tasks.rank import RANKED_COLUMNS, AlsRanker, grounded_explanation
from tasks.settings import Settings

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
RECIPE_HISTORY = 300  # the original recipe: up to 300 history titles ...
RECIPE_CALLS, RECIPE_PER_CALL = 3, 10  # ... and candidates in 3 calls of 10
RECIPE_PROMPT = "rank_v1"  # ... with the first prompt's instructions (a fixed baseline for every version)
ITEM_FIELDS = ("id", "like", "explanation", "evidence")  # the answer's fields per candidate, classic order
PROFILE, PROFILE_CHARS = "profile", 400  # rationale-first prompts: the taste profile written before the ranking
ID_TOKEN = re.compile(r"\b([hc]\d+)\b")
FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)

log = logging.getLogger(__name__)
_plan_lock = threading.Lock()  # parallel rank batches of one process build a run's cap plan once
CAP_REACHED = "llm cap reached"


# ------------------------------------------------------------------ prompt


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


# ------------------------------------------------------------------ parsing


class Unusable(Exception):
    """The answer cannot be used at all (worth one repair retry)."""


class LlmItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    like: bool = True
    explanation: str = ""
    evidence: list[str] = []


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


# ------------------------------------------------------------------ per-user work


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


@dataclass
class UserStats:
    hallucinated_ids: int = 0
    duplicate_ids: int = 0
    missing_ids: int = 0
    stripped_citations: int = 0
    explanation_fallbacks: int = 0
    repair_retries: int = 0
    prompt_tokens_est: int = 0
    recipe_tokens_est: int = 0


@dataclass
class UserResult:
    rows: pl.DataFrame
    stats: UserStats
    ranker: str
    reason: str | None
    attempts: list[Attempt] = field(default_factory=list)


class LlmRanker:
    """Ranker protocol (tasks/rank.py): one batch of users' candidates -> RANKED_COLUMNS, k per user."""

    name = "llm"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prompt = load_prompt(settings.llm_prompt_version)
        self.fields = answer_fields(self.prompt)

    # -------------------------------------------------------------- entry point

    def rank(self, candidates: pl.DataFrame, k: int) -> pl.DataFrame:
        s = self.settings
        if candidates.is_empty():
            return AlsRanker().rank(candidates, k)
        candidates = candidates.sort("user_id", "als_rank").with_columns(als_explanation=grounded_explanation())
        user_ids = candidates["user_id"].unique(maintain_order=True).to_list()
        lock = threading.Lock()
        with db.connect(s) as con:
            histories = self._histories(con, user_ids)
            client = LlmClient(s, LlmCache(con, lock))
            try:
                admitted = self._admitted(con, client) if s.llm_max_users is not None else None
                groups = candidates.partition_by("user_id", maintain_order=True, as_dict=True)
                work = [(uid, groups[(uid,)], histories.get(uid)) for uid in user_ids]
                results = self._rank_all_users(client, k, work, admitted)
            finally:
                client.close()
            self._record(con, lock, user_ids, results)
            summary = db.frame(con, "llm/summary", {"run_date": s.run_date})
        self._log(results, summary)
        return pl.concat([r.rows for r in results], how="vertical_relaxed").select(RANKED_COLUMNS)

    def _rank_all_users(self, client: LlmClient, k: int, work: list[tuple], admitted: set[int] | None) -> list[UserResult]:
        """Every user of the batch on a pool of llm_concurrency threads. A stop request (Stopped) or an
        outage under llm_on_outage=fail (LlmUnavailable) cancels what is queued, waits for the running
        users (they give up within ~0.1 s) and propagates: nothing of the batch is written."""
        pool = ThreadPoolExecutor(max_workers=self.settings.llm_concurrency, thread_name_prefix="llm-rank")
        try:
            futures = [pool.submit(self._rank_and_report, client, k, *job, admitted) for job in work]
            results = [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if self.settings.llm_on_outage == "fail" and client.breaker.cause is not None:
            raise self._outage(client.breaker.cause)
        return results

    def _outage(self, cause: str) -> LlmUnavailable:
        """The failure of a run whose circuit opened under llm_on_outage=fail (noted in the stage's progress)."""
        tracker = progress.current()
        if tracker is not None:
            tracker.circuit_opened(f"llm circuit open: {cause}")
        return LlmUnavailable(f"llm circuit open: {cause} (RECS_LLM_ON_OUTAGE=fail; finished batches are kept)")

    def _rank_and_report(self, client: LlmClient, k: int, user_id: int, frame: pl.DataFrame, history: dict | None,
                         admitted: set[int] | None) -> UserResult:
        """One user, counted in the stage's progress."""
        stop.check()
        result = self._rank_user_safely(client, k, user_id, frame, history, admitted)
        tracker = progress.current()
        if tracker is not None:
            calls = sum(1 for a in result.attempts if a.outcome != "cache_hit")
            circuit = result.reason if result.reason and result.reason.startswith("llm circuit open") else None
            tracker.user_done(calls, len(result.attempts) - calls, result.ranker == "als_fallback", circuit)
        return result

    def _histories(self, con, user_ids: list[int]) -> dict[int, dict]:
        s = self.settings
        history = db.frame(con, "llm/history", {
            "run_date": s.run_date, "user_ids": user_ids, "like_threshold": s.like_threshold,
            "max_liked": s.llm_history_liked, "max_disliked": s.llm_history_disliked,
        })
        return {row["user_id"]: row for row in history.iter_rows(named=True)}

    def _contexts(self, con, candidates: pl.DataFrame) -> list[UserContext]:
        """Every user's prompt context (candidates: rank/batch_candidates rows)."""
        candidates = candidates.sort("user_id", "als_rank").with_columns(als_explanation=grounded_explanation())
        histories = self._histories(con, candidates["user_id"].unique().to_list())
        return [self._context(uid, frame, histories.get(uid))
                for (uid,), frame in candidates.partition_by("user_id", maintain_order=True, as_dict=True).items()]

    def _requests(self, context: UserContext) -> list[tuple[list[int], list[dict[str, str]], dict[str, Any], int]]:
        """(chunk, messages, schema, max_tokens) of each call this user's ranking needs."""
        s = self.settings
        out = []
        for chunk in self._chunks(context):
            schema = ranking_schema([context.cid(i) for i in chunk], list(context.liked), s.llm_explanation_chars,
                                    s.evidence_items, self.fields)
            profile = PROFILE_CHARS if PROFILE in self.fields else 0
            max_tokens = 64 + -(-(profile + len(chunk) * (s.llm_explanation_chars + 60 + 8 * s.evidence_items)) // 4)
            out.append((chunk, self._messages(context, chunk), schema, max_tokens))
        return out

    def prompt_sizes(self, con, candidates: pl.DataFrame) -> pl.DataFrame:
        """Per user: estimated prompt tokens (chars/4) of this ranker vs the original recipe."""
        rows = [{"user_id": c.user_id,
                 "prompt_tokens_est": sum(estimate_tokens(m["content"]) for _, msgs, _, _ in self._requests(c) for m in msgs),
                 "recipe_tokens_est": self.recipe_tokens(c)} for c in self._contexts(con, candidates)]
        return pl.DataFrame(rows, schema={"user_id": pl.Int64, "prompt_tokens_est": pl.Int64, "recipe_tokens_est": pl.Int64})

    # -------------------------------------------------------------- per-run cap

    def _admitted(self, con, client: LlmClient) -> set[int]:
        """Users of this run_date that may be sent to the LLM under llm_max_users (built once per run_date).

        Users whose every request is cached cost nothing and are always admitted. Of the others, at
        most llm_max_users: users never ranked by the LLM first, then those with the most candidates
        that were not among their candidates when the LLM last ranked them (sql/llm/plan_changes.sql).
        """
        s = self.settings
        params = {"run_date": s.run_date, "max_users": s.llm_max_users, "model": s.llm_model,
                  "prompt_version": s.llm_prompt_version}
        with _plan_lock:
            rows = db.run(con, "llm/plan_get", params)
            if rows:
                return {uid for uid, admitted in rows if admitted}
            changes = db.frame(con, "llm/plan_changes", {"run_date": s.run_date})
            all_candidates = db.frame(con, "rank/batch_candidates",
                                      {"run_date": s.run_date, "user_ids": changes["user_id"].to_list()})
            keys = {c.user_id: [client.key(m, schema, t) for _, m, schema, t in self._requests(c)]
                    for c in self._contexts(con, all_candidates)}
            answered = client.cache.has([key for user_keys in keys.values() for key in user_keys])
            plan = changes.with_columns(
                cached=pl.col("user_id").replace_strict(
                    {uid: all(key in answered for key in user_keys) for uid, user_keys in keys.items()},
                    default=False, return_dtype=pl.Boolean))
            with db.transaction(con):
                db.run(con, "llm/plan_delete", {"run_date": s.run_date})
                with db.registered(con, "new_llm_plan", plan):
                    db.run(con, "llm/plan_put", params)
            rows = db.run(con, "llm/plan_get", params)
        admitted = {uid for uid, ok in rows if ok}
        run_logger().info("llm cap: %d of %d users admitted (%d cached, at most %d uncached sent)", len(admitted),
                          len(rows), int(plan["cached"].sum()), s.llm_max_users)
        return admitted

    # -------------------------------------------------------------- one user

    def _rank_user_safely(self, client: LlmClient, k: int, user_id: int, frame: pl.DataFrame, history: dict | None,
                          admitted: set[int] | None = None) -> UserResult:
        """Never raises: whatever goes wrong, the user gets the ALS order and the reason."""
        stats, attempts = UserStats(), []
        try:
            context = self._context(user_id, frame, history)
            if admitted is not None and user_id not in admitted:
                keys = [client.key(m, schema, t) for _, m, schema, t in self._requests(context)]
                if len(client.cache.has(keys)) < len(keys):
                    return self._fallback(frame, k, CAP_REACHED, stats, attempts)
            return self._rank_user(client, k, context, frame, stats, attempts)
        except stop.Stopped:
            raise
        except CircuitOpen as failure:
            if self.settings.llm_on_outage == "fail":
                raise self._outage(failure.reason.removeprefix("llm circuit open: ")) from None
            attempts.extend(failure.attempts)
            return self._fallback(frame, k, failure.reason, stats, attempts)
        except LlmCallFailed as failure:
            attempts.extend(failure.attempts)
            return self._fallback(frame, k, f"llm call failed: {failure.reason}", stats, attempts)
        except Unusable as unusable:
            return self._fallback(frame, k, f"unusable answer after repair: {unusable}", stats, attempts)
        except Exception as error:  # a bug must not lose the user; the reason says what happened
            log.exception("llm ranker: user %s fell back to ALS", user_id)
            return self._fallback(frame, k, f"internal error: {type(error).__name__}", stats, attempts)

    def _context(self, user_id: int, frame: pl.DataFrame, history: dict | None) -> UserContext:
        history = history or {"liked": [], "disliked": [], "n_liked": 0, "n_disliked": 0, "top_genres": [], "recipe_titles": []}
        liked = {f"h{n + 1}": entry for n, entry in enumerate(history["liked"])}
        disliked = {f"h{len(liked) + n + 1}": entry for n, entry in enumerate(history["disliked"])}
        rows = frame.to_dicts()
        return UserContext(user_id, rows, liked, disliked, history["n_liked"], history["n_disliked"],
                           list(history["top_genres"] or []), list(history["recipe_titles"] or []),
                           presentation_orders(len(rows), user_id, self.settings))

    def _chunks(self, context: UserContext) -> list[list[int]]:
        """The candidates of each call: every permutation cut into llm_candidates_per_call pieces."""
        size = self.settings.llm_candidates_per_call or len(context.candidates) or 1
        return [order[i : i + size] for order in context.orders for i in range(0, len(order), size)]

    def _data(self, context: UserContext, chunk: list[int]) -> str:
        """Every catalogue-derived string of the prompt (genres, titles), fenced: nothing of the catalogue goes elsewhere."""
        return fence({
            "top_genres": context.genres,
            "liked": [{"id": h, "title": e["title"]} for h, e in context.liked.items()],
            "disliked": [{"id": h, "title": e["title"]} for h, e in context.disliked.items()],
            "candidates": [{"id": context.cid(i), "title": context.candidates[i]["title"]} for i in chunk],
        })

    def _messages(self, context: UserContext, chunk: list[int]) -> list[dict[str, str]]:
        s = self.settings
        system = fill(self.prompt["system"], max_chars=s.llm_explanation_chars, max_evidence=s.evidence_items)
        user = fill(self.prompt["user"], n_liked=context.n_liked, n_disliked=context.n_disliked, n_candidates=len(chunk),
                    data=self._data(context, chunk))
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def recipe_tokens(self, context: UserContext) -> int:
        """chars/4 of the original recipe: up to 300 history titles, candidates in 3 calls of 10."""
        system = fill(load_prompt(RECIPE_PROMPT)["system"], max_chars=self.settings.llm_explanation_chars,
                      max_evidence=self.settings.evidence_items)
        history = "\n".join(context.recipe_titles[:RECIPE_HISTORY])
        titles = [c["title"] for c in context.candidates[: RECIPE_CALLS * RECIPE_PER_CALL]]
        total = 0
        for start in range(0, len(titles), RECIPE_PER_CALL):
            batch = "\n".join(f"c{n + 1}: {t}" for n, t in enumerate(titles[start : start + RECIPE_PER_CALL]))
            total += estimate_tokens(f"{system}\nThe user watched:\n{history}\nRank these candidates:\n{batch}")
        return total

    def _rank_user(self, client: LlmClient, k: int, context: UserContext, frame: pl.DataFrame,
                   stats: UserStats, attempts: list[Attempt]) -> UserResult:
        """Each call's order becomes positions 1 (first) .. 0 (last); over permutations the mean position
        (a Borda count), the majority's like, and the first usable explanation of each candidate."""
        stats.recipe_tokens_est = self.recipe_tokens(context)
        positions: dict[int, list[float]] = {}
        likes: dict[int, list[bool]] = {}
        picks: dict[int, tuple[str | None, list[int]]] = {}
        for chunk, messages, schema, max_tokens in self._requests(context):
            stats.prompt_tokens_est += sum(estimate_tokens(m["content"]) for m in messages)
            answer = client.complete(messages, schema, max_tokens)
            attempts.extend(answer.attempts)
            try:
                ordered = self._repair(context, chunk, answer.content, answer.refusal, stats)
            except Unusable as unusable:
                stats.repair_retries += 1
                repair = fill(self.prompt["repair"], reason=str(unusable), data=self._data(context, chunk))
                retry = [*messages, {"role": "assistant", "content": (answer.content or answer.refusal or "")[:2000]},
                         {"role": "user", "content": repair}]
                answer = client.complete(retry, schema, max_tokens)
                attempts.extend(answer.attempts)
                ordered = self._repair(context, chunk, answer.content, answer.refusal, stats)
            last = max(1, len(ordered) - 1)
            for n, (index, like, explanation, evidence) in enumerate(ordered):
                positions.setdefault(index, []).append(1.0 - n / last if len(ordered) > 1 else 1.0)
                likes.setdefault(index, []).append(like)
                if picks.get(index, (None,))[0] is None:
                    picks[index] = (explanation, evidence)
        position = {index: sum(values) / len(values) for index, values in positions.items()}
        liked = {index: 2 * sum(votes) >= len(votes) for index, votes in likes.items()}
        rows = self._final_rows(context, frame, k, position, liked, picks, stats)
        return UserResult(rows, stats, "llm", None, attempts)

    def _repair(self, context: UserContext, chunk: list[int], content: str | None, refusal: str | None,
                stats: UserStats) -> list[tuple[int, bool, str | None, list[int]]]:
        """Answer -> (candidate index, like, explanation or None, evidence item ids), every chunk candidate once."""
        items = parse_items(content, refusal)
        known = {context.cid(i): i for i in chunk}
        seen: set[int] = set()
        ordered: list[tuple[int, bool, str | None, list[int]]] = []
        hallucinated = duplicates = 0
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
            stats.stripped_citations += len(item.evidence) - len(cited)
            cited = cited[: self.settings.evidence_items]
            explanation = self._explanation(context, item.explanation, cited)
            ordered.append((index, item.like, explanation, [context.liked[h]["item_id"] for h in cited]))
        stats.hallucinated_ids += hallucinated
        if not ordered:
            raise Unusable("no known candidate id" if items else "empty ranking")
        stats.duplicate_ids += duplicates
        missing = [i for i in sorted(chunk) if i not in seen]  # candidates are in ALS order
        stats.missing_ids += len(missing)
        ordered += [(i, False, None, []) for i in missing]
        return ordered

    def _explanation(self, context: UserContext, text: str, cited: list[str]) -> str | None:
        """The explanation with short ids replaced by titles; None (the grounded ALS one is used) when it
        is empty, overlong, cites an unknown id, or names none of the liked items it cites as evidence."""
        text = " ".join(text.split())
        if not text or len(text) > self.settings.llm_explanation_chars:
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

    def _final_rows(self, context: UserContext, frame: pl.DataFrame, k: int, position: dict[int, float],
                    liked: dict[int, bool], picks: dict[int, tuple[str | None, list[int]]], stats: UserStats) -> pl.DataFrame:
        s = self.settings
        scores = [c["als_score"] for c in context.candidates]
        low, high = min(scores), max(scores)
        rows = []
        for index, candidate in enumerate(context.candidates):
            like = liked.get(index, False)
            explanation, evidence = picks.get(index, (None, []))
            als_norm = (candidate["als_score"] - low) / (high - low) if high > low else 1.0
            blend = s.llm_blend_weight * position.get(index, 0.0) + (1 - s.llm_blend_weight) * als_norm
            if explanation is None:
                stats.explanation_fallbacks += int(index in picks)
                explanation, evidence = candidate["als_explanation"], list(candidate["evidence_item_ids"])
            score = blend + (1.0 if like and s.llm_liked_first else 0.0)
            rows.append({**candidate, "score": score, "explanation": explanation, "evidence_item_ids": evidence})
        rows.sort(key=lambda r: (-r["score"], r["als_rank"]))
        out = pl.DataFrame(rows[:k], schema_overrides={"evidence_item_ids": pl.List(pl.Int64)}, infer_schema_length=None)
        return out.with_columns(
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32),
            ranker=pl.lit("llm"),
            prompt_version=pl.lit(s.llm_prompt_version),
            fallback_reason=pl.lit(None, dtype=pl.String),
        ).select(RANKED_COLUMNS)

    def _fallback(self, frame: pl.DataFrame, k: int, reason: str, stats: UserStats, attempts: list[Attempt]) -> UserResult:
        reason = redact(reason, self.settings)
        rows = AlsRanker().rank(frame, k).with_columns(
            ranker=pl.lit("als_fallback"),
            prompt_version=pl.lit(self.settings.llm_prompt_version),
            fallback_reason=pl.lit(reason),
        )
        return UserResult(rows, stats, "als_fallback", reason, attempts)

    # -------------------------------------------------------------- accounting

    def _record(self, con, lock: threading.Lock, user_ids: list[int], results: list[UserResult]) -> None:
        s = self.settings
        calls = pl.DataFrame(
            [{"user_id": uid, **a.row()} for uid, r in zip(user_ids, results) for a in r.attempts],
            schema={"user_id": pl.Int64, "request_key": pl.String, "attempt": pl.Int32, "response_format": pl.String,
                    "outcome": pl.String, "http_status": pl.Int32, "latency_ms": pl.Float64,
                    "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64},
        )
        users = pl.DataFrame([
            {"user_id": uid, "ranker": r.ranker, "fallback_reason": r.reason, **r.stats.__dict__}
            for uid, r in zip(user_ids, results)
        ], infer_schema_length=None)  # a reason may first appear after 100 users (e.g. the circuit opening late)
        with lock, db.transaction(con):
            with db.registered(con, "new_llm_calls", calls):
                db.run(con, "llm/insert_calls", {"run_date": s.run_date})
            db.run(con, "llm/replace_users", {"run_date": s.run_date, "user_ids": user_ids})
            with db.registered(con, "new_llm_users", users):
                db.run(con, "llm/insert_users", {"run_date": s.run_date})

    def _log(self, results: list[UserResult], summary: pl.DataFrame) -> None:
        logger = run_logger()
        fallbacks = [r.reason for r in results if r.ranker == "als_fallback"]
        calls = sum(1 for r in results for a in r.attempts if a.outcome != "cache_hit")
        hits = sum(1 for r in results for a in r.attempts if a.outcome == "cache_hit")
        logger.info("llm ranker batch: %d users, %d fallbacks, %d calls, %d cache hits%s", len(results),
                    len(fallbacks), calls, hits, f" (first fallback: {fallbacks[0]})" if fallbacks else "")
        if summary.height:
            line = ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                             for key, value in summary.row(0, named=True).items())
            logger.info(redact(f"llm accounting so far: {line}", self.settings))


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


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a flow/task run, else this module's logger."""
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:
        return log
