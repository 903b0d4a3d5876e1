"""``--rate-limit``: at most so many requests per second to any one workspace host.

The adapter takes a token before every request it sends (``SdkWorkspace._call``, the one
place its SDK calls go through), from the bucket of the workspace's host; every client of
that host in the run shares the bucket. The engine knows nothing of it."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """A token bucket: at most ``rate`` calls per second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            time.sleep(wait)


class HostRates:
    """One ``RateLimiter`` per workspace host, made on first use, for a whole run."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, RateLimiter] = {}
        self._lock = threading.Lock()

    def for_host(self, host: str) -> RateLimiter:
        with self._lock:
            bucket = self._buckets.get(host)
            if bucket is None:
                bucket = self._buckets[host] = RateLimiter(self.rate)
            return bucket
