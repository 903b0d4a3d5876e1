"""The applier: carries out one workspace's plan through a ``WorkspacePort``.

Changes run in dependency order (``plan.apply_order``). Every step is idempotent, so a run
cut off anywhere converges on the next one. Transient failures are retried with capped
exponential backoff within a deadline. ACL writes are read back until the service shows
them: it is known to acknowledge an ACL put before it is visible.

Every write is preceded by a ``guard`` call: the fleet passes one that raises once the run
is cancelled (SIGINT/SIGTERM) or its lease on the workspace's lock is in doubt, so no new
write starts after either; the write already sent finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from reconciler.clock import Clock
from reconciler.errors import PlanRefused, WorkspaceError
from reconciler.model import Ensure, Kind, Permission, WorkspaceSpec
from reconciler.plan import Action, Change, WorkspacePlan, apply_order
from reconciler.port import WorkspacePort
from reconciler.retry import Backoff, call_with_retry

T = TypeVar("T")


@dataclass(frozen=True)
class ApplyOptions:
    allow_destroy: bool = False
    deadline_seconds: float = 300.0
    """How long transient failures of one workspace are retried before giving up."""
    acl_settle_seconds: float = 30.0
    """How long to wait for ACL writes to become visible."""
    backoff_initial: float = 0.25
    backoff_max: float = 8.0


@dataclass
class Progress:
    """What an apply has done so far (kept even when it fails half way, so the ledger
    can record the keys that were written)."""

    done: list[Change] = field(default_factory=list)
    stamps: dict[str, int] = field(default_factory=dict)
    """Key -> the timestamp the service showed right after pkgrepo's put. Read at once, so
    a write by someone else later in the apply is not mistaken for pkgrepo's."""


def check_allowed(plan: WorkspacePlan, options: ApplyOptions) -> None:
    if plan.destructive and not options.allow_destroy:
        raise PlanRefused(
            f"{plan.workspace}: this plan {plan.destructive}; "
            "review it and rerun with --allow-destroy"
        )


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

    def run(self, spec: WorkspaceSpec, plan: WorkspacePlan, progress: Progress) -> None:
        """Execute every change of ``plan`` in order; ``progress`` records what is done."""
        check_allowed(plan, self.options)
        self._workspace = spec.name
        deadline = self.clock.monotonic() + self.options.deadline_seconds
        settled = False
        for change in apply_order(plan.changes):
            if not settled and change.address.kind is Kind.ACL and change.action is Action.DELETE:
                # Grants are narrowed only once the widened ones are visible: the service may
                # acknowledge a put before it applies it, and a delete in that window could
                # leave the scope with no MANAGE grant at all.
                self._settle(spec, progress, deadline)
                settled = True
            self._retry(partial(self._execute, spec, change), deadline)
            progress.done.append(change)
            if change.address.kind is Kind.SECRET and change.action is not Action.DELETE:
                listed = self._retry(self.port.list_secrets, deadline)
                if change.address.name in listed:
                    progress.stamps[change.address.name] = listed[
                        change.address.name
                    ].last_updated_ms
        self._settle(spec, progress, deadline)

    def _settle(self, spec: WorkspaceSpec, progress: Progress, deadline: float) -> None:
        acl_writes = {
            c.address.name: None if c.action is Action.DELETE else spec.acls[c.address.name]
            for c in progress.done
            if c.address.kind is Kind.ACL
        }
        if acl_writes and spec.ensure is Ensure.PRESENT:
            self._settle_acls(acl_writes, deadline)

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

    def _settle_acls(self, expected: Mapping[str, Permission | None], deadline: float) -> None:
        """Read ACLs back until every write shows; re-send writes the service dropped."""
        settle_by = min(deadline, self.clock.monotonic() + self.options.acl_settle_seconds)
        delay = self.options.backoff_initial
        checks = 0
        while True:
            self.guard()
            live = self._retry(self.port.list_acls, deadline)
            missing = {p: v for p, v in expected.items() if live.get(p) is not v}
            if not missing:
                return
            checks += 1
            if self.clock.monotonic() + delay > settle_by:
                raise WorkspaceError(
                    self._workspace,
                    f"ACL changes not visible after {self.options.acl_settle_seconds:.0f}s: "
                    + ", ".join(sorted(missing)),
                )
            if checks >= 3:  # still not there: send the writes again (they are idempotent)
                for principal, permission in sorted(missing.items()):
                    if permission is None:
                        self._retry(
                            partial(self._guarded, self.port.delete_acl, principal), deadline
                        )
                    else:
                        self._retry(
                            partial(self._guarded, self.port.put_acl, principal, permission),
                            deadline,
                        )
            self.clock.sleep(delay)
            delay = min(delay * 2, self.options.backoff_max)
