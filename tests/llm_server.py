"""A real, local OpenAI-compatible chat-completions HTTP server for tests and benchmarks.

Standard library only. Start it as a context manager; point any OpenAI-compatible client
at ``server.base_url``::

    with OpenAICompatibleServer(rpm_limit=5) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        server.script(rate_limited(0.5), malformed_json())  # then the default brain answers

Endpoints: ``POST /v1/chat/completions`` and ``GET /v1/models``; anything else is a 404.

The default brain (:func:`correct`) reads the JSON between ``<data>`` and ``</data>`` in the
last user message (``{"liked": [...], "disliked": [...], "candidates": [...]}``) and answers
``{"ranking": [{"id", "like", "explanation", "evidence"}, ...]}`` with every candidate once,
in *reversed* input order, ``like=True`` for the first half (rounded up) and evidence citing
the first liked history id (or no evidence when nothing is liked). A missing or unparsable
``<data>`` block is answered with HTTP 400, so a prompt whose data is not escaped (a title
containing ``</data>``) fails loudly.

Each server-side check happens in this order, and a request rejected by one does not reach
the next (nor consume a scripted behaviour):

1. ``rpm_limit``: at most R accepted chat requests in any sliding window of ``window_seconds``
   (60 s by default). Excess requests get 429 and are recorded with ``accepted=False``.
2. ``reject_json_schema``: like llama.cpp's server, HTTP 500 for
   ``response_format.type == "json_schema"``; ``json_object`` and plain requests pass.
3. The next scripted behaviour, else the default brain.

Retry hints: every 429 carries ``Retry-After`` in seconds and ``retry-after-ms`` in
milliseconds (what OpenAI itself sends, and what the ``openai`` client prefers).
``Retry-After`` may be *fractional* (``"0.25"``, ``"59.874"``): for :func:`rate_limited` it is
the given value, for ``rpm_limit`` it is the exact time until a slot frees, rounded up to the
millisecond. Waiting that long always suffices.

``max_tokens`` (or ``max_completion_tokens``) is honoured like a real model: longer content is
cut to ``4 * max_tokens`` characters with ``finish_reason="length"``. Tokens are estimated as
``ceil(len(text) / 4)``. A ping (``max_tokens == 1``, what a preflight sends) is answered with
one token by every ranking behaviour, whatever its prompt.

Like a real endpoint, the server can check the key and the model before anything else (0.):
``api_key="k"`` answers 401 to any other bearer token, ``models=("m",)`` answers 404
``model_not_found`` to any other model (both off by default).

Hostile transports, for the client's deadlines and caps: :func:`drip` (one byte every few
seconds, from the status line or from the body on), :func:`hang` (nothing until the server
stops), :func:`close_mid_body` (half the declared body, then the connection closes),
:func:`huge` (a valid answer padded to N bytes, with or without Content-Length).
"""

from __future__ import annotations

import collections
import json
import math
import random
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
MODEL_ID = "local-test-model"
CHARS_PER_TOKEN = 4

_DATA_BLOCK = re.compile(r"<data>(.*?)</data>", re.DOTALL)


class BadRequest(Exception):
    """The request cannot be answered; the server replies 400 with this message."""


@dataclass(frozen=True)
class Reply:
    """What the server sends back: HTTP status, JSON payload, extra headers, delay before sending."""

    status: int
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0  # > 0: send one byte every `drip` seconds ...
    drip_headers: bool = False  # ... from the status line on (else from the body on)
    cut_at: int | None = None  # send only this many body bytes, then close the connection
    padding: int = 0  # spaces after the JSON (still valid JSON)
    declare_length: bool = True  # False: no Content-Length, the body ends when the connection closes


@dataclass(frozen=True)
class Behaviour:
    """A named way of answering one chat request (the parsed JSON body)."""

    name: str
    respond: Callable[[Mapping[str, Any]], Reply]

    def __call__(self, body: Mapping[str, Any]) -> Reply:
        return self.respond(body)


@dataclass
class RecordedRequest:
    """One request as the server saw it. ``status`` is None while the answer is in flight."""

    time: float  # time.monotonic() at arrival
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None when absent or unparsable
    client_port: int  # equal ports => the same keep-alive connection
    accepted: bool = True  # False when the rpm limit rejected it
    behaviour: str = ""
    status: int | None = None


# ---------------------------------------------------------------- payload builders


def error_reply(status: int, message: str, type_: str, code: str | int | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
    """An OpenAI-style error body."""
    error = {"message": message, "type": type_, "param": None, "code": code}
    return Reply(status, {"error": error}, headers or {})


def estimate_tokens(text: str) -> int:
    """Token estimate used for ``usage``: ceil(len(text) / 4)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return content if isinstance(content, str) else ""


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    return limit if isinstance(limit, int) and limit > 0 else None


def completion_reply(body: Mapping[str, Any], content: str | None, refusal: str | None = None) -> Reply:
    """A valid ``chat.completion`` object answering ``body`` with ``content``."""
    finish_reason = "stop"
    limit = _max_tokens(body)
    if content is not None and limit is not None and estimate_tokens(content) > limit:
        content, finish_reason = content[: limit * CHARS_PER_TOKEN], "length"
    prompt_tokens = estimate_tokens("".join(_message_text(m) for m in body.get("messages", [])))
    completion_tokens = estimate_tokens(content or refusal or "")
    return Reply(200, {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or MODEL_ID,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal},
            "logprobs": None,
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    })


def _models_payload() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "tests"}]}


def _seconds_header(seconds: float) -> dict[str, str]:
    """Retry hints, rounded up to the millisecond (see module docstring)."""
    millis = max(0, math.ceil(seconds * 1000))
    text = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    return {"Retry-After": text, "retry-after-ms": str(millis)}


def rate_limit_reply(retry_after: float) -> Reply:
    """HTTP 429 with retry hints, shaped like OpenAI's."""
    return error_reply(429, f"Rate limit reached. Please try again in {retry_after:.3f}s.",
                       "requests", "rate_limit_exceeded", _seconds_header(retry_after))


# ---------------------------------------------------------------- ranking brain


def parse_ranking_data(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``<data>`` JSON of the last user message; the last block that parses wins."""
    users = [m for m in body.get("messages", []) if isinstance(m, Mapping) and m.get("role") == "user"]
    if not users:
        raise BadRequest("no user message")
    for block in reversed(_DATA_BLOCK.findall(_message_text(users[-1]))):
        try:
            data = json.loads(block)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("candidates"), list):
            for key in ("candidates", "liked", "disliked"):
                _require_ids(data, key)
            return data
    raise BadRequest("last user message has no <data>...</data> block holding JSON with 'candidates'")


def _require_ids(data: Mapping[str, Any], key: str) -> None:
    entries = data.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) and "id" in e for e in entries):
        raise BadRequest(f"<data> key {key!r} must be a list of objects with an 'id'")


def correct_ranking(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every candidate once, reversed, first half liked, evidence = first liked history id."""
    candidates = list(reversed(data["candidates"]))
    liked = data.get("liked") or []
    anchor = liked[0] if liked else None
    half = (len(candidates) + 1) // 2
    return [{
        "id": candidate["id"],
        "like": rank < half,
        "explanation": (f"Because you liked {anchor['id']} ({anchor.get('title', '')}), "
                        f"you may enjoy {candidate.get('title', candidate['id'])}.")
        if anchor else f"{candidate.get('title', candidate['id'])} is popular with similar viewers.",
        "evidence": [anchor["id"]] if anchor else [],
    } for rank, candidate in enumerate(candidates)]


def ranking_content(ranking: list[dict[str, Any]]) -> str:
    """The JSON message content for a ranking."""
    return json.dumps({"ranking": ranking})


RankingEdit = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
ContentEdit = Callable[[str], str]


def _ranking_behaviour(name: str, edit: RankingEdit = lambda r: r, wrap: ContentEdit = lambda c: c) -> Behaviour:
    """Answer with the correct ranking, edited, serialised, then wrapped."""
    def respond(body: Mapping[str, Any]) -> Reply:
        if _max_tokens(body) == 1:
            return completion_reply(body, "OK")
        ranking = correct_ranking(parse_ranking_data(body))
        return completion_reply(body, wrap(ranking_content(edit(ranking))))
    return Behaviour(name, respond)


# ---------------------------------------------------------------- brains that know the truth


class TrueRatings:
    """Every (user_id, title, rating) a test knows; a prompt's user is the one whose rated titles hold
    all the prompt's history titles (liked and disliked)."""

    def __init__(self, rows: Iterable[tuple[int, str, float]]) -> None:
        self.ratings: dict[int, dict[str, float]] = collections.defaultdict(dict)
        self.users_by_title: dict[str, set[int]] = collections.defaultdict(set)
        for user, title, rating in rows:
            self.ratings[user][title] = float(rating)
            self.users_by_title[title].add(user)

    def user_of(self, data: Mapping[str, Any]) -> int | None:
        titles = [e.get("title", "") for key in ("liked", "disliked") for e in data.get(key) or []]
        if not titles:
            return None
        users = set.intersection(*(self.users_by_title.get(t, set()) for t in titles))
        return min(users) if users else None

    def of(self, data: Mapping[str, Any]) -> dict[str, float]:
        """Candidate id -> the prompt's user's true rating of it (0 where unknown)."""
        user = self.user_of(data)
        known = self.ratings.get(user, {}) if user is not None else {}
        return {c["id"]: known.get(c.get("title", ""), 0.0) for c in data["candidates"]}


Judge = Callable[[dict[str, float], random.Random], list[tuple[str, bool]]]


def _truth_behaviour(name: str, truth: TrueRatings, judge: Judge, seed: int) -> Behaviour:
    """Answer with `judge`'s (id, like) order of the candidates' true ratings; each entry grounded like the
    correct brain's. Seeded per user and candidate set: the same prompt gets the same answer."""
    def respond(body: Mapping[str, Any]) -> Reply:
        if _max_tokens(body) == 1:
            return completion_reply(body, "OK")
        data = parse_ranking_data(body)
        entries = {entry["id"]: entry for entry in correct_ranking(data)}
        ratings = truth.of(data)
        rng = random.Random(f"{seed}:{truth.user_of(data)}:{sorted(ratings)}")
        ranking = [{**entries[i], "like": like} for i, like in judge(ratings, rng)]
        return completion_reply(body, ranking_content(ranking))
    return Behaviour(name, respond)


def knows_ratings(rows: Iterable[tuple[int, str, float]], noise: float = 0.0, seed: int = 0,
                  like_above: float = 3.0) -> Behaviour:
    """A brain that knows every true rating (``rows`` of (user_id, title, rating)): candidates ordered by
    the prompt's user's rating plus Gaussian noise of sd ``noise`` (unknown ratings count 0, ties keep
    the prompt's order), liked when that noisy rating is above ``like_above``."""
    def judge(ratings: dict[str, float], rng: random.Random) -> list[tuple[str, bool]]:
        noisy = {i: r + rng.gauss(0, noise) if noise else r for i, r in ratings.items()}
        return [(i, noisy[i] > like_above) for i in sorted(ratings, key=lambda i: -noisy[i])]
    return _truth_behaviour(f"knows_ratings({noise})", TrueRatings(rows), judge, seed)


def worst_first(rows: Iterable[tuple[int, str, float]]) -> Behaviour:
    """A brain that ranks the candidates in reverse of the truth (``rows`` as for knows_ratings): the
    user's best-rated candidates last, the first half liked."""
    def judge(ratings: dict[str, float], rng: random.Random) -> list[tuple[str, bool]]:
        order = sorted(ratings, key=lambda i: ratings[i])
        return [(i, n < (len(order) + 1) // 2) for n, i in enumerate(order)]
    return _truth_behaviour("worst_first", TrueRatings(rows), judge, 0)


# ---------------------------------------------------------------- behaviours


def correct() -> Behaviour:
    """The default brain: a complete, well-grounded ranking."""
    return _ranking_behaviour("correct")


def schema_ordered() -> Behaviour:
    """Like a server decoding under the request's JSON schema: the correct ranking, every object's
    keys written in the schema's property order, and a taste profile where the schema asks for one."""
    def respond(body: Mapping[str, Any]) -> Reply:
        if _max_tokens(body) == 1:
            return completion_reply(body, "OK")
        schema = body["response_format"]["json_schema"]["schema"]
        item_keys = list(schema["properties"]["ranking"]["items"]["properties"])
        answer = {"profile": "Enjoys what the liked titles share; avoids what the disliked ones do.",
                  "ranking": [{key: entry[key] for key in item_keys} for entry in correct_ranking(parse_ranking_data(body))]}
        return completion_reply(body, json.dumps({key: answer[key] for key in schema["properties"]}))
    return Behaviour("schema_ordered", respond)


def rate_limited(retry_after: float) -> Behaviour:
    """HTTP 429 with ``Retry-After: <retry_after>`` (and ``retry-after-ms``)."""
    return Behaviour("rate_limited", lambda body: rate_limit_reply(retry_after))


def server_error(status: int = 500) -> Behaviour:
    """An OpenAI-style ``server_error`` with the given HTTP status."""
    return Behaviour("server_error", lambda body: error_reply(status, "The server had an error.", "server_error"))


def slow(seconds: float, then: Behaviour | None = None) -> Behaviour:
    """Wait ``seconds`` (interrupted by server shutdown), then answer like ``then`` (default correct)."""
    inner = then or correct()
    return Behaviour(f"slow({inner.name})", lambda body: replace(inner(body), delay=seconds))


def content(text: str | None, name: str = "content") -> Behaviour:
    """Answer with this exact message content."""
    return Behaviour(name, lambda body: completion_reply(body, text))


def malformed_json() -> Behaviour:
    """Content that is not JSON: the correct answer cut in half."""
    return _ranking_behaviour("malformed_json", wrap=lambda c: c[: len(c) // 2])


def prose_around_json() -> Behaviour:
    """The correct JSON inside a chatty markdown code fence."""
    return _ranking_behaviour(
        "prose_around_json", wrap=lambda c: f"Sure! Here is the ranking:\n```json\n{c}\n```\nHope this helps")


def hallucinated_ids(ids: Iterable[str] = ("c999",)) -> Behaviour:
    """The correct ranking plus entries for ids that are not candidates."""
    extra = list(ids)
    return _ranking_behaviour("hallucinated_ids", lambda r: r + [
        {"id": i, "like": True, "explanation": "You will love this.", "evidence": []} for i in extra])


def missing_ids(count: int = 1) -> Behaviour:
    """The correct ranking without its last ``count`` entries."""
    return _ranking_behaviour("missing_ids", lambda r: r[: max(0, len(r) - count)])


def duplicate_ids() -> Behaviour:
    """The correct ranking with its first entry repeated at the end."""
    return _ranking_behaviour("duplicate_ids", lambda r: r + r[:1])


def cite_outside_history(ids: Iterable[str] = ("h999",)) -> Behaviour:
    """The first entry cites history ids that are neither liked nor disliked."""
    cited = list(ids)
    return _ranking_behaviour("cite_outside_history", lambda r: [
        {**r[0], "evidence": cited, "explanation": f"Because you liked {', '.join(cited)}."}, *r[1:]] if r else r)


def overlong_explanation(chars: int = 2000) -> Behaviour:
    """The first entry's explanation padded to ``chars`` characters."""
    def pad(ranking: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not ranking:
            return ranking
        sentence = ranking[0]["explanation"] + " "
        return [{**ranking[0], "explanation": (sentence * (chars // len(sentence) + 1))[:chars]}, *ranking[1:]]
    return _ranking_behaviour("overlong_explanation", pad)


INVENTED_REASON = "A classic tale of love and betrayal that critics adore."


def ungrounded_explanation() -> Behaviour:
    """Invented reasons: the first entry names none of the evidence it cites, the second cites none."""
    def invent(ranking: list[dict[str, Any]]) -> list[dict[str, Any]]:
        edited = [{**entry, "explanation": INVENTED_REASON} for entry in ranking[:2]]
        if len(edited) > 1:
            edited[1]["evidence"] = []
        return [*edited, *ranking[2:]]
    return _ranking_behaviour("ungrounded_explanation", invent)


REFUSAL_TEXT = "I'm sorry, I can't help with that."


def refusal(in_refusal_field: bool = False) -> Behaviour:
    """A refusal as content, or (like OpenAI structured outputs) ``content=None`` plus ``message.refusal``."""
    if in_refusal_field:
        return Behaviour("refusal", lambda body: completion_reply(body, None, REFUSAL_TEXT))
    return content(REFUSAL_TEXT, "refusal")


def hang() -> Behaviour:
    """Send nothing at all (not even headers) until the server stops."""
    return slow(24 * 3600)


def drip(interval: float = 2.0, headers: bool = False, then: Behaviour | None = None) -> Behaviour:
    """Answer like ``then`` (default correct), one byte every ``interval`` seconds; with ``headers``
    from the status line on, else the headers at once and then the body byte by byte."""
    inner = then or correct()
    return Behaviour(f"drip({inner.name})", lambda body: replace(inner(body), drip=interval, drip_headers=headers))


def close_mid_body(then: Behaviour | None = None) -> Behaviour:
    """Declare the full Content-Length, send half of the body, close the connection."""
    inner = then or correct()

    def respond(body: Mapping[str, Any]) -> Reply:
        reply = inner(body)
        return replace(reply, cut_at=len(json.dumps(reply.payload).encode()) // 2)
    return Behaviour(f"close_mid_body({inner.name})", respond)


def huge(size: int, declare_length: bool = True) -> Behaviour:
    """A correct answer padded with whitespace to about ``size`` bytes (without Content-Length, the
    client cannot know the size before reading)."""
    def respond(body: Mapping[str, Any]) -> Reply:
        reply = correct()(body)
        return replace(reply, padding=max(0, size - len(json.dumps(reply.payload))), declare_length=declare_length)
    return Behaviour("huge", respond)


def unauthorized() -> Behaviour:
    """HTTP 401, as for a wrong API key."""
    return Behaviour("unauthorized", lambda body: error_reply(401, "Incorrect API key provided.",
                                                              "invalid_request_error", "invalid_api_key"))


def unknown_model() -> Behaviour:
    """HTTP 404 ``model_not_found``."""
    return Behaviour("unknown_model", lambda body: error_reply(
        404, f"The model `{body.get('model')}` does not exist.", "invalid_request_error", "model_not_found"))


# ---------------------------------------------------------------- HTTP server


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _fixed(name: str, reply: Reply) -> Behaviour:
    return Behaviour(name, lambda body: reply)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, asks the owning server for a reply, writes it with Content-Length."""

    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body are two writes: avoid the 40 ms delayed-ACK stall
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no per-request logging."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._send(self.server.owner.answer(self.command, self.path, headers, raw, self.client_address[1]))

    def _send(self, reply: Reply) -> None:
        data = json.dumps(reply.payload).encode() + b" " * reply.padding
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        if reply.declare_length:
            self.send_header("Content-Length", str(len(data)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.drip and reply.drip_headers:
            head, self._headers_buffer = b"".join(self._headers_buffer) + b"\r\n", []
            self._drip(head + data, reply.drip)
            return
        self.end_headers()
        if reply.drip:
            self._drip(data, reply.drip)
        elif reply.cut_at is not None:
            self.wfile.write(data[: reply.cut_at])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.wfile.write(data)

    def _drip(self, data: bytes, interval: float) -> None:
        """One byte every `interval` seconds until done, the client is gone or the server stops."""
        for offset in range(len(data)):
            self.wfile.write(data[offset : offset + 1])
            self.wfile.flush()
            if self.server.owner.stopping.wait(interval):
                self.close_connection = True
                return


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections so stop() can cut idle keep-alives."""

    request_queue_size = 1024  # hundreds of clients connecting at once (a provider's backlog; the default 5 resets them)

    def __init__(self, owner: OpenAICompatibleServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that went away (timeouts, shutdown); loud about anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class OpenAICompatibleServer:
    """A local chat-completions server with scriptable behaviours and a request record."""

    def __init__(self, *, rpm_limit: int | None = None, window_seconds: float = 60.0,
                 reject_json_schema: bool = False, default_brain: Behaviour | None = None,
                 api_key: str | None = None, models: Iterable[str] | None = None) -> None:
        self.api_key = api_key
        self.models = set(models) if models is not None else None
        self.rpm_limit = rpm_limit
        self.window_seconds = window_seconds
        self.reject_json_schema = reject_json_schema
        self.default_brain = default_brain or correct()
        self.base_url = ""
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._script: collections.deque[Behaviour] = collections.deque()
        self._window: collections.deque[float] = collections.deque()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------- lifecycle

    def start(self) -> OpenAICompatibleServer:
        """Listen on 127.0.0.1 on an ephemeral port, serving from a background thread."""
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake slow replies, cut open connections and join every thread."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def stopping(self) -> threading.Event:
        """Set while the server shuts down: slow and dripping replies give up."""
        return self._stopping

    # -------------------------------------------------------- scripting and record

    def script(self, *behaviours: Behaviour) -> None:
        """Queue one-shot behaviours for the next admitted chat requests, in order."""
        with self._lock:
            self._script.extend(behaviours)

    @property
    def scripted_remaining(self) -> int:
        """How many scripted behaviours have not been consumed yet."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[RecordedRequest]:
        """Requests to the chat-completions endpoint."""
        return [r for r in self.requests if r.path == CHAT_PATH]

    def ranking_requests(self) -> list[RecordedRequest]:
        """Chat requests that ask for a ranking: a whole JSON body (a client killed mid-send leaves
        none) that is not a preflight ping (``max_tokens`` of 1)."""
        return [r for r in self.chat_requests() if isinstance(r.body, Mapping) and (_max_tokens(r.body) or 2) > 1]

    def count(self, *, status: int | None = None) -> int:
        """Chat requests answered with ``status`` (all chat requests when None)."""
        return sum(1 for r in self.chat_requests() if status is None or r.status == status)

    def accepted_request_times(self) -> list[float]:
        """Arrival times of chat requests admitted by the rpm limiter (whatever they were answered)."""
        return [r.time for r in self.chat_requests() if r.accepted]

    def max_requests_in_window(self, seconds: float = 60.0) -> int:
        """Most admitted chat requests in any window ``[t, t + seconds)``."""
        times, best, start = self.accepted_request_times(), 0, 0
        for end, arrival in enumerate(times):
            while arrival - times[start] >= seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -------------------------------------------------------- answering

    def answer(self, method: str, path: str, headers: dict[str, str], raw: bytes, client_port: int) -> Reply:
        """Record the request, pick a behaviour, run it, wait its delay; called by handler threads."""
        body = _parse_json(raw)
        with self._lock:
            record = RecordedRequest(time.monotonic(), method, path.split("?")[0], headers, body, client_port)
            self._requests.append(record)
            behaviour = self._choose(record)
            record.behaviour = behaviour.name
        reply = self._run(behaviour, body)
        if reply.delay:
            self._stopping.wait(reply.delay)
        record.status = reply.status
        return reply

    def _choose(self, record: RecordedRequest) -> Behaviour:
        """Routing, validation, rpm limit, json_schema rejection, then script or brain. Holds the lock."""
        route = (record.method, record.path)
        if route == ("GET", MODELS_PATH):
            return _fixed("models", Reply(200, _models_payload()))
        if route != ("POST", CHAT_PATH):
            return _fixed("not_found", error_reply(404, f"Unknown route {record.method} {record.path}",
                                                   "invalid_request_error", "unknown_url"))
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return unauthorized()
        body = record.body
        if self.models is not None and isinstance(body, dict) and body.get("model") not in self.models:
            return unknown_model()
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _fixed("invalid_request", error_reply(400, "Body must be a JSON object with a 'messages' list.",
                                                         "invalid_request_error"))
        if body.get("stream"):
            return _fixed("invalid_request", error_reply(400, "llm_server does not stream.", "invalid_request_error"))
        wait = self._rpm_wait(record.time)
        if wait is not None:
            record.accepted = False
            return _fixed("rpm_limit", rate_limit_reply(wait))
        response_format = body.get("response_format")
        if self.reject_json_schema and isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            return _fixed("reject_json_schema", error_reply(500, "Unsupported response_format type: json_schema",
                                                            "server_error", 500))
        return self._script.popleft() if self._script else self.default_brain

    def _rpm_wait(self, now: float) -> float | None:
        """None if a slot is free (and take it), else seconds until the oldest slot frees."""
        if self.rpm_limit is None:
            return None
        while self._window and now - self._window[0] >= self.window_seconds:
            self._window.popleft()
        if len(self._window) < self.rpm_limit:
            self._window.append(now)
            return None
        return self._window[0] + self.window_seconds - now

    @staticmethod
    def _run(behaviour: Behaviour, body: Any) -> Reply:
        try:
            return behaviour(body)
        except BadRequest as exc:
            return error_reply(400, str(exc), "invalid_request_error")
        except Exception as exc:  # a bug in a behaviour must reach the test as a visible failure
            return error_reply(500, f"llm_server behaviour {behaviour.name!r} crashed: {exc!r}", "server_error")
