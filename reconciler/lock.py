"""An advisory lock per workspace, so two ``apply`` runs never interleave their writes.

It needs no infrastructure beyond the workspace: the lock is a secret scope of its own,
because ``scopes/create`` is atomic (it fails with RESOURCE_ALREADY_EXISTS when the scope
exists). Who holds it, and for how long, is written into the name of its key
(``holder.<who>.ttl.<seconds>``), since ``secrets/list`` shows key names and timestamps but
never values; the key's timestamp, set by the service, says since when.

Taking over is race-free the same way: a lock past its expiry is claimed by deleting its
holder key, which succeeds for one caller only (``secrets/delete`` answers
RESOURCE_DOES_NOT_EXIST to the others). Whoever writes a key then reads the holders back and
keeps the lock only if its key is the earliest; otherwise it withdraws. ``plan`` and
``drift`` take no lock.

Expiry compares the service's timestamp of the holder key with this machine's clock, so a
clock far off (more than the 15-minute time to live) can take a live lock over early.
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
from reconciler.retry import call_with_retry

log = logging.getLogger("pkgrepo.lock")

LOCK_SCOPE = f"pkgrepo-lock.{SCOPE}"
DEFAULT_TTL_SECONDS = 15 * 60
DEFAULT_WAIT_SECONDS = 60.0
_HOLDERLESS_GRACE_SECONDS = 10.0
"""A lock scope with no holder key: its creator may be about to write the key. After this
long it is taken as abandoned."""
_RELEASE_SECONDS = 30.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class LockHeld(UserError):
    """Another run holds the workspace's lock."""


@dataclass(frozen=True)
class Holder:
    who: str
    ttl_seconds: int
    since_ms: int
    """When the holder key was written, by the service's clock."""
    key: str

    @property
    def expires(self) -> float:
        return self.since_ms / 1000 + self.ttl_seconds

    def describe(self) -> str:
        since = dt.datetime.fromtimestamp(self.since_ms / 1000, tz=dt.UTC)
        until = dt.datetime.fromtimestamp(self.expires, tz=dt.UTC)
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


def holder_key(who: str, ttl_seconds: int) -> str:
    """Key names allow letters, digits and ``-_.`` only: anything else shows as ``_``."""
    return f"holder.{_UNSAFE.sub('_', who)[:80]}.ttl.{ttl_seconds}"


def holders(keys: Mapping[str, LiveSecret]) -> list[Holder]:
    """Every holder key, earliest first (ties broken by name): the first one holds."""
    found = []
    for key, secret in keys.items():
        if not key.startswith("holder.") or ".ttl." not in key:
            continue
        who, _, ttl = key[len("holder.") :].rpartition(".ttl.")
        if ttl.isdigit():
            found.append(Holder(who, int(ttl), secret.last_updated_ms, key))
    return sorted(found, key=lambda h: (h.since_ms, h.key))


def parse_holder(keys: Mapping[str, LiveSecret]) -> Holder | None:
    found = holders(keys)
    return found[0] if found else None


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
        self.key = holder_key(self.who, ttl_seconds)
        self.held = False
        self._created = False
        """This run created the lock scope but may not have written its key yet (the put
        failed): an empty lock scope is then its own to claim, without the grace wait."""

    def acquire(self) -> None:
        deadline = self.clock.monotonic() + self.wait_seconds
        holderless_since: float | None = None
        current: Holder | None = None
        while True:
            try:
                acquired, keys = self._step(holderless_since)
            except TransientError as exc:
                if self.clock.monotonic() >= deadline:
                    raise LockHeld(f"{self.workspace}: cannot take the lock: {exc}") from None
                self.clock.sleep(0.5)
                continue
            if acquired:
                self.held = True
                return
            now = self.clock.monotonic()
            current = parse_holder(keys) if keys is not None else None
            if keys is not None and current is None:
                holderless_since = holderless_since if holderless_since is not None else now
            else:
                holderless_since = None
            if now >= deadline:
                shown = current.describe() if current else "locked (holder not yet recorded)"
                raise LockHeld(
                    f"{self.workspace}: {shown}; waited {self.wait_seconds:.0f}s. If that run "
                    f"is gone, run `pkgrepo force-unlock {self.workspace} --file FILE`"
                )
            self.clock.sleep(min(1.0, max(0.05, deadline - now)))

    def _step(self, holderless_since: float | None) -> tuple[bool, Mapping[str, LiveSecret] | None]:
        """One attempt: whether the lock is ours, and the lock keys last seen."""
        if self.port.lock_create():
            self._created = True
            return self._claim(), None
        keys = self.port.lock_keys()
        if keys is None:
            return False, None  # released just now: the next attempt creates it
        current = parse_holder(keys)
        if current is None:
            waited = (
                holderless_since is not None
                and self.clock.monotonic() - holderless_since >= _HOLDERLESS_GRACE_SECONDS
            )
            if self._created:
                return self._claim(), keys
            if waited:
                log.warning("%s: taking over a lock without a holder", self.workspace)
                return self._claim(), keys
            return False, keys
        if current.key == self.key:
            return self._confirm(), keys
        # Only the caller whose delete succeeds may claim an expired lock: the others find
        # the key gone.
        if current.expires < self.clock.time() and self.port.lock_delete_key(current.key):
            log.warning("%s: taking over an expired lock (%s)", self.workspace, current.describe())
            return self._claim(), keys
        return False, keys

    def _claim(self) -> bool:
        self.port.lock_put(self.key)
        self._created = False
        return self._confirm()

    def _confirm(self) -> bool:
        keys = self.port.lock_keys() or {}
        first = parse_holder(keys)
        if first is not None and first.key == self.key:
            return True
        if self.key in keys:
            self.port.lock_delete_key(self.key)  # someone was first: withdraw
        return False

    def release(self) -> None:
        """Give the lock back. Never fails the run: the work under the lock is done, and a
        lock that cannot be removed expires on its own (or ``force-unlock`` removes it)."""
        if not self.held:
            return
        self.held = False
        try:
            call_with_retry(
                self._release_once,
                workspace=self.workspace,
                clock=self.clock,
                deadline=self.clock.monotonic() + _RELEASE_SECONDS,
            )
        except UserError as exc:
            log.warning(
                "%s: lock not released (%s); it expires after %ds, or run "
                "`pkgrepo force-unlock %s --file FILE`",
                self.workspace,
                exc,
                self.ttl_seconds,
                self.workspace,
            )

    def _release_once(self) -> None:
        keys = self.port.lock_keys()
        current = parse_holder(keys) if keys else None
        if current is not None and current.key != self.key:
            log.warning(
                "%s: the lock was taken over by %s; leaving it", self.workspace, current.who
            )
            return
        self.port.lock_delete()

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
