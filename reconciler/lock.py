"""An advisory lock per workspace, so two ``apply`` runs never interleave their writes.

It needs no infrastructure beyond the workspace: the lock is a secret scope of its own,
because ``scopes/create`` is atomic (it fails with RESOURCE_ALREADY_EXISTS when the scope
exists). Who holds it and until when is written into the name of the one key the scope
holds (``holder.<who>.until.<epoch seconds>``), since ``secrets/list`` shows key names and
timestamps but never values. A lock past its expiry, or one whose holder died before it
wrote its key, is taken over. ``plan`` and ``drift`` take no lock.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.clock import Clock
from reconciler.errors import TransientError, UserError
from reconciler.model import SCOPE, LiveSecret
from reconciler.port import LockPort

log = logging.getLogger("pkgrepo.lock")

LOCK_SCOPE = f"pkgrepo-lock.{SCOPE}"
DEFAULT_TTL_SECONDS = 15 * 60
DEFAULT_WAIT_SECONDS = 60.0
_HOLDERLESS_GRACE_SECONDS = 10.0
"""A lock scope with no holder key: its creator may be about to write the key. After this
long it is taken as abandoned."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class LockHeld(UserError):
    """Another run holds the workspace's lock."""


@dataclass(frozen=True)
class Holder:
    who: str
    until: int
    """Expiry, seconds since the epoch."""
    since_ms: int
    key: str

    def describe(self) -> str:
        since = dt.datetime.fromtimestamp(self.since_ms / 1000, tz=dt.UTC)
        until = dt.datetime.fromtimestamp(self.until, tz=dt.UTC)
        return (
            f"locked by {self.who} since {since:%Y-%m-%d %H:%M:%S} UTC "
            f"(expires {until:%H:%M:%S} UTC)"
        )


def default_holder() -> str:
    """Who this run is, as other runs will see it: user, machine and process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}.{os.getpid()}"


def holder_key(who: str, until: int) -> str:
    return f"holder.{_UNSAFE.sub('_', who)[:80]}.until.{until}"


def parse_holder(keys: Mapping[str, LiveSecret]) -> Holder | None:
    for key, secret in keys.items():
        if not key.startswith("holder.") or ".until." not in key:
            continue
        who, _, until = key[len("holder.") :].rpartition(".until.")
        if until.isdigit():
            return Holder(who, int(until), secret.last_updated_ms, key)
    return None


class WorkspaceLock:
    """``with WorkspaceLock(...):`` holds the lock of one workspace for the block."""

    def __init__(
        self,
        workspace: str,
        port: LockPort,
        clock: Clock,
        *,
        who: str | None = None,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
    ) -> None:
        self.workspace = workspace
        self.port = port
        self.clock = clock
        self.who = who or default_holder()
        self.ttl_seconds = ttl_seconds
        self.wait_seconds = wait_seconds
        self.key: str | None = None

    def acquire(self) -> None:
        deadline = self.clock.monotonic() + self.wait_seconds
        holderless_since: float | None = None
        while True:
            try:
                if self._try_once():
                    return
                keys = self.port.lock_keys()
            except TransientError as exc:
                if self.clock.monotonic() >= deadline:
                    raise LockHeld(f"{self.workspace}: cannot take the lock: {exc}") from None
                self.clock.sleep(0.5)
                continue
            if keys is None:
                continue  # released between our create and our look: try again at once
            holder = parse_holder(keys)
            now = self.clock.monotonic()
            if holder is None:
                holderless_since = holderless_since if holderless_since is not None else now
                if now - holderless_since >= _HOLDERLESS_GRACE_SECONDS:
                    log.warning("%s: taking over a lock without a holder", self.workspace)
                    self.port.lock_delete()
                    holderless_since = None
                    continue
            elif holder.until < self.clock.time():
                log.warning("%s: taking over an expired lock (%s)", self.workspace,
                            holder.describe())
                self.port.lock_delete()
                continue
            if now >= deadline:
                shown = holder.describe() if holder else "locked (holder not yet recorded)"
                raise LockHeld(
                    f"{self.workspace}: {shown}; waited {self.wait_seconds:.0f}s. If that run "
                    f"is gone, run `pkgrepo force-unlock {self.workspace} --file FILE`"
                )
            self.clock.sleep(min(1.0, max(0.05, deadline - now)))

    def _try_once(self) -> bool:
        if not self.port.lock_create():
            return False
        until = int(self.clock.time()) + self.ttl_seconds
        self.key = holder_key(self.who, until)
        self.port.lock_put(self.key)
        return True

    def release(self) -> None:
        if self.key is None:
            return
        keys = self.port.lock_keys()
        holder = parse_holder(keys) if keys else None
        if holder is not None and holder.key != self.key:
            log.warning("%s: the lock was taken over by %s; leaving it", self.workspace,
                        holder.who)
        else:
            self.port.lock_delete()
        self.key = None

    def __enter__(self) -> WorkspaceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def force_unlock(port: LockPort) -> Holder | None:
    """Remove a workspace's lock whoever holds it; returns who held it."""
    keys = port.lock_keys()
    if keys is None:
        return None
    holder = parse_holder(keys)
    port.lock_delete()
    return holder
