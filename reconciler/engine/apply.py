"""The applier: carries out one workspace's plan through a ``WorkspacePort``.

Changes run in dependency order (``plan.apply_order``). Every step is idempotent, so a run
cut off anywhere converges on the next one. Transient failures are retried with capped
exponential backoff within a deadline.

ACL writes go one at a time, and each is read back until the service shows it before the next
step starts, re-sent while it does not: the service acknowledges an ACL write it has not
applied, sometimes never applies it until it is sent again (databrickslabs/ucx#627, fixed by
re-putting in ucx PR #683), and gives inconsistent results for parallel ACL calls on one scope
(databricks/cli puts them one at a time, ``bundle/direct/dresources/secret_scope_acls.go``).
The Terraform provider re-puts until a read matches for up to 5 minutes
(``secrets/resource_secret_acl.go``, issue #4195, PR #4885): the settle deadline here is of the
same order and configurable (``apply --acl-settle-seconds``).

Every write is preceded by a ``guard`` call: the fleet passes one that raises once the run
is cancelled (SIGINT/SIGTERM) or its lease on the workspace's lock is in doubt, so no new
write starts after either; the write already sent finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from reconciler.core.errors import WorkspaceError
from reconciler.core.model import Ensure, Kind, WorkspaceSpec
from reconciler.core.plan import Action, Change, WorkspacePlan, apply_order
from reconciler.engine.clock import Clock
from reconciler.engine.port import WorkspacePort
from reconciler.engine.retry import Backoff, call_with_retry

T = TypeVar("T")

SAME_SECOND_PAUSE = 1.05
"""Seconds to wait before writing a key again whose new timestamp equals the previous one."""


@dataclass(frozen=True)
class ApplyOptions:
    allow_destroy: bool = False
    deadline_seconds: float = 300.0
    """How long transient failures of one workspace are retried before giving up."""
    acl_settle_seconds: float = 300.0
    """How long each ACL write may take to show in ``acls/list`` (re-sent meanwhile)."""
    backoff_initial: float = 0.25
    backoff_max: float = 8.0


@dataclass
class Journal:
    """What an apply has done so far (kept even when it fails half way, so the ledger
    can record the keys that were written)."""

    done: list[Change] = field(default_factory=list)
    stamps: dict[str, int] = field(default_factory=dict)
    """Key -> the timestamp the service showed right after pkgrepo's put. Read at once, so
    a write by someone else later in the apply is not mistaken for pkgrepo's."""
    stamped_at: float | None = None
    """When (the applier's monotonic clock) the listing that gave the last stamp in
    ``stamps`` was answered: whatever write that stamp belongs to, even another writer's,
    was handled before then."""


def _no_guard() -> None:
    return None


class Applier:
    def __init__(
        self,
        port: WorkspacePort,
        clock: Clock,
        options: ApplyOptions,
        *,
        guard: Callable[[], None] = _no_guard,
    ) -> None:
        self.port = port
        self.clock = clock
        self.options = options
        self.guard = guard
        self._workspace = ""

    def run(
        self,
        spec: WorkspaceSpec,
        plan: WorkspacePlan,
        progress: Journal,
        stamps_before: Mapping[str, int] | None = None,
    ) -> None:
        """Execute every change of ``plan`` in order; ``progress`` records what is done.
        ``stamps_before`` are the keys' timestamps the plan was made from."""
        before = stamps_before or {}
        plan.enforce(allow_destroy=self.options.allow_destroy)
        self._workspace = spec.name
        deadline = self.clock.monotonic() + self.options.deadline_seconds
        for change in apply_order(plan.changes):
            self._retry(partial(self._execute, spec, change), deadline)
            progress.done.append(change)
            if change.address.kind is Kind.ACL and spec.ensure is Ensure.PRESENT:
                # Read back before the next step: grants are narrowed only once the widened
                # ones show, so a delete never runs while a put is still unapplied.
                self._settle_acl(spec, change, deadline)
            if change.address.kind is Kind.SECRET and change.action is not Action.DELETE:
                key = change.address.name
                stamp = self._stamp(key, deadline)
                if stamp is not None and stamp == before.get(key):
                    # Whole-second timestamps: this write landed in the same second as the
                    # one seen before it, so its stamp cannot prove it is pkgrepo's. Write
                    # once more in a later second (the write is idempotent).
                    self.clock.sleep(SAME_SECOND_PAUSE)
                    self._retry(partial(self._execute, spec, change), deadline)
                    stamp = self._stamp(key, deadline)
                if stamp is not None:
                    progress.stamps[key] = stamp
                    progress.stamped_at = self.clock.monotonic()

    def _stamp(self, key: str, deadline: float) -> int | None:
        listed = self._retry(self.port.list_secrets, deadline)
        return listed[key].last_updated_ms if key in listed else None

    def _execute(self, spec: WorkspaceSpec, change: Change) -> None:
        self.guard()
        address, action = change.address, change.action
        if address.kind is Kind.SCOPE:
            if action is Action.CREATE:
                self.port.create_scope()
            elif action is Action.DELETE:
                self.port.delete_scope()
        elif address.kind is Kind.SECRET:
            if action is Action.DELETE:
                self.port.delete_secret(address.name)
            else:
                self.port.put_secret(address.name, spec.secrets[address.name])
        elif address.kind is Kind.ACL:
            if action is Action.DELETE:
                self.port.delete_acl(address.name)
            else:
                self.port.put_acl(address.name, spec.acls[address.name])

    def _guarded(self, write: Callable[..., None], *args: object) -> None:
        self.guard()
        write(*args)

    def _retry(self, fn: Callable[[], T], deadline: float) -> T:
        backoff = Backoff(self.options.backoff_initial, self.options.backoff_max)
        return call_with_retry(
            fn, workspace=self._workspace, clock=self.clock, deadline=deadline, backoff=backoff
        )

    def _settle_acl(self, spec: WorkspaceSpec, change: Change, deadline: float) -> None:
        """Read the ACLs back until ``change`` shows; re-send it (idempotent) while it does
        not, at growing intervals, so a listing that lags each write can catch up."""
        principal = change.address.name
        expected = None if change.action is Action.DELETE else spec.acls[principal]
        budget = self.options.acl_settle_seconds
        settle_by = self.clock.monotonic() + budget
        reads_until = max(deadline, settle_by)
        delay = self.options.backoff_initial
        resend_after = 1.0
        sent_at = self.clock.monotonic()
        while True:
            self.guard()
            live = self._retry(self.port.list_acls, reads_until)
            if live.get(principal) is expected:
                return
            now = self.clock.monotonic()
            if now + delay > settle_by:
                wanted = "removed" if expected is None else f"{expected.value}"
                raise WorkspaceError(
                    self._workspace,
                    f"the grant of {principal} ({wanted}) was acknowledged but still not "
                    f"shown by the service after {budget:.0f}s of reading back and re-sending "
                    "it; the next run sends it again (or raise --acl-settle-seconds)",
                )
            if now - sent_at >= resend_after:
                self._retry(partial(self._execute, spec, change), reads_until)
                sent_at = self.clock.monotonic()
                # Not capped like the reads: where each write restarts the listing's lag,
                # only a gap longer than the lag lets the grant show, and the lag is not
                # known (over 50 s was seen: databrickslabs/ucx#627).
                resend_after = min(resend_after * 2, budget / 2)
            self.clock.sleep(delay)
            delay = min(delay * 2, self.options.backoff_max)
