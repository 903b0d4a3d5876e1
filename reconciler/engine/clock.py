"""Time behind an interface, so retry, backoff and expiry logic is tested without sleeping."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def time(self) -> float:
        """Seconds since the epoch (wall clock)."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def time(self) -> float:
        return time.time()


class InterruptibleClock:
    """A clock whose sleeps end, with ``Cancelled``, as soon as ``interrupt`` is set: a
    cancelled run does not sit out a backoff or a settle wait before it stops."""

    def __init__(self, inner: Clock, interrupt: threading.Event) -> None:
        self._inner = inner
        self._interrupt = interrupt

    def monotonic(self) -> float:
        return self._inner.monotonic()

    def time(self) -> float:
        return self._inner.time()

    def sleep(self, seconds: float) -> None:
        from reconciler.core.errors import Cancelled

        if isinstance(self._inner, SystemClock):
            self._interrupt.wait(seconds)
        elif not self._interrupt.is_set():
            self._inner.sleep(seconds)
        if self._interrupt.is_set():
            raise Cancelled("interrupted")
