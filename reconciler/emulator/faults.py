"""Injected misbehaviour, per workspace: latency, throttling, 5xx answers, dropped connections,
one-shot failures and late ACLs.

``Faults`` is the declarative setting (config file or ``handle.set_faults``); ``FaultInjector``
is its runtime state (token bucket, seeded random generator, per-endpoint call counts). Faults
apply to ``/api/...`` requests only, never to the ``/.well-known/databricks-config`` probe the
SDK makes while building a client, so a client can always be built.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.emulator.errors import ApiError

API_PREFIX = "/api/2.0/"


def endpoint_name(path: str) -> str:
    """``/api/2.0/secrets/acls/put`` and ``secrets/acls/put`` both name ``secrets/acls/put``."""
    path = path.strip("/")
    prefix = API_PREFIX.lstrip("/")
    return path[len(prefix) :] if path.startswith(prefix) else path


@dataclass(frozen=True)
class OneShotFailure:
    """Fail the ``nth`` call (1-based, counted from when the faults were set) to ``endpoint``
    once. ``status=None`` drops the connection instead of answering. ``after_commit`` lets the
    request take effect first and then fails the answer (a lost acknowledgement)."""

    endpoint: str
    nth: int = 1
    status: int | None = 503
    error_code: str | None = None
    message: str | None = None
    after_commit: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", endpoint_name(self.endpoint))
        if self.nth < 1:
            raise ValueError("nth counts from 1")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("status must be a 4xx or 5xx code (or None to drop the connection)")


@dataclass(frozen=True)
class Faults:
    """Per-workspace fault settings; the default injects nothing.

    - ``latency_ms``: sleep this long before answering; ``latency_range_ms=(lo, hi)`` draws
      uniformly from the range instead.
    - ``rate_limit_rps``: token bucket (``rate_limit_burst`` tokens, default the rate rounded
      up); past it, 429 ``REQUEST_LIMIT_EXCEEDED`` with a ``Retry-After`` header in whole
      seconds (``retry_after_seconds`` forces the value, e.g. 0 for fast tests).
      ``throttle_status`` answers throttling with another status (still
      ``REQUEST_LIMIT_EXCEEDED``) and ``throttle_retry_after=False`` leaves the header out:
      the service is seen to throttle that way too (databricks-sdk-py PR #395).
    - ``error_rate``: share (0..1) of requests answered with a status from ``error_statuses``.
    - ``drop_rate``: share (0..1) of requests whose connection is closed without an answer.
    - ``one_shot``: ``OneShotFailure`` entries.
    - ``late_acl_seconds``: an ``acls/put`` is acknowledged at once but shows in
      ``acls/list``/``acls/get`` (and takes effect) only this many seconds later.
    - ``seed``: seeds the random draws, so a run is reproducible.
    """

    latency_ms: float = 0.0
    latency_range_ms: tuple[float, float] | None = None
    rate_limit_rps: float | None = None
    rate_limit_burst: int | None = None
    retry_after_seconds: int | None = None
    throttle_status: int = 429
    throttle_retry_after: bool = True
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 503)
    drop_rate: float = 0.0
    one_shot: tuple[OneShotFailure, ...] = ()
    late_acl_seconds: float = 0.0
    seed: int | None = 0

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.rate_limit_rps is not None and self.rate_limit_rps <= 0:
            raise ValueError("rate_limit_rps must be positive")
        if self.latency_range_ms is not None:
            low, high = self.latency_range_ms
            if not 0 <= low <= high:
                raise ValueError("latency_range_ms must be (low, high) with 0 <= low <= high")
        if not 400 <= self.throttle_status <= 599:
            raise ValueError("throttle_status must be a 4xx or 5xx code")
        if any(s not in (500, 502, 503, 504) for s in self.error_statuses):
            raise ValueError("error_statuses may hold 500, 502, 503 and 504")
        object.__setattr__(self, "one_shot", tuple(self.one_shot))
        object.__setattr__(self, "error_statuses", tuple(self.error_statuses))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Build from config-file data; unknown keys are errors (``ValueError``)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        values = dict(data)
        if "latency_range_ms" in values and values["latency_range_ms"] is not None:
            low, high = values["latency_range_ms"]
            values["latency_range_ms"] = (float(low), float(high))
        if "error_statuses" in values:
            values["error_statuses"] = tuple(int(s) for s in values["error_statuses"])
        shots = values.get("one_shot") or ()
        values["one_shot"] = tuple(
            s if isinstance(s, OneShotFailure) else OneShotFailure(**dict(s)) for s in shots
        )
        return cls(**values)


_MESSAGES = {
    400: ("BAD_REQUEST", "Bad request (injected by the emulator)."),
    403: ("PERMISSION_DENIED", "Permission denied (injected by the emulator)."),
    404: ("RESOURCE_DOES_NOT_EXIST", "Not found (injected by the emulator)."),
    409: ("RESOURCE_CONFLICT", "Conflict (injected by the emulator)."),
    429: ("REQUEST_LIMIT_EXCEEDED", "Too many requests (injected by the emulator)."),
    500: ("INTERNAL_ERROR", "Internal error (injected by the emulator)."),
    502: ("BAD_GATEWAY", "Bad gateway (injected by the emulator)."),
    503: ("TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable (injected)."),
    504: ("DEADLINE_EXCEEDED", "The deadline expired (injected by the emulator)."),
}


@dataclass(frozen=True)
class Decision:
    """What to do with one request: sleep ``delay`` seconds, then drop, fail or serve it."""

    delay: float = 0.0
    drop: bool = False
    error: ApiError | None = None
    after_commit: OneShotFailure | None = None


@dataclass
class FaultInjector:
    """Runtime state of one workspace's ``Faults``. Thread-safe."""

    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        rate = self.faults.rate_limit_rps
        self._capacity = float(self.faults.rate_limit_burst or math.ceil(rate or 1))
        self._tokens = self._capacity
        self._refilled_at = self.clock()
        self._calls: Counter[str] = Counter()
        self._fired: set[int] = set()

    def decide(self, endpoint: str) -> Decision:
        """Called once per ``/api/`` request, before it is served. A one-shot failure comes
        before the random faults; an ``after_commit`` one whose call is dropped, throttled or
        failed at random waits for the next call that is served."""
        faults = self.faults
        with self._lock:
            delay = self._delay()
            self._calls[endpoint] += 1
            due = self._due_shot(endpoint)
            if due is not None and not due[1].after_commit:
                self._fired.add(due[0])
                shot = due[1]
                return Decision(delay, drop=shot.status is None, error=_shot_error(shot))
            if faults.drop_rate and self._random.random() < faults.drop_rate:
                return Decision(delay, drop=True)
            throttled = self._throttle()
            if throttled is not None:
                return Decision(delay, error=throttled)
            if faults.error_rate and self._random.random() < faults.error_rate:
                status = self._random.choice(faults.error_statuses)
                return Decision(delay, error=self._server_error(status))
            if due is None:
                return Decision(delay)
            self._fired.add(due[0])
            return Decision(delay, after_commit=due[1])

    def late_acl_seconds(self) -> float:
        return self.faults.late_acl_seconds

    def _delay(self) -> float:
        faults = self.faults
        if faults.latency_range_ms is not None:
            low, high = faults.latency_range_ms
            return self._random.uniform(low, high) / 1000.0
        return faults.latency_ms / 1000.0

    def _due_shot(self, endpoint: str) -> tuple[int, OneShotFailure] | None:
        for index, shot in enumerate(self.faults.one_shot):
            if index in self._fired or shot.endpoint != endpoint:
                continue
            if self._calls[endpoint] >= shot.nth:
                return index, shot
        return None

    def _throttle(self) -> ApiError | None:
        rate = self.faults.rate_limit_rps
        if rate is None:
            return None
        now = self.clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        wait = (1.0 - self._tokens) / rate
        retry_after = self.faults.retry_after_seconds
        if retry_after is None:
            retry_after = max(1, math.ceil(wait))
        # Throttled requests get 429 with Retry-After in whole seconds, the header the SDK's
        # _RetryAfterCustomizer parses ("this is what Databricks platform returns"); unless
        # configured to answer as the service sometimes does: another status, no header.
        headers = {"Retry-After": str(retry_after)} if self.faults.throttle_retry_after else {}
        return ApiError(
            "REQUEST_LIMIT_EXCEEDED",
            "Too many requests. Please wait a moment and try again.",
            status=self.faults.throttle_status,
            headers=headers,
        )

    def _server_error(self, status: int) -> ApiError:
        code, message = _MESSAGES[status]
        headers = {}
        if status == 503:
            wait = self.faults.retry_after_seconds
            headers["Retry-After"] = str(1 if wait is None else wait)
        return ApiError(code, message, status=status, headers=headers)


def _shot_error(shot: OneShotFailure) -> ApiError | None:
    if shot.status is None:
        return None
    code, message = _MESSAGES.get(shot.status, ("BAD_REQUEST", "Injected failure."))
    headers = {"Retry-After": "1"} if shot.status in (429, 503) else {}
    return ApiError(
        shot.error_code or code,
        shot.message or message,
        status=shot.status,
        headers=headers,
    )


def after_commit_error(shot: OneShotFailure) -> Decision:
    """The answer that replaces a served request's for an ``after_commit`` one-shot."""
    return Decision(drop=shot.status is None, error=_shot_error(shot))
