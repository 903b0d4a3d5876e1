"""Retrying transient failures (throttling, 5xx, dropped connections) with capped
exponential backoff and jitter, within a deadline. The databricks-sdk already retries 429
and 503 inside one call; this covers what is left (500s, resets after its budget) at the
level of a whole step, so reads for a plan and writes of an apply both ride out a flaky
network."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from reconciler.core.errors import TransientError, WorkspaceError
from reconciler.engine.clock import Clock

T = TypeVar("T")
_jitter = random.Random()


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.25
    maximum: float = 8.0


def call_with_retry(
    fn: Callable[[], T],
    *,
    workspace: str,
    clock: Clock,
    deadline: float,
    backoff: Backoff = Backoff(),
) -> T:
    """Call ``fn`` until it succeeds, retrying ``TransientError`` until ``deadline``
    (a ``clock.monotonic()`` value); then fail the workspace with the last reason."""
    delay = backoff.initial
    attempts = 0
    while True:
        attempts += 1
        try:
            return fn()
        except TransientError as exc:
            if clock.monotonic() + delay > deadline:
                reason = f"gave up after {attempts} attempts ({exc})"
                raise WorkspaceError(workspace, reason) from None
            clock.sleep(delay * (0.5 + _jitter.random() / 2))
            delay = min(delay * 2, backoff.maximum)
