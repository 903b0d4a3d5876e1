"""SIGINT and SIGTERM during ``apply`` (Ctrl-C, or a CI system cancelling the job).

The first signal stops new writes (the fleet's ``Cancel``), lets the calls already sent
finish, has every workspace record its ledger for what it wrote and release its lock, and
then the command prints what was and was not applied and exits 128 + the signal number.
If that takes longer than ``GRACE_SECONDS`` (a call stuck in retries), or a second signal
comes, it prints the results known so far and exits at once: the locks it still holds then
pass on by themselves when their lease runs out, and the write-ahead ledger lets the next
run recognise any write that was cut off.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

from reconciler.engine.cancel import Cancel
from reconciler.terminal import output

GRACE_SECONDS = 7.0
"""In-flight work gets this long after the first signal (CI systems commonly send SIGKILL
10 s after SIGTERM)."""
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """``with Interrupts(cancel, give_up) as interrupts:`` around the writes of a run.
    ``give_up`` prints what is known when the grace runs out; it runs on a side thread."""

    def __init__(
        self,
        cancel: Cancel,
        give_up: Callable[[str], None],
        *,
        grace_seconds: float = GRACE_SECONDS,
    ) -> None:
        self.cancel = cancel
        self.give_up = give_up
        self.grace_seconds = grace_seconds
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._timer: threading.Timer | None = None
        self._exiting = threading.Lock()

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum is not None else 0

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self._exit_now("second signal")
            return
        self.signum = signum
        self.cancel.set(self.name)
        # stderr may be gone (its reader cancelled too): stop all the same
        with contextlib.suppress(OSError):
            output.warning(
                f"{self.name} received: no new writes start; in-flight work is finishing "
                f"(at most {self.grace_seconds:.0f}s), then each workspace records its ledger, "
                "releases its lock, and the results are listed. Send it again to stop at once."
            )
        self._timer = threading.Timer(self.grace_seconds, self._exit_now, args=("timeout",))
        self._timer.daemon = True
        self._timer.start()

    def _exit_now(self, why: str) -> None:
        if not self._exiting.acquire(blocking=False):
            return
        try:
            self.give_up(why)
        except Exception:  # noqa: S110 - exiting either way; nothing left to tell anyone
            pass
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(self.exit_code or 1)
