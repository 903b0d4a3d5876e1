"""An advisory lock per workspace, held on a short lease that the holder keeps renewing, so
two ``apply`` runs never interleave their writes and a run that dies frees its workspaces
within one lease, with nobody running ``force-unlock``.

It needs no infrastructure beyond the workspace: the lock is a secret scope of its own,
because ``scopes/create`` is atomic (RESOURCE_ALREADY_EXISTS when the scope exists), and
``secrets/list`` shows key names and service timestamps (never values). In that scope:

- ``holder.<run>.lease.<seconds>`` is written once, when a run takes the lock: it names the
  run (a random run id, which the run's log prints; nothing about the user or machine) and
  the lease it renews on. Its service timestamp says since when. The earliest holder key
  holds (ties broken by name); a later claimer withdraws.
- ``beat.<run>`` is written again by the holder's heartbeat every third of a lease: its
  service timestamp moving is how others see the holder alive.

The rules follow Kubernetes leader-election leases:

- A **waiter** takes over only after it has seen the record (holder key and beat timestamp)
  unchanged for a whole lease, timed on its own monotonic clock from the moment it saw the
  record change. No clock of one machine is ever compared with another's, or with the
  service's: a runner whose clock is hours off waits exactly as long as any other. Taking
  over deletes the holder key, which succeeds for one caller only (the others get
  RESOURCE_DOES_NOT_EXIST), then claims as usual.
- The **holder** counts its lease from when it *sent* the renewal that it then read back as
  still its own (earlier than the service saw it, so never later than a waiter's count).
  It stops writing a margin before that lease could pass (``check``), and never resumes:
  a waiter may already be on its way in. The margin covers the time a write takes to reach
  the service; a write the network holds back longer than that is the one case a lease
  cannot fence (the service has no conditional writes), so requests are kept short.

Any user may create a scope of the lock's name and renew a holder key in it. A lock scope
this run did not create is honoured only when whoever may write to it is trusted: pkgrepo's
identity, a manager of the managed scope, or a workspace admin (asked through SCIM, so
another admin running pkgrepo is waited for as ever). Anyone else's access is revoked and
the holder keys they wrote are removed (``WorkspaceLock._disown``); when the workspace cannot
say who is an admin, the lock is honoured while renewed, with a warning.

``plan`` and ``drift`` take no lock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.core.errors import LeaseLost, LockHeld, TransientError, UserError
from reconciler.core.model import SCOPE, LiveSecret, LiveState, Permission, WorkspaceSpec
from reconciler.engine.clock import Clock
from reconciler.engine.port import LockPort
from reconciler.engine.retry import call_with_retry

log = logging.getLogger("pkgrepo.lock")

LOCK_SCOPE = f"pkgrepo-lock.{SCOPE}"
DEFAULT_LEASE_SECONDS = 60
MIN_LEASE_SECONDS = 1
MAX_LEASE_SECONDS = 600
"""A holder key may declare any lease; waiters bound it, so a key written by hand can hold a
workspace for ten minutes at most without renewing."""
DEFAULT_WAIT_SECONDS = 90.0
"""How long a run waits for a *live* holder before giving up on that workspace. A holder
that stopped renewing is always waited out (its lease, then a takeover), whatever this is."""
_HOLDERLESS_GRACE_SECONDS = 10.0
"""A lock scope with no holder key: its creator may be about to write the key. After this
long it is taken as abandoned."""
_RELEASE_SECONDS = 30.0
MAX_LOOKUPS = 20
"""At most this many writers of one lock scope are looked up (see ``WorkspaceLock._vet``)."""
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_run_id() -> str:
    """A random id for this run: what other runs see as the lock holder, and what the run's
    own log prints, so the two can be matched without naming a user or machine."""
    return "r" + secrets.token_hex(6)


def holder_key(run: str, lease_seconds: int) -> str:
    if not _RUN_ID.match(run):
        raise ValueError(f"not a run id: {run!r}")
    return f"holder.{run}.lease.{lease_seconds}"


def beat_key(run: str) -> str:
    return f"beat.{run}"


@dataclass(frozen=True)
class Holder:
    run: str
    lease_seconds: int
    """As declared by the holder, bounded to [MIN_LEASE_SECONDS, MAX_LEASE_SECONDS]."""
    since_ms: int
    """When the holder key was written, by the service's clock (shown, never compared)."""
    key: str
    beat_ms: int | None = None
    """The service timestamp of the holder's latest renewal, if any was seen."""

    @property
    def who(self) -> str:
        return self.run

    @property
    def record(self) -> tuple[str, int, int | None]:
        """What a waiter watches: any change means the holder is alive."""
        return (self.key, self.since_ms, self.beat_ms)

    def describe(self, *, unchanged_for: float | None = None, now: float | None = None) -> str:
        """``unchanged_for``: how long the waiter has seen this record unchanged (its own
        monotonic clock); ``now``: the waiter's wall clock, only to print a time of day."""
        since = dt.datetime.fromtimestamp(self.since_ms / 1000, tz=dt.UTC)
        text = f"locked by run {self.run} since {since:%Y-%m-%d %H:%M:%S} UTC"
        if unchanged_for is None or now is None:
            return f"{text} (lease {self.lease_seconds}s)"
        left = max(0.0, self.lease_seconds - unchanged_for)
        until = dt.datetime.fromtimestamp(now + left, tz=dt.UTC)
        return (
            f"{text}; lease {self.lease_seconds}s, not renewed for {unchanged_for:.0f}s, "
            f"runs out at {until:%H:%M:%S} UTC unless renewed"
        )


_HOLDER = re.compile(r"^holder\.([A-Za-z0-9_-]{1,64})\.lease\.(\d{1,9})$")
_LEGACY_HOLDER = re.compile(r"^holder\.([A-Za-z0-9_.-]{1,80})\.ttl\.(\d{1,9})$")
"""What earlier versions wrote (a fixed time to live, never renewed): honoured as a lease
of that length (bounded like any other), so a run of an older version is not taken over
while it works."""


def holders(keys: Mapping[str, LiveSecret]) -> list[Holder]:
    """Every well-formed holder key, earliest first (ties broken by name): the first one
    holds. Anything else in the scope is ignored, never trusted, never a crash."""
    found = []
    for key, secret in keys.items():
        match = _HOLDER.match(key) or _LEGACY_HOLDER.match(key)
        if match is None:
            continue
        run, lease = match.group(1), int(match.group(2))
        lease = min(MAX_LEASE_SECONDS, max(MIN_LEASE_SECONDS, lease))
        beat = keys.get(beat_key(run))
        found.append(
            Holder(
                run,
                lease,
                secret.last_updated_ms,
                key,
                beat.last_updated_ms if beat is not None else None,
            )
        )
    return sorted(found, key=lambda h: (h.since_ms, h.key))


def parse_holder(keys: Mapping[str, LiveSecret]) -> Holder | None:
    found = holders(keys)
    return found[0] if found else None


class WorkspaceLock:
    """``with WorkspaceLock(...) as lock:`` holds the lock of one workspace for the block;
    ``lock.check()`` before every write raises ``LeaseLost`` once the lease is in doubt.

    ``heartbeat=True`` renews from a thread of its own (real time); tests drive ``renew``
    by hand against a fake clock."""

    def __init__(
        self,
        workspace: str,
        port: LockPort,
        clock: Clock,
        *,
        run: str | None = None,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        heartbeat: bool = True,
        stop: threading.Event | None = None,
        trusted: frozenset[str] | None = None,
    ) -> None:
        if not MIN_LEASE_SECONDS <= lease_seconds <= MAX_LEASE_SECONDS:
            raise UserError(
                f"the lock lease must be between {MIN_LEASE_SECONDS} and "
                f"{MAX_LEASE_SECONDS} seconds"
            )
        self.workspace = workspace
        self.port = port
        self.clock = clock
        self.run = run or new_run_id()
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.key = holder_key(self.run, lease_seconds)
        self.beat = beat_key(self.run)
        self.held = False
        self.service_ms: int | None = None
        """The service's timestamp of this run's latest confirmed renewal: a point on the
        service's clock at which the lock was certainly held (the write-ahead ledger dates
        its intents with it)."""
        self.trusted = trusted
        """Who may have created a lock scope without a warning (see ``trusted_creators``);
        None checks nothing."""
        self._vetted: str | None = None
        """The holder key (or "" for none) of the lock scope last vetted; None: not yet."""
        self._admins: frozenset[str] = frozenset()
        """Writers the workspace confirmed as admins."""
        self._named: frozenset[str] = frozenset()
        self._disowned = False
        self._won = False
        """This run's revoke of the untrusted creator's grant succeeded (see ``_disown``)."""
        """This run took the lock scope away from an untrusted writer (see ``_first``)."""
        self._heartbeat = heartbeat
        self._stop_waiting = stop
        """Set when the run is being cancelled: stop waiting for the lock."""
        self._created = False
        """This run created the lock scope but may not have written its key yet (the put
        failed): an empty lock scope is then its own to claim, without the grace wait."""
        self._mutex = threading.Lock()
        self._valid_until = 0.0
        self._lost: str | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # -- timing --------------------------------------------------------------------------

    @property
    def renew_every(self) -> float:
        return self.lease_seconds / 3

    @property
    def margin(self) -> float:
        """How long before its lease could pass the holder stops writing: room for a write
        already sent to reach the service."""
        return self.lease_seconds / 4

    # -- acquiring -----------------------------------------------------------------------

    def acquire(self) -> None:
        started = self.clock.monotonic()
        waited_enough = started + self.wait_seconds
        deadline = waited_enough
        holderless_since: float | None = None
        seen: tuple[str, int, int | None] | None = None
        seen_at = started
        alive = False
        """The holder renewed while this run watched: it is waited for ``wait_seconds``
        only. A holder silent since first seen is waited out (one lease) however short
        ``wait_seconds`` is: a dead run's lock passes on by itself."""
        current: Holder | None = None
        while True:
            if self._stop_waiting is not None and self._stop_waiting.is_set():
                raise LockHeld(f"{self.workspace}: stopped waiting for the lock (interrupted)")
            now = self.clock.monotonic()
            try:
                sent = now
                acquired, keys = self._step(holderless_since, seen, seen_at)
            except TransientError as exc:
                if self.clock.monotonic() >= deadline:
                    raise LockHeld(f"{self.workspace}: cannot take the lock: {exc}") from None
                self.clock.sleep(0.5)
                continue
            if acquired:
                self._start(sent)
                return
            now = self.clock.monotonic()
            current = self._first(keys) if keys is not None else None
            if current is not None and current.record != seen:
                alive = alive or (seen is not None and current.key == seen[0])
                seen, seen_at = current.record, now
            if keys is not None and current is None:
                holderless_since = holderless_since if holderless_since is not None else now
            else:
                holderless_since = None
            if current is not None and not alive:
                deadline = max(waited_enough, seen_at + current.lease_seconds + 2 * self._poll)
            elif current is None and holderless_since is not None:
                deadline = max(waited_enough, holderless_since + _HOLDERLESS_GRACE_SECONDS + 2)
            else:  # a live holder (seen renewing): waited for as long as asked, no longer
                deadline = waited_enough
            if now >= deadline:
                if current is not None:
                    shown = current.describe(unchanged_for=now - seen_at, now=self.clock.time())
                else:
                    shown = "locked (holder not yet recorded)"
                raise LockHeld(
                    f"{self.workspace}: {shown}; waited {now - started:.0f}s for it. The lock "
                    "passes on by itself once that run stops renewing it; if it is stuck, "
                    f"`pkgrepo force-unlock --workspace {self.workspace} --file FILE` removes it"
                )
            self.clock.sleep(min(self._poll, max(0.05, deadline - now)))

    def _first(self, keys: Mapping[str, LiveSecret]) -> Holder | None:
        """The holder, as this run waits for it. In a lock scope this run took away from an
        untrusted writer, a holder key left there (one the writer slipped in while access
        was being revoked) passes on within this run's own lease, however long a lease it
        declares: a pkgrepo run there renews well within it."""
        first = parse_holder(keys)
        if first is not None and self._disowned and first.lease_seconds > self.lease_seconds:
            return dataclasses.replace(first, lease_seconds=self.lease_seconds)
        return first

    @property
    def _poll(self) -> float:
        return max(0.05, min(1.0, self.lease_seconds / 10))

    def _step(
        self,
        holderless_since: float | None,
        seen: tuple[str, int, int | None] | None,
        seen_at: float,
    ) -> tuple[bool, Mapping[str, LiveSecret] | None]:
        """One attempt: whether the lock is ours, and the lock keys last seen."""
        if self.port.lock_create():
            self._created = True
            return self._claim(), None
        read_at = self.clock.monotonic()
        keys = self.port.lock_keys()
        if keys is None:
            self._vetted, self._won = None, False  # released: the next scope is vetted afresh
            return False, None  # ... and the next attempt creates it
        if self._vet(keys):
            return self._claim(), keys
        first = self._first(keys)
        if first is None:
            waited = (
                holderless_since is not None
                and self.clock.monotonic() - holderless_since >= _HOLDERLESS_GRACE_SECONDS
            )
            if self._created:
                return self._claim(), keys
            if waited and self._strip():
                log.warning("%s: taking over a lock without a holder", self.workspace)
                return self._claim(), keys
            return False, keys
        if first.key == self.key:
            return self._confirm(), keys
        # The record this read shows is the one seen a whole lease ago (this read was sent
        # after the lease had passed on our clock): nobody renewed it. Only the caller whose
        # delete succeeds may claim; the others find the key gone.
        unchanged = seen is not None and first.record == seen
        expired = unchanged and read_at - seen_at >= first.lease_seconds
        if expired and self.port.lock_delete_key(first.key):
            log.warning(
                "%s: taking over the lock of run %s: not renewed for a whole lease (%ds)",
                self.workspace,
                first.run,
                first.lease_seconds,
            )
            self.port.lock_delete_key(beat_key(first.run))
            if not self._strip():
                return False, keys  # claimed once no untrusted writer is left
            return self._claim(), keys
        return False, keys

    # -- who made the lock scope ----------------------------------------------------------

    def _vet(self, keys: Mapping[str, LiveSecret]) -> bool:
        """Check who may write to a lock scope this run did not create, once per lock seen
        (again whenever its holder changes). Anyone may create a scope of that name and
        renew a holder key in it to block applies; only a scope whose writers are pkgrepo's
        identity, managers of the managed scope, or workspace admins (which includes
        another admin running pkgrepo) is honoured. For any other writer, pkgrepo says so
        once, revokes its access and removes the holder keys it could have written, then
        claims the lock (``_disown``). When the workspace cannot say whether a writer is an
        admin, the lock is honoured while renewed, with a warning: a lock that may be
        legitimate is never broken because a lookup failed.

        Returns True when this run removed the untrusted holders and may claim at once."""
        if self.trusted is None:
            return False
        first = parse_holder(keys)
        marker = first.key if first is not None else ""
        if self._vetted == marker:
            return False
        writers = self.port.lock_writers()
        if writers is None:
            return False
        if not set(writers) - {"admins"} and not self._disowned:
            # Every lock scope a pkgrepo run makes keeps its creator's grant. One with none
            # (a user who made it and then dropped their own grant) vouches for nobody: its
            # holder is waited for at most this run's lease, however long it declares.
            self._disowned = True
            log.warning(
                "%s: the lock scope %s has no creator's grant, so no pkgrepo run made it: "
                "its holder is waited for at most %ds",
                self.workspace,
                LOCK_SCOPE,
                self.lease_seconds,
            )
        disowned = self._vet_writers(writers, keys)
        self._vetted = marker  # only once vetted in full: a failure part way is tried again
        return disowned

    def _vet_writers(
        self, writers: Mapping[str, Permission], keys: Mapping[str, LiveSecret]
    ) -> bool:
        strangers = sorted(set(writers) - self.trusted_or_admin)
        if not strangers:
            return False
        # A lock scope pkgrepo makes has one grant (its creator's). A writer list longer
        # than this is not asked about in full (a user could pad it with admins' names):
        # whoever is not looked up counts as untrusted.
        verdicts: dict[str, bool | str] = {
            name: self.port.admin_status(name) for name in strangers[:MAX_LOOKUPS]
        }
        verdicts.update((name, False) for name in strangers[MAX_LOOKUPS:])
        self._admins |= {name for name, v in verdicts.items() if v is True}
        untrusted = [name for name in strangers if verdicts[name] is False]
        unknown = {name: v for name, v in verdicts.items() if isinstance(v, str)}
        if not untrusted:
            if unknown and not self._said(frozenset(unknown)):
                reasons = sorted(set(unknown.values()))
                log.warning(
                    "%s: the lock scope %s was created by %s, which is neither pkgrepo's "
                    "identity nor a manager of the managed scope, and whether it is a "
                    "workspace admin could not be checked (%s): its lock is honoured only "
                    "while renewed; an admin can remove it with `pkgrepo force-unlock`",
                    self.workspace,
                    LOCK_SCOPE,
                    shown_names(unknown),
                    "; ".join(_printable(r, 200) for r in reasons[:3]),
                )
            return False
        if not self._said(frozenset(untrusted)):
            log.warning(
                "%s: the lock scope %s was created by %s, which is neither a workspace admin "
                "nor pkgrepo's identity nor a manager of the managed scope: its lock is not "
                "honoured; pkgrepo revokes that access and removes the holder keys it wrote",
                self.workspace,
                LOCK_SCOPE,
                shown_names(untrusted),
            )
        others = [name for name in strangers if name not in self._admins]
        return self._disown(untrusted[0], others, keys)

    def _said(self, names: frozenset[str]) -> bool:
        """Whether these principals were already named by this run's lock (say it once)."""
        if names <= self._named:
            return True
        self._named |= names
        return False

    def _disown(self, first: str, strangers: list[str], keys: Mapping[str, LiveSecret]) -> bool:
        """Take an untrusted lock scope away from its writers; True when this run may claim.

        Never deletes the scope by name: between reading its ACLs and deleting it, another
        run could have removed it and made its own, which a delete would then break. What
        it does instead is safe against any interleaving:

        1. Revoke the untrusted writers' grants. Only the first caller's revoke of ``first``
           succeeds (the service answers RESOURCE_DOES_NOT_EXIST to the others): that run,
           and only it, removes holders. Revoking never affects an admin or a trusted
           identity, which write without a grant or are never revoked.
        2. With no untrusted writer left, the holder keys in ``keys`` (read before the
           revoke) were written by the untrusted writers: a pkgrepo run only ever claims in
           a scope it did not create after revoking every untrusted writer (``_strip``),
           which it can do only after this run's revoke, so its key is not in ``keys``.
        3. Delete those holder keys (each delete has one winner). If every one was this
           run's to delete, claim at once; otherwise another run took one over, and the
           usual rules decide."""
        # A retry after a failure part way is still the run whose revoke succeeded.
        self._won = self._revoke(first) or self._won
        won = self._won
        for name in strangers:
            if name != first:
                self._revoke(name)
        for _ in range(3):  # a writer granted again meanwhile is revoked too
            writers = self.port.lock_writers()
            if writers is None:
                return False  # the scope is gone: the next attempt creates one
            left = sorted(set(writers) - self.trusted_or_admin)
            if not left:
                break
            for name in left:
                self._revoke(name)
        else:
            log.warning(
                "%s: could not revoke %s's access to the lock scope %s; its lock is "
                "honoured only while renewed",
                self.workspace,
                shown_names(left),
                LOCK_SCOPE,
            )
            return False
        if not won:
            return False  # another run revoked it first and removes the holders
        self._disowned = True
        found = holders(keys)
        removed = [self.port.lock_delete_key(holder.key) for holder in found]
        for holder in found:
            self.port.lock_delete_key(beat_key(holder.run))
        return bool(removed) and all(removed)

    @property
    def trusted_or_admin(self) -> frozenset[str]:
        return (self.trusted or frozenset()) | self._admins

    def _revoke(self, principal: str) -> bool:
        try:
            return self.port.lock_revoke(principal)
        except UserError as exc:  # e.g. not allowed: the lock is then left as it is
            log.debug("%s: could not revoke lock access: %s", self.workspace, exc)
            return False

    def _strip(self) -> bool:
        """Before claiming in a lock scope this run did not create: revoke every writer that
        is not trusted (admins write without a grant, so revoking theirs costs nothing).
        Then no untrusted writer can renew a key there, and ``_disown`` by another run never
        finds this run's holder key among those it removes. False (do not claim yet) unless
        the scope's ACLs, read again, show no such writer left."""
        if self.trusted is None:
            return True
        try:
            writers = self.port.lock_writers() or {}
            for name in sorted(set(writers) - self.trusted_or_admin):
                self._revoke(name)
            left = set(self.port.lock_writers() or {}) - self.trusted_or_admin
        except (TransientError, UserError) as exc:
            log.debug("%s: could not read the lock scope's ACLs: %s", self.workspace, exc)
            return False
        return not left

    def _claim(self) -> bool:
        self.port.lock_put(self.key)
        self._created = False
        return self._confirm()

    def _confirm(self) -> bool:
        self.port.lock_put(self.beat)
        keys = self.port.lock_keys() or {}
        first = parse_holder(keys)
        if first is not None and first.key == self.key:
            beat = keys.get(self.beat)
            self.service_ms = beat.last_updated_ms if beat else first.since_ms
            return True
        for key in (self.key, self.beat):
            if key in keys:
                self.port.lock_delete_key(key)  # someone was first: withdraw
        return False

    def _start(self, sent: float) -> None:
        with self._mutex:
            self.held = True
            self._lost = None
            self._valid_until = sent + self.lease_seconds - self.margin
        if self._heartbeat:
            self._stopped.clear()
            self._thread = threading.Thread(
                target=self._beat, name=f"lease-{self.workspace}", daemon=True
            )
            self._thread.start()

    # -- holding -------------------------------------------------------------------------

    def renew(self) -> bool:
        """One renewal: write the beat key, read the holders back. True while the lock is
        still this run's; the lease then counts from when the beat was sent."""
        if self._lost is not None or not self.held:
            return False
        sent = self.clock.monotonic()
        try:
            self.check()
        except LeaseLost:
            return False  # a beat now could make a waiter think a silent holder is alive
        try:
            self.port.lock_put(self.beat)
            keys = self.port.lock_keys()
        except (TransientError, UserError) as exc:
            log.debug("%s: lock renewal failed: %s", self.workspace, exc)
            return False
        except Exception as exc:  # never a trace from the heartbeat thread; the lease decides
            log.debug("%s: lock renewal failed: %s", self.workspace, type(exc).__name__)
            return False
        first = parse_holder(keys or {})
        with self._mutex:
            if self._lost is not None:
                return False
            if first is None or first.key != self.key:
                by = f"by run {first.run}" if first is not None else "(lock removed)"
                self._lost = f"the lock was taken over {by}"
                return False
            if sent + self.lease_seconds - self.margin <= self._valid_until:
                return True
            if self.clock.monotonic() >= self._valid_until:
                # Too late: the lease may already have passed; never resume writing.
                self._lost = (
                    f"could not renew the lock within its {self.lease_seconds}s lease "
                    "(the workspace or network is too slow)"
                )
                return False
            self._valid_until = sent + self.lease_seconds - self.margin
            beat = (keys or {}).get(self.beat)
            if beat is not None:
                self.service_ms = beat.last_updated_ms
            return True

    def _beat(self) -> None:
        while not self._stopped.wait(self._next_beat()):
            self.renew()
            if self._lost is not None:
                return

    def _next_beat(self) -> float:
        """Every third of a lease; sooner while the last renewal failed."""
        with self._mutex:
            left = self._valid_until - self.clock.monotonic()
        regular = self.renew_every
        due = left - (self.lease_seconds - self.margin - regular)
        return max(0.05, min(regular, due if due > 0 else regular / 4))

    def check(self) -> None:
        """Raise ``LeaseLost`` unless this run may still write to the workspace."""
        with self._mutex:
            if self._lost is None and self.clock.monotonic() >= self._valid_until:
                self._lost = (
                    f"could not renew the lock within its {self.lease_seconds}s lease "
                    "(the workspace or network is too slow)"
                )
            lost = self._lost
        if lost is not None:
            raise LeaseLost(self.workspace, f"stopped writing here: {lost}")

    @property
    def lost(self) -> str | None:
        return self._lost

    # -- releasing -----------------------------------------------------------------------

    def _stop_heartbeat(self) -> None:
        """Stop renewing. A renewal still in flight is not waited for long: landing after
        the release it finds no lock scope, or a beat key of no holder, which is ignored."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def release(self) -> None:
        """Give the lock back. Never fails the run: the work under the lock is done, and a
        lock that cannot be removed passes on by itself once its lease runs out."""
        if not self.held:
            return
        self.held = False
        self._stop_heartbeat()
        if self._lost is not None:
            log.warning("%s: %s; leaving the lock to its holder", self.workspace, self._lost)
            return
        try:
            call_with_retry(
                self._release_once,
                workspace=self.workspace,
                clock=self.clock,
                deadline=self.clock.monotonic() + _RELEASE_SECONDS,
            )
        except UserError as exc:
            log.warning(
                "%s: lock not released (%s); it passes on by itself %ds after this run",
                self.workspace,
                exc,
                self.lease_seconds,
            )

    def _release_once(self) -> None:
        keys = self.port.lock_keys()
        current = parse_holder(keys) if keys else None
        if current is not None and current.key != self.key:
            log.warning(
                "%s: the lock was taken over by run %s; leaving it", self.workspace, current.run
            )
            return
        self.port.lock_delete()

    def __enter__(self) -> WorkspaceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _printable(text: str, limit: int = 100) -> str:
    """Principal names and reasons come from the service; a log line is no place to trust
    them: control characters become ``?`` and long names are cut."""
    shown = "".join(c if c.isprintable() else "?" for c in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def shown_names(names: Iterable[str]) -> str:
    listed = sorted(names)
    shown = ", ".join(_printable(name) for name in listed[:5])
    return shown if len(listed) <= 5 else f"{shown} and {len(listed) - 5} more"


def read_holder(port: LockPort) -> tuple[bool, Holder | None]:
    """Whether the workspace is locked, and by whom (None: no holder recorded)."""
    keys = port.lock_keys()
    if keys is None:
        return False, None
    return True, parse_holder(keys)


def trusted_creators(live: LiveState, spec: WorkspaceSpec) -> frozenset[str]:
    """Who may write to a lock scope this run honours without asking the workspace:
    pkgrepo's own identity, the ``admins`` group, and whoever holds MANAGE on the managed
    scope, live or desired (they can change the settings anyway). Anyone else is honoured
    only if the workspace says it is an admin."""
    names = {"admins"}
    names |= {p for p, perm in live.acls.items() if perm is Permission.MANAGE}
    names |= {p for p, perm in spec.acls.items() if perm is Permission.MANAGE}
    if live.identity:
        names.add(live.identity)
    return frozenset(names)


def force_unlock(port: LockPort) -> Holder | None:
    """Remove a workspace's lock whoever holds it; returns who held it."""
    keys = port.lock_keys()
    if keys is None:
        return None
    holder = parse_holder(keys)
    port.lock_delete()
    return holder
