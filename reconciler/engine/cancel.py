"""Cancelling a run from outside (SIGINT, SIGTERM): a flag every worker looks at before it
starts a write, and the error that stops a workspace's apply once it is set."""

from __future__ import annotations

import threading

from reconciler.core.errors import Cancelled


class Cancel:
    """Set once, from a signal handler; read from any thread."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    @property
    def is_set(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        if self.event.is_set():
            raise Cancelled(f"interrupted ({self.reason})" if self.reason else "interrupted")
