"""Time that moves only when code sleeps, for the engine's unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field

SERVICE_EPOCH = 1_700_000_000.0
"""Where the emulated service's clock starts (``EmulatedService``), so lock expiry and the
service's timestamps line up with ``FakeClock.time()``."""


@dataclass
class FakeClock:
    """Time that moves only when code sleeps."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        """Starts where the emulated service's clock starts, so expiry lines up."""
        return SERVICE_EPOCH + (self.now - 1000.0)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
