"""The LLM ranker's side of the wire: one OpenAI-compatible chat call, paid for once.

- Rate limits in-process: a sliding-window limiter on requests and tokens per window (shared by
  every ranker of the process talking to the same endpoint and model) and a semaphore on
  requests in flight. A server 429 pauses every caller for its Retry-After.
- With a Prefect server (PREFECT_API_URL set; `llm_shared_limit`), requests per window come from a
  Prefect global concurrency limit of llm_rpm slots (`llm_limit_name`, created or reshaped), leased in
  blocks and each slot given back after its request's window, so every worker shares one budget
  (`rate_limit`: Prefect's rate limit, one slot per request, slower); tokens per window, in-flight
  requests and 429 pauses stay per process.
- Retries are our own loop (the `openai` client runs with `max_retries=0`), so every attempt,
  429 and retry is counted: 429 honours `retry-after-ms` / `Retry-After`; 5xx, timeouts and
  connection errors back off exponentially with jitter; nothing retries past a deadline.
- Structured output degrades per endpoint: `json_schema` -> `json_object` (+ schema) -> plain
  text, when the server rejects the `response_format` (llama.cpp answers 500 to json_schema).
- Answers are cached under sha256 of (model, prompt version, messages, parameters) as soon as they
  arrive, in memory (`LlmCache`; the flow stores them in DuckDB's `llm_cache`); the transport format is
  not part of the key.
- Every attempt runs in a daemon thread and is abandoned at the request's wall-clock deadline or
  on a stop request (tasks/stop.py), whatever the server does (hang, drip, close mid-body): the
  client's own timeout is per read only. Bodies are read up to `llm_max_answer_bytes`; a bigger
  answer is dropped unread, never cached.
- 401/403/404 are never retried and open the endpoint's circuit at once; `llm_breaker_failures`
  consecutive failed attempts (connection error, timeout, 5xx) open it too. An open circuit
  refuses every further call of this process (`CircuitOpen`) until a preflight succeeds.
- `preflight` makes one cheap call (max_tokens=1) before an llm run and fails in seconds with
  a one-line cause: unreachable, key rejected, model unknown, other HTTP status.

The API key only ever lives inside the `openai` client; nothing here formats it anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx2  # the openai client's transport
import openai

from tasks import stop
from tasks.errors import RecsError
from tasks.settings import Settings

FORMATS = ("json_schema", "json_object", "text")
POLL_SECONDS = stop.POLL_SECONDS  # how often waits look at the deadline and at a stop request
FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema")


class LlmCallFailed(Exception):
    """A request that could not be answered within its deadline (or was refused by the API)."""

    def __init__(self, reason: str, attempts: list[Attempt]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


class CircuitOpen(LlmCallFailed):
    """The endpoint's circuit is open: no call is made."""


class DeadlineExceeded(Exception):
    pass


class AnswerTooLarge(Exception):
    """The answer body passed `llm_max_answer_bytes`; it was not read further."""


class LlmUnavailable(RecsError):
    """The LLM endpoint cannot serve this run (preflight failed, or the circuit opened with llm_on_outage=fail)."""


OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
AUTH_STATUSES = {401: "API key rejected", 403: "API key not allowed", 404: "model unknown or wrong URL"}


@dataclass
class Attempt:
    """One HTTP attempt (or cache hit) — a row of `llm_calls`."""

    request_key: str
    attempt: int
    response_format: str
    outcome: str  # ok | cache_hit | rate_limited | server_error | timeout | format_rejected | error
    http_status: int | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    content: str | None
    refusal: str | None
    finish_reason: str | None
    cached: bool
    request_key: str
    attempts: list[Attempt] = field(default_factory=list)


def redact(text: str, settings: Settings) -> str:
    """`text` with the API key, if any, replaced by ***."""
    secret = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    return text.replace(secret, "***") if secret else text


def estimate_tokens(text: str) -> int:
    """The chars/4 estimate used for budgets and for the prompt-size report."""
    return -(-len(text) // 4)


# ------------------------------------------------------------------ limits


class SlidingWindowLimiter:
    """At most `requests` requests and `tokens` tokens in any window of `window` seconds.

    A slot is taken just before a request is sent. The server counts it when it arrives, somewhere
    between send and response (a limit that answers 429 decides on arrival), so the slot's window
    starts at its response or at `arrival_margin` seconds after the send, whichever is sooner, and
    lasts `window` (+0.5 %). Counting from the response alone would also hold for a server that
    counted late, but costs one latency per slot: 2 s answers in a 60 s window would use at most
    60/62 = 0.968 of the budget, 5 s answers 0.923; from send + 1 s it is 60/61 = 0.984 whatever
    the latency.
    """

    def __init__(self, requests: int, tokens: int, window: float, arrival_margin: float = 1.0) -> None:
        self.requests, self.tokens, self.window, self.arrival_margin = requests, tokens, window, arrival_margin
        self.horizon = window * 1.005
        self._cond = threading.Condition()
        self._slots: list[list[float]] = []  # [window start (inf while in flight), tokens, sent at]
        self._paused_until = 0.0

    def acquire(self, tokens: int, deadline: float) -> list[float]:
        """Block until a slot is free and take it; DeadlineExceeded if that is past `deadline`."""
        with self._cond:
            while True:
                stop.check()
                now = time.monotonic()
                self._slots = [slot for slot in self._slots if now - slot[0] < self.horizon]
                wake = self._paused_until
                if now >= self._paused_until:
                    used = sum(slot[1] for slot in self._slots)
                    if len(self._slots) < self.requests and (used + tokens <= self.tokens or not self._slots):
                        slot = [float("inf"), float(tokens), now]
                        self._slots.append(slot)
                        return slot
                    wake = min(slot[0] for slot in self._slots) + self.horizon  # inf: wait for a release
                if wake > deadline and wake != float("inf"):
                    raise DeadlineExceeded("rate-limit wait would pass the deadline")
                self._cond.wait(min(max(0.001, wake - now), max(0.001, deadline - now), POLL_SECONDS))
                if time.monotonic() >= deadline:
                    raise DeadlineExceeded("rate-limit wait passed the deadline")

    def release(self, slot: list[float]) -> None:
        """The response is back: the slot's window starts now, or at the send + arrival margin if that was sooner."""
        with self._cond:
            slot[0] = min(time.monotonic(), slot[2] + self.arrival_margin)
            self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        """The server said 429: nobody sends for `seconds`."""
        with self._cond:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._cond.notify_all()


def prefect_api_url() -> str | None:
    """The Prefect API this process talks to; None in ephemeral mode (no server configured)."""
    try:
        from prefect.settings import get_current_settings

        return get_current_settings().api.url or None
    except Exception:
        return None


def limit_mode(settings: Settings) -> str:
    """'lease' or 'rate_limit' (a Prefect limit shared by workers) or 'local' (in-process); auto: lease with a server."""
    if settings.llm_shared_limit == "auto":
        return "lease" if prefect_api_url() else "local"
    return settings.llm_shared_limit


def global_limit_shape(settings: Settings) -> tuple[int, float]:
    """(limit, slot decay per second) of the Prefect global limit for llm_rpm per window.

    lease: a concurrency limit of llm_rpm slots without decay; a slot comes back only when the
    leaseholder gives it back, after its request's window (LeasedLimiter).
    rate_limit: a leaky bucket of `limit` slots refilled at the decay rate, so any window may see
    limit + decay * window requests. A burst of 1 and a decay of (rpm - 1) per window keeps every
    window at rpm at most; the price is 1/rpm of the budget.
    """
    if limit_mode(settings) == "lease":
        return settings.llm_rpm, 0.0
    return 1, (settings.llm_rpm - 1 or 1) / settings.llm_rate_window_seconds


_created_limits: set[tuple[str, str, int, float]] = set()


def ensure_global_limit(settings: Settings) -> None:
    """Create the Prefect global rate limit if missing, or reshape it to this llm_rpm (once per process).

    llm_rpm is the single source of truth: workers sharing a limit name must share llm_rpm.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectAlreadyExists

    limit, decay = global_limit_shape(settings)
    key = (prefect_api_url() or "", settings.llm_limit_name, limit, decay)
    if key in _created_limits:
        return
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(settings.llm_limit_name, limit, slot_decay_per_second=decay)
        except ObjectAlreadyExists:  # another worker created it between our read and our create
            client.upsert_global_concurrency_limit_by_name(settings.llm_limit_name, limit, slot_decay_per_second=decay)
    _created_limits.add(key)


class PrefectRateLimiter:
    """Requests per window from a Prefect global rate limit (shared by every worker of the server);
    tokens per window and 429 pauses from an in-process window, as before."""

    def __init__(self, settings: Settings) -> None:
        ensure_global_limit(settings)
        self.name = settings.llm_limit_name
        self.local = SlidingWindowLimiter(2**31, settings.llm_tpm, settings.llm_rate_window_seconds)

    def acquire(self, tokens: int, deadline: float) -> list[float]:
        from prefect.concurrency.sync import rate_limit

        slot = self.local.acquire(tokens, deadline)
        try:  # one wait bounded by the deadline: Prefect logs an error for every timed-out wait, so no polling
            rate_limit(self.name, occupy=1, timeout_seconds=max(0.01, deadline - time.monotonic()), strict=True)
        except TimeoutError:
            self.local.release(slot)
            raise DeadlineExceeded("Prefect rate-limit wait passed the deadline") from None
        except BaseException:
            self.local.release(slot)
            raise
        slot[2] = time.monotonic()  # sent now, not when the local slot was taken
        return slot

    def release(self, slot: list[float]) -> None:
        self.local.release(slot)

    def pause(self, seconds: float) -> None:
        self.local.pause(seconds)


@dataclass
class Lease:
    """A block of slots of the Prefect limit, held by this process under one Prefect lease."""

    id: str
    size: int
    taken: float  # monotonic time it was granted
    slots: list[list[float]] = field(default_factory=list)  # the local slots of the requests it paid for


@dataclass
class LeasedSlot:
    local: list[float]
    lease: Lease


class LeasedLimiter:
    """Requests per window from blocks of slots leased from a Prefect global concurrency limit of
    llm_rpm slots (shared by every worker of the server); tokens per window and 429 pauses in-process.

    A request takes a slot of this process's open lease. A lease is closed once its slots are used
    or `llm_lease_seconds` after it was granted (the rest stays unused), and given back only when
    the window of each request it paid for has passed: a request's window starts at its answer or
    at send + arrival margin, whichever is sooner (SlidingWindowLimiter), so every request the
    provider still counts holds a leased slot and no provider window sees more than llm_rpm.

    One keeper thread per process makes every API call: it leases a block when a request waits for
    one (after a refusal it reads the limit, a read rather than a write on the server's database,
    every ~llm_lease_poll_seconds and asks for half of the free slots at most, so waiting workers
    all get their turn) and gives leases back when due. It calls with Prefect's client retries off
    (they back off for seconds after a 503 of a busy server): a failed call is simply made again at
    the next poll. The block size follows this process's rate: doubled when a block was used up in
    time, cut to what was used when it was not. A crashed process's leases expire on the server
    (`lease_duration`, at least 60 s).
    """

    def __init__(self, settings: Settings) -> None:
        from prefect.client.orchestration import get_client

        ensure_global_limit(settings)
        self.name = settings.llm_limit_name
        self.local = SlidingWindowLimiter(2**31, settings.llm_tpm, settings.llm_rate_window_seconds,
                                          settings.llm_arrival_margin_seconds)
        self.use_seconds, self.poll_seconds = settings.llm_lease_seconds, settings.llm_lease_poll_seconds
        self.max_block = max(1, settings.llm_rpm // 4)
        self.lease_duration = max(60.0, 2 * (self.use_seconds + self.local.arrival_margin + self.local.horizon))
        self.block = 1
        self._client = get_client(sync_client=True)
        self._client.__enter__()
        self._cond = threading.Condition()
        self._open: Lease | None = None
        self._closed: list[Lease] = []
        self._wanted = False  # a request waits for a lease
        self._refused = False  # the last lease asked for was refused: read the limit before asking again
        self._next_ask = 0.0
        self._last_failure = ""
        threading.Thread(target=self._keep, name="llm-lease-keeper", daemon=True).start()

    def acquire(self, tokens: int, deadline: float) -> LeasedSlot:
        slot = self.local.acquire(tokens, deadline)
        try:
            return LeasedSlot(slot, self._take(slot, deadline))
        except BaseException:
            self.local.release(slot)
            raise

    def release(self, slot: LeasedSlot) -> None:
        self.local.release(slot.local)
        with self._cond:
            self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        self.local.pause(seconds)

    def _take(self, slot: list[float], deadline: float) -> Lease:
        """A slot of the open lease for `slot`'s request, waiting for the keeper to lease one."""
        with self._cond:
            while True:
                stop.check()
                self._close_if_done(time.monotonic())
                if self._open is not None:
                    slot[2] = time.monotonic()  # sent now: its window counts from here, not from the local slot
                    self._open.slots.append(slot)
                    return self._open
                if not self._wanted:
                    self._wanted = True
                    self._cond.notify_all()
                if time.monotonic() >= deadline:
                    raise DeadlineExceeded("lease wait passed the deadline")
                self._cond.wait(min(POLL_SECONDS, max(0.001, deadline - time.monotonic())))

    def _close_if_done(self, now: float) -> None:
        """Close the open lease when used up or too old (holds the lock); adapt the block size."""
        lease = self._open
        if lease is None or (len(lease.slots) < lease.size and now - lease.taken < self.use_seconds):
            return
        self._open = None
        self.block = min(self.max_block, 2 * lease.size) if len(lease.slots) == lease.size else max(1, len(lease.slots))
        self._closed.append(lease)

    def _due(self, lease: Lease) -> float:
        """When the provider has forgotten every request `lease` paid for (an in-flight one counts from send + margin)."""
        starts = [min(s[0], s[2] + self.local.arrival_margin) for s in lease.slots]
        return max(starts, default=lease.taken - self.local.horizon) + self.local.horizon

    def _keep(self) -> None:
        """The keeper thread: every API call of this limiter, with Prefect's client retries off."""
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

        with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
            while True:
                try:
                    self._keep_once()
                except Exception:  # the keeper must outlive any surprise: requests wait on it
                    logging.getLogger(__name__).exception("LLM lease keeper")
                    time.sleep(self.poll_seconds)

    def _keep_once(self) -> None:
        """Give back the leases that are due, then lease a block if a request waits and it is time to ask."""
        with self._cond:
            now = time.monotonic()
            self._close_if_done(now)
            due = [lease for lease in self._closed if self._due(lease) <= now]
            ask = self._wanted and self._open is None and now >= self._next_ask
            if not due and not ask:
                wakes = [self._due(lease) for lease in self._closed] + [now + POLL_SECONDS]
                if self._open is not None:
                    wakes.append(self._open.taken + self.use_seconds)
                if self._wanted and self._open is None:
                    wakes.append(self._next_ask)
                self._cond.wait(max(0.001, min(wakes) - now))
                return
        for lease in due:
            if self._call(self._client.release_concurrency_slots_with_lease, lease.id) is None:
                time.sleep(self.poll_seconds)  # the server failed: try again after a pause (even while stopping)
                break
            with self._cond:
                self._closed.remove(lease)
        if ask:
            granted = self._lease_block()
            with self._cond:
                if granted is not None:
                    self._open, self._wanted = granted, False
                    self._cond.notify_all()
                else:
                    self._next_ask = time.monotonic() + self.poll_seconds * (0.5 + random.random())

    def _lease_block(self) -> Lease | None:
        """One API call for `block` slots (half the free ones at most after a refusal); None when refused."""
        size = self.block
        if self._refused:
            limit = self._call(self._client.read_global_concurrency_limit_by_name, self.name)
            free = limit.limit - limit.active_slots if limit is not None else 0
            if free < 1:
                return None
            size = min(size, max(1, free // 2))
        response = self._call(self._client.increment_concurrency_slots_with_lease,
                              names=[self.name], slots=size, mode="concurrency", lease_duration=self.lease_duration)
        self._refused = response is None
        return Lease(response.json()["lease_id"], size, time.monotonic()) if response is not None else None

    def _call(self, method, *args, **kwargs) -> Any:
        """method(...), or None when the server refused (423) or failed (logged once per distinct failure)."""
        import httpx

        try:
            return method(*args, **kwargs)
        except httpx.HTTPError as error:
            if isinstance(error, httpx.HTTPStatusError) and error.response.status_code == 423:
                return None
            failure = f"LLM lease call to the Prefect server failed: {error}"
        if failure != self._last_failure:
            logging.getLogger(__name__).warning(failure)
        self._last_failure = failure
        return None


_registry_lock = threading.Lock()
_limiters: dict[tuple, SlidingWindowLimiter | PrefectRateLimiter | LeasedLimiter] = {}
_semaphores: dict[tuple, threading.BoundedSemaphore] = {}
_format_level: dict[tuple, int] = {}


def shared_limits(settings: Settings) -> tuple[SlidingWindowLimiter | PrefectRateLimiter | LeasedLimiter, threading.BoundedSemaphore]:
    """The process-wide limiter and in-flight semaphore of this endpoint, model and budget."""
    endpoint = (settings.llm_base_url, settings.llm_model)
    mode = limit_mode(settings)
    key = (*endpoint, settings.llm_rpm, settings.llm_tpm, settings.llm_rate_window_seconds, settings.llm_arrival_margin_seconds, mode)
    if mode != "local":
        key += (prefect_api_url(), settings.llm_limit_name, settings.llm_lease_seconds, settings.llm_lease_poll_seconds)
    with _registry_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = (
                LeasedLimiter(settings) if mode == "lease"
                else PrefectRateLimiter(settings) if mode == "rate_limit"
                else SlidingWindowLimiter(settings.llm_rpm, settings.llm_tpm, settings.llm_rate_window_seconds,
                                          settings.llm_arrival_margin_seconds)
            )
        semaphore = _semaphores.setdefault((*endpoint, settings.llm_concurrency), threading.BoundedSemaphore(settings.llm_concurrency))
    return limiter, semaphore


class Breaker:
    """The circuit of one endpoint and model in this process: open after `threshold` consecutive
    failed attempts, or at once on an auth/model error; closed by a good preflight, or by a good answer
    to the one trial request it lets through every `cooldown` seconds while open (half-open: a
    long-lived Dask worker, which never runs a preflight, recovers by itself after an outage)."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self._lock = threading.Lock()
        self.failures = 0
        self.cause: str | None = None  # set while open
        self._trial_at = 0.0  # while open: when the next trial request may go
        self._trial: int | None = None  # the thread sending the trial request

    def check(self) -> None:
        """Raise CircuitOpen while the circuit is open, except for its trial request."""
        with self._lock:
            cause, me = self.cause, threading.get_ident()
            if cause is None or self._trial == me:
                return
            if time.monotonic() >= self._trial_at:
                self._trial, self._trial_at = me, time.monotonic() + self.cooldown
                return
        raise CircuitOpen(f"llm circuit open: {cause}", [])

    def failure(self, cause: str) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self._open(f"{self.failures} consecutive failures, last: {cause}" if self.cause is None else self.cause)

    def trip(self, cause: str) -> None:
        with self._lock:
            self._open(self.cause or cause)

    def close(self) -> None:
        """A good preflight or answer: count from zero again, the circuit closed (a trial succeeded)."""
        with self._lock:
            self.failures, self.cause, self._trial = 0, None, None

    def _open(self, cause: str) -> None:
        """Open (or keep open) with `cause`; the next trial after a cool-down (holds the lock)."""
        self.cause, self._trial, self._trial_at = cause, None, time.monotonic() + self.cooldown


_breakers: dict[tuple, Breaker] = {}


def breaker(settings: Settings) -> Breaker:
    """The process-wide circuit of this endpoint and model."""
    with _registry_lock:
        return _breakers.setdefault((settings.llm_base_url, settings.llm_model),
                                    Breaker(settings.llm_breaker_failures, settings.llm_breaker_cooldown_seconds))


def reset_shared_state() -> None:
    """Forget limiters, learned formats and circuits (tests start each server fresh)."""
    with _registry_lock:
        _limiters.clear()
        _created_limits.clear()
        _semaphores.clear()
        _format_level.clear()
        _breakers.clear()


# ------------------------------------------------------------------ cache


class LlmCache:
    """The answers a batch may hit (llm_cache rows read by the flow), and the new ones it received, in memory:
    a rank task never opens the DuckDB file; the flow stores `new_entries()` with the batch. Thread-safe."""

    def __init__(self, known: dict[str, tuple] | None = None, on_put: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._entries = dict(known or {})
        self._new: dict[str, dict[str, Any]] = {}
        self._on_put = on_put  # also hand each new answer to this as it arrives (the flow's answer keeper)
        self.lock = threading.Lock()

    def get(self, key: str) -> tuple | None:
        """(response_format, content, refusal, finish_reason, prompt_tokens, completion_tokens), or None."""
        with self.lock:
            return self._entries.get(key)

    def has(self, keys: list[str]) -> set[str]:
        """The keys among `keys` that are answered already."""
        with self.lock:
            return {key for key in keys if key in self._entries}

    def put(self, key: str, **values: Any) -> None:
        row = {"request_key": key, **values}
        with self.lock:
            self._new[key] = row
            self._entries[key] = tuple(values[name] for name in CACHED_FIELDS)
        if self._on_put is not None:
            self._on_put(row)

    def new_entries(self) -> list[dict[str, Any]]:
        """Answers received since this cache was made: rows of llm_cache (without created_at)."""
        with self.lock:
            return list(self._new.values())


CACHED_FIELDS = ("response_format", "content", "refusal", "finish_reason", "prompt_tokens", "completion_tokens")


def cache_key(settings: Settings, messages: list[dict], schema: dict[str, Any], max_tokens: int) -> str:
    """The cache key of a chat request under these settings (model, prompt version, temperature)."""
    params = {"temperature": settings.llm_temperature, "max_tokens": max_tokens, "schema": schema}
    return request_key(settings.llm_model, settings.llm_prompt_version, messages, params)


def request_key(model: str, prompt_version: str, messages: list[dict], params: dict[str, Any]) -> str:
    payload = {"model": model, "prompt_version": prompt_version, "messages": messages, "params": params}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# ------------------------------------------------------------------ client


def _retry_after(error: openai.APIStatusError) -> float | None:
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue  # an HTTP date: fall back to our own backoff
    return None


def _rejects_format(error: openai.APIStatusError) -> bool:
    text = f"{error.message} {error.body}".lower()
    return error.status_code in (400, 422, 500, 501) and any(word in text for word in FORMAT_WORDS)


class LlmClient:
    """Chat completions with limits, retries, format fallback, hard deadlines, a circuit and the cache."""

    def __init__(self, settings: Settings, cache: LlmCache | None) -> None:
        self.settings, self.cache = settings, cache
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
        self._client = openai.OpenAI(
            base_url=settings.llm_base_url, api_key=key, max_retries=0, timeout=settings.llm_timeout
        )
        self.limiter, self.in_flight = shared_limits(settings)
        self.breaker = breaker(settings)
        self._endpoint = (settings.llm_base_url, settings.llm_model)

    def close(self) -> None:
        self._client.close()

    def _format(self) -> int:
        with _registry_lock:
            return _format_level.get(self._endpoint, 0)

    def _degrade(self, level: int) -> None:
        with _registry_lock:
            _format_level[self._endpoint] = max(_format_level.get(self._endpoint, 0), level + 1)

    def _response_format(self, level: int, schema: dict[str, Any]) -> dict[str, Any]:
        if FORMATS[level] == "json_schema":
            return {"response_format": {"type": "json_schema", "json_schema": {"name": "ranking", "schema": schema, "strict": True}}}
        if FORMATS[level] == "json_object":
            return {"response_format": {"type": "json_object", "schema": schema}}
        return {}

    def key(self, messages: list[dict], schema: dict[str, Any], max_tokens: int) -> str:
        """The cache key of this request."""
        return cache_key(self.settings, messages, schema, max_tokens)

    # -------------------------------------------------------------- one bounded attempt

    def attempt(self, request: dict[str, Any], deadline: float) -> dict[str, Any]:
        """POST one chat completion and return its JSON, abandoned at `deadline` or on a stop request.

        The HTTP exchange runs in a daemon thread: the client's timeout bounds each read, not the
        whole answer, so only an outside clock holds against a server that drips bytes. An abandoned
        thread stops at its next chunk (or its last read timeout, at most ~1 s past the deadline).
        """
        stop.check()
        outcome: dict[str, Any] = {}
        done, abandoned = threading.Event(), threading.Event()

        def run() -> None:
            try:
                outcome["value"] = self._read(request, deadline, abandoned)
            except BaseException as error:  # handed to the caller
                outcome["error"] = error
            finally:
                done.set()

        threading.Thread(target=run, name="llm-attempt", daemon=True).start()
        while not done.wait(max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))):
            if stop.requested() or time.monotonic() >= deadline:
                abandoned.set()
                stop.check()
                raise DeadlineExceeded("no complete answer before the deadline")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _read(self, request: dict[str, Any], deadline: float, abandoned: threading.Event) -> dict[str, Any]:
        """The answer's JSON, read chunk by chunk up to the size cap (runs in the attempt thread)."""
        cap = self.settings.llm_max_answer_bytes
        per_read = max(0.05, min(self.settings.llm_timeout, deadline - time.monotonic() + 1.0))
        with self._client.chat.completions.with_streaming_response.create(**request, timeout=per_read) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise AnswerTooLarge(f"answer of {int(declared)} bytes is over the {cap}-byte cap")
            body = bytearray()
            try:
                for chunk in response.iter_bytes():
                    if abandoned.is_set():
                        raise DeadlineExceeded("abandoned")
                    body += chunk
                    if len(body) > cap:
                        raise AnswerTooLarge(f"answer passed the {cap}-byte cap")
            except httpx2.TimeoutException as error:  # the body's reads are the transport's own
                raise openai.APITimeoutError(request=response.http_response.request) from error
            except httpx2.RequestError as error:  # e.g. the connection closed mid-body
                raise openai.APIConnectionError(request=response.http_response.request) from error
        try:
            return json.loads(body)
        except ValueError:
            raise LlmCallFailed("answer body is not JSON", []) from None

    # -------------------------------------------------------------- a request with retries

    def complete(self, messages: list[dict], schema: dict[str, Any], max_tokens: int) -> Answer:
        s = self.settings
        key = self.key(messages, schema, max_tokens)
        hit = self.cache.get(key) if self.cache else None
        if hit is not None:
            fmt, content, refusal, finish, prompt_tokens, completion_tokens = hit
            attempt = Attempt(key, 0, fmt, "cache_hit", None, 0.0, prompt_tokens, completion_tokens)
            return Answer(content, refusal, finish, True, key, [attempt])

        deadline = time.monotonic() + s.llm_deadline_seconds
        budget = estimate_tokens(json.dumps(messages)) + max_tokens
        attempts: list[Attempt] = []
        failures = 0
        while True:
            stop.check()
            try:
                self.breaker.check()
            except CircuitOpen as failure:
                failure.attempts = attempts
                raise
            level = self._format()
            fmt = FORMATS[level]
            record = Attempt(key, len(attempts), fmt, "error")
            attempts.append(record)
            wait: float | None = None
            self._enter_flight(deadline, attempts)
            try:
                try:
                    slot = self.limiter.acquire(budget, deadline)
                except DeadlineExceeded:
                    record.outcome = "deadline"
                    raise LlmCallFailed("deadline passed waiting for the rate limit", attempts) from None
                started = time.monotonic()
                request = dict(model=s.llm_model, messages=messages, temperature=s.llm_temperature,
                               max_tokens=max_tokens, **self._response_format(level, schema))
                try:
                    self.breaker.check()  # it may have opened while this request waited for its slots
                    data = self.attempt(request, deadline)
                except CircuitOpen as failure:
                    attempts.pop()  # nothing was sent
                    failure.attempts = attempts
                    raise
                except openai.RateLimitError as error:
                    record.outcome, record.http_status = "rate_limited", 429
                    wait = _retry_after(error)
                    failures += 1
                    if wait is None:
                        wait = self._backoff(failures)
                    self.limiter.pause(wait)
                except (openai.APITimeoutError, DeadlineExceeded):
                    record.outcome = "timeout"
                    self.breaker.failure("timeout")
                    failures += 1
                    wait = self._backoff(failures)
                except openai.APIConnectionError as error:
                    record.outcome = "error"
                    self.breaker.failure(f"connection error ({_cause(error)})")
                    failures += 1
                    wait = self._backoff(failures)
                except AnswerTooLarge as error:
                    record.outcome = "too_large"
                    raise LlmCallFailed(str(error), attempts) from None
                except openai.APIStatusError as error:
                    record.http_status = error.status_code
                    if error.status_code in AUTH_STATUSES:
                        record.outcome = "error"
                        cause = f"{AUTH_STATUSES[error.status_code]} (HTTP {error.status_code})"
                        self.breaker.trip(cause)
                        raise LlmCallFailed(cause, attempts) from None
                    if level < len(FORMATS) - 1 and _rejects_format(error):
                        record.outcome = "format_rejected"
                        self._degrade(level)
                        wait = 0.0
                    elif error.status_code >= 500 or error.status_code in (408, 409):
                        record.outcome = "server_error"
                        self.breaker.failure(f"HTTP {error.status_code}")
                        failures += 1
                        wait = self._backoff(failures)
                    else:
                        record.outcome = "error"
                        raise LlmCallFailed(f"HTTP {error.status_code} from the LLM endpoint", attempts) from None
                except LlmCallFailed as failure:
                    failure.attempts = attempts
                    raise
                finally:
                    self.limiter.release(slot)
                    record.latency_ms = round((time.monotonic() - started) * 1000, 2)
            finally:
                self.in_flight.release()
            if wait is not None:
                if time.monotonic() + wait > deadline:
                    last = record.outcome if record.http_status is None else f"{record.outcome} (HTTP {record.http_status})"
                    raise LlmCallFailed(f"gave up after {len(attempts)} attempts: {last}", attempts)
                stop.sleep(wait)
                continue
            self.breaker.close()
            return self._answer(key, fmt, record, data, attempts)

    def _enter_flight(self, deadline: float, attempts: list[Attempt]) -> None:
        """Take an in-flight slot, looking at the stop request and the deadline while waiting."""
        while not self.in_flight.acquire(timeout=POLL_SECONDS):
            stop.check()
            if time.monotonic() >= deadline:
                attempts[-1].outcome = "deadline"
                raise LlmCallFailed("deadline passed waiting for a request slot", attempts)

    def _answer(self, key: str, fmt: str, record: Attempt, data: dict[str, Any], attempts: list[Attempt]) -> Answer:
        """Cache a received chat completion and hand it back."""
        s = self.settings
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
            content, refusal, finish = message.get("content"), message.get("refusal"), choice.get("finish_reason")
            usage = data.get("usage") or {}
        except (KeyError, IndexError, TypeError, AttributeError):
            record.outcome, record.http_status = "error", 200
            raise LlmCallFailed("answer is not a chat completion", attempts) from None
        record.outcome, record.http_status = "ok", 200
        record.prompt_tokens, record.completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if self.cache:
            self.cache.put(
                key, model=s.llm_model, prompt_version=s.llm_prompt_version, response_format=fmt,
                content=content, refusal=refusal, finish_reason=finish,
                prompt_tokens=record.prompt_tokens, completion_tokens=record.completion_tokens,
            )
        return Answer(content, refusal, finish, False, key, attempts)

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with jitter: base * 2^(n-1), times a random factor in [0.5, 1], capped at 30 s."""
        return min(30.0, self.settings.llm_backoff_seconds * 2 ** (failures - 1)) * (0.5 + random.random() / 2)


def _cause(error: BaseException) -> str:
    """The innermost cause of a transport error, in a few words (e.g. 'Connection refused')."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip() or type(error).__name__
    return text.split("] ", 1)[-1][:120]


# ------------------------------------------------------------------ preflight


def preflight(settings: Settings) -> str:
    """One cheap call (max_tokens=1) to the configured endpoint and model, bounded by
    `llm_preflight_seconds`; LlmUnavailable with a one-line cause when it cannot serve this run.
    A good answer closes the endpoint's circuit (a new run starts afresh)."""
    url = settings.llm_base_url or OPENAI_DEFAULT_URL
    if settings.llm_base_url is None and settings.llm_api_key is None:
        raise LlmUnavailable(f"ranker=llm has no endpoint: set OPENAI_BASE_URL (or RECS_LLM_BASE_URL) for a local "
                             f"server, or OPENAI_API_KEY for {OPENAI_DEFAULT_URL}")
    client = LlmClient(settings, None)
    bound = settings.llm_preflight_seconds
    request = dict(model=settings.llm_model, messages=[{"role": "user", "content": "Reply with OK."}], max_tokens=1)
    try:
        client.attempt(request, time.monotonic() + bound)
    except openai.RateLimitError:
        pass  # reachable and the key is accepted; the ranker's limiter deals with 429s
    except (openai.APITimeoutError, DeadlineExceeded):
        raise LlmUnavailable(f"LLM endpoint {url} did not answer within {bound:g} s (RECS_LLM_PREFLIGHT_SECONDS)") from None
    except openai.APIConnectionError as error:
        raise LlmUnavailable(f"LLM endpoint {url} unreachable: {_cause(error)}") from None
    except openai.APIStatusError as error:
        if error.status_code in (401, 403):
            raise LlmUnavailable(f"LLM endpoint {url} rejected the API key (HTTP {error.status_code})") from None
        if error.status_code == 404:
            raise LlmUnavailable(f"LLM endpoint {url} does not know model {settings.llm_model!r} "
                                 f"(HTTP 404; check RECS_LLM_MODEL and the base URL)") from None
        detail = " ".join(str(error.message).split())[:160]
        raise LlmUnavailable(redact(f"LLM endpoint {url} answered HTTP {error.status_code}: {detail}", settings)) from None
    except (AnswerTooLarge, LlmCallFailed) as error:
        raise LlmUnavailable(f"LLM endpoint {url} sent an unusable answer: {error}") from None
    finally:
        client.close()
    breaker(settings).close()
    return f"{url} answers as {settings.llm_model}"
