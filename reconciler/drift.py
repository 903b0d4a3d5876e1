"""Drift: what differs between Git and the live workspaces, as a report for a cron job (pure).

A drift report is a plan seen from the other side. The planner already knows why each
change is needed (``plan.Drift``: changed in Git, modified outside pkgrepo, added or removed
out of band, ACL changes, scope missing, unverifiable, not yet applied) and how serious it is
(``plan.Severity``: HIGH when access widens or installs are redirected). This module keeps
both exactly as the planner decided them, so ``plan`` and ``drift`` never disagree, and adds
what a report needs besides: the workspaces that could not be read, counts, and the exit
code (0 in sync, 2 drift, 1 when any workspace could not be read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.fleet import FleetPlan, WorkspaceResult
from reconciler.plan import Action, Change, Drift, Plan, Severity, WorkspacePlan

EXIT_IN_SYNC = 0
EXIT_ERROR = 1
EXIT_DRIFT = 2


@dataclass(frozen=True)
class DriftItem:
    """One difference. ``before``/``after`` are the planner's redacted texts (``None`` where
    nothing exists); ``message`` says why, for people."""

    address: str
    kind: Drift
    severity: Severity
    message: str
    before: str | None
    after: str | None
    action: Action

    @classmethod
    def of(cls, change: Change) -> DriftItem:
        return cls(
            address=str(change.address),
            kind=change.drift,
            severity=change.severity,
            message=change.reason,
            before=change.before,
            after=change.after,
            action=change.action,
        )

    @property
    def high(self) -> bool:
        return self.severity is Severity.HIGH


@dataclass(frozen=True)
class WorkspaceDrift:
    """One workspace: its differences, or the reason it could not be read."""

    workspace: str
    host: str
    items: tuple[DriftItem, ...] = ()
    error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def readable(self) -> bool:
        return self.error is None

    @property
    def has_drift(self) -> bool:
        return bool(self.items)

    @property
    def high(self) -> int:
        return sum(1 for item in self.items if item.high)

    @property
    def status(self) -> str:
        """``error``, ``drift`` or ``in-sync``: what a CI dashboard shows for it."""
        if self.error is not None:
            return "error"
        return "drift" if self.items else "in-sync"

    def ordered_items(self) -> list[DriftItem]:
        """High severity first, then by address (the order renderers show them in)."""
        return sorted(self.items, key=lambda item: (not item.high, item.address))


@dataclass(frozen=True)
class Unreadable:
    """A workspace the fleet could not plan, and why (a message without any secret)."""

    workspace: str
    host: str
    error: str


@dataclass(frozen=True)
class DriftReport:
    """Every selected workspace, in the order they were selected."""

    workspaces: tuple[WorkspaceDrift, ...]

    @property
    def has_drift(self) -> bool:
        return any(ws.has_drift for ws in self.workspaces)

    @property
    def has_errors(self) -> bool:
        return any(not ws.readable for ws in self.workspaces)

    @property
    def exit_code(self) -> int:
        """1 when a workspace could not be read (the others are still reported), else 2
        when anything differs, else 0."""
        if self.has_errors:
            return EXIT_ERROR
        return EXIT_DRIFT if self.has_drift else EXIT_IN_SYNC

    @property
    def items(self) -> list[DriftItem]:
        return [item for ws in self.workspaces for item in ws.items]

    def counts(self) -> Counts:
        items = self.items
        by_kind = {kind: 0 for kind in Drift}
        for item in items:
            by_kind[item.kind] += 1
        return Counts(
            workspaces=len(self.workspaces),
            drifted=sum(1 for ws in self.workspaces if ws.has_drift),
            unreadable=sum(1 for ws in self.workspaces if not ws.readable),
            items=len(items),
            high=sum(1 for item in items if item.high),
            by_kind=by_kind,
        )


@dataclass(frozen=True)
class Counts:
    workspaces: int
    drifted: int
    unreadable: int
    items: int
    high: int
    by_kind: Mapping[Drift, int]

    @property
    def in_sync(self) -> int:
        return self.workspaces - self.drifted - self.unreadable

    @property
    def low(self) -> int:
        return self.items - self.high


def workspace_drift(plan: WorkspacePlan) -> WorkspaceDrift:
    """The differences of one planned workspace: every change that is not a no-op."""
    items = tuple(
        DriftItem.of(c)
        for c in plan.changes
        if c.action is not Action.NOOP or c.drift is Drift.KEYVAULT
    )
    return WorkspaceDrift(plan.workspace, plan.host, items, warnings=plan.warnings)


def from_plan(plan: Plan, unreadable: Iterable[Unreadable] = ()) -> DriftReport:
    """A report from a plan plus the workspaces that could not be planned (listed after)."""
    rows = [workspace_drift(ws) for ws in plan.workspaces]
    rows += [WorkspaceDrift(u.workspace, u.host, error=u.error) for u in unreadable]
    return DriftReport(tuple(rows))


def from_results(
    results: Sequence[WorkspaceResult], hosts: Mapping[str, str] | None = None
) -> DriftReport:
    """A report from a fleet's per-workspace results, keeping their order. ``hosts`` names
    the host of workspaces that failed before a plan (and so a host) existed."""
    hosts = hosts or {}
    rows: list[WorkspaceDrift] = []
    for result in results:
        if result.plan is not None and result.error is None:
            rows.append(workspace_drift(result.plan))
        else:
            host = result.plan.host if result.plan else hosts.get(result.workspace, "")
            error = (result.error or "could not be read").removeprefix(f"{result.workspace}: ")
            rows.append(WorkspaceDrift(result.workspace, host, error=error))
    return DriftReport(tuple(rows))


def from_fleet(fleet_plan: FleetPlan, hosts: Mapping[str, str] | None = None) -> DriftReport:
    """A report from ``Fleet.plan``: the planned workspaces and the failed ones, in order."""
    return from_results(fleet_plan.results, hosts)
