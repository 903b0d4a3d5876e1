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
from dataclasses import dataclass, replace

from reconciler.core.model import Kind
from reconciler.core.plan import (
    Action,
    Change,
    Drift,
    Plan,
    Severity,
    Unreadable,
    WorkspacePlan,
    finding_note,
    ledger_note,
)
from reconciler.core.results import FleetPlan, WorkspaceResult

EXIT_IN_SYNC = 0
EXIT_ERROR = 1
EXIT_DRIFT = 2


@dataclass(frozen=True)
class DriftItem:
    """One difference, stated so that on-call can act on it: what happened (``message``),
    who it is attributed to, how severe it is, and the two ways to settle it: let apply
    restore what Git declares (``settle_apply``), or change Git to accept what is live
    (``settle_git``). ``live``/``desired`` are the planner's redacted texts (``None`` where
    nothing exists)."""

    address: str
    kind: Drift
    severity: Severity
    message: str
    live: str | None
    desired: str | None
    action: Action
    attributed_to: str = ""
    settle_apply: str = ""
    settle_git: str = ""

    @classmethod
    def of(cls, change: Change) -> DriftItem:
        settle_apply, settle_git = settle(change)
        return cls(
            address=str(change.address),
            kind=change.drift,
            severity=change.severity,
            message=change.reason,
            live=change.before,
            desired=change.after,
            action=change.action,
            attributed_to=attribution(change),
            settle_apply=settle_apply,
            settle_git=settle_git,
        )

    @property
    def high(self) -> bool:
        return self.severity is Severity.HIGH

    def fails(self, fail_on: Severity) -> bool:
        """Whether this item fails a job run with ``--fail-on`` ``fail_on``."""
        return self.high or fail_on is Severity.LOW


OUTSIDE = "outside pkgrepo"
BEFORE_PKGREPO = "before pkgrepo managed this scope (unknown)"
DESIRED_STATE = "the desired state (Git, or an env/file value it reads)"

_ATTRIBUTION = {
    Drift.CHANGED_IN_GIT: DESIRED_STATE,
    Drift.MODIFIED_OUTSIDE: OUTSIDE,
    Drift.ADDED_OUT_OF_BAND: OUTSIDE,
    Drift.REMOVED_OUT_OF_BAND: OUTSIDE,
    Drift.ACL_ADDED: OUTSIDE,
    Drift.ACL_REMOVED: OUTSIDE,
    Drift.ACL_CHANGED: OUTSIDE,
    Drift.SCOPE_MISSING: OUTSIDE,
    Drift.LEDGER_MISSING: OUTSIDE,
    Drift.UNVERIFIABLE: "unknown (no trusted ledger entry says who wrote the value)",
    Drift.CREATOR_GRANT: "the service (it gives whoever creates the scope MANAGE)",
    Drift.INTERRUPTED: "pkgrepo (its own write, cut off before it was confirmed)",
    Drift.NEW: "the desired state (not applied yet)",
    Drift.KEYVAULT: "Azure Key Vault (pkgrepo cannot write a Key Vault backed scope)",
}


def attribution(change: Change) -> str:
    """Who a difference is attributed to, in one vocabulary across every format."""
    if "before pkgrepo managed" in change.reason:
        return BEFORE_PKGREPO
    return _ATTRIBUTION[change.drift]


def settle(change: Change) -> tuple[str, str]:
    """The two ways to settle a difference: (what apply does, what to change in Git)."""
    kind, action = change.address.kind, change.action
    name = change.address.name
    if change.drift is Drift.LEDGER_MISSING:
        return (
            "apply (with PKGREPO_LEDGER_KEY) writes every value from Git again and records "
            "a new ledger",
            "nothing in Git can vouch for the live values: restore the ledger from a "
            "trusted copy, or apply",
        )
    if change.drift is Drift.KEYVAULT:
        return (
            "nothing: apply cannot write a Key Vault backed scope",
            "change the secret in Azure Key Vault, or the desired state to match it",
        )
    if change.drift is Drift.INTERRUPTED:
        return ("apply writes it again to confirm it", "nothing: the value is the one in Git")
    if change.drift is Drift.NEW:
        return ("apply rolls it out", "remove it from Git if it is not wanted")
    if change.drift is Drift.CHANGED_IN_GIT:
        return (
            "apply rolls the desired state out",
            "revert the change in Git (or in the env/file value it reads)",
        )
    if kind is Kind.SCOPE:
        if action is Action.DELETE:
            return (
                "apply deletes the scope (with --allow-destroy)",
                "declare the workspace present to keep it",
            )
        return (
            "apply creates the scope and writes its keys and grants again",
            "declare the workspace ensure: absent to accept it",
        )
    if kind is Kind.SECRET:
        if action is Action.CREATE:
            return ("apply writes the key again", f"remove {name} from Git to accept the deletion")
        if action is Action.DELETE:
            return (
                "apply deletes the key",
                f"declare {name} in Git (or list it under ignore:) to keep it",
            )
        return (
            "apply writes the value from Git again",
            f"set {name} in Git to the live value to keep it (apply then records it)",
        )
    if action is Action.NOOP:
        return (
            "apply leaves it (ACLs are additive): remove the grant by hand, or set "
            "acls_mode: exact",
            f"declare `{name}: {change.before}` under acls to accept it",
        )
    if action is Action.CREATE:
        return ("apply grants it again", f"remove {name} from acls to accept the removal")
    if action is Action.DELETE:
        return (
            "apply removes the grant",
            f"declare `{name}: {change.before}` under acls to keep it",
        )
    return (
        f"apply sets it back to {change.after}",
        f"declare `{name}: {change.before}` under acls to keep it",
    )


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

    def failing(self, fail_on: Severity) -> bool:
        return any(item.fails(fail_on) for item in self.items)

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
class DriftReport:
    """Every selected workspace, in the order they were selected. ``fail_on`` is the lowest
    severity that fails the job (``--fail-on``): with ``high``, low-severity drift is still
    reported and exits 0."""

    workspaces: tuple[WorkspaceDrift, ...]
    fail_on: Severity = Severity.LOW
    orphaned: tuple[str, ...] = ()
    """Workspaces pkgrepo managed that the file no longer names (see ``Plan.orphaned``):
    reported as drift, so removing a workspace from the file is never silent."""

    @property
    def has_drift(self) -> bool:
        return any(ws.has_drift for ws in self.workspaces) or bool(self.orphaned)

    @property
    def failing(self) -> bool:
        """Drift at or above ``fail_on``; an orphaned workspace always fails (nothing
        checks it any more, whatever its drift)."""
        return any(item.fails(self.fail_on) for item in self.items) or bool(self.orphaned)

    @property
    def has_errors(self) -> bool:
        return any(not ws.readable for ws in self.workspaces)

    @property
    def exit_code(self) -> int:
        """1 when a workspace could not be read (the others are still reported), else 2
        when anything at or above ``fail_on`` differs, else 0."""
        if self.has_errors:
            return EXIT_ERROR
        return EXIT_DRIFT if self.failing else EXIT_IN_SYNC

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
    """The differences of one planned workspace: every change that is not a no-op (but a Key Vault
    difference, which a person fixes in Key Vault), and the
    findings apply does not change (a missing ledger, a widening under additive ACLs)."""
    items = tuple(
        DriftItem.of(c)
        for c in plan.changes
        if c.action is not Action.NOOP or c.drift is Drift.KEYVAULT
    )
    items += tuple(DriftItem.of(f) for f in plan.findings)
    said = {finding_note(f) for f in plan.findings}
    if plan.ledger_update:
        said.add(ledger_note(plan.ledger_update))
    warnings = tuple(w for w in plan.warnings if w not in said)
    return WorkspaceDrift(plan.workspace, plan.host, items, warnings=warnings)


def from_plan(
    plan: Plan, unreadable: Iterable[Unreadable] = (), *, fail_on: Severity = Severity.LOW
) -> DriftReport:
    """A report from a plan plus the workspaces that could not be planned (listed after)."""
    rows = [workspace_drift(ws) for ws in plan.workspaces]
    failed = (*plan.unreadable, *unreadable)
    rows += [WorkspaceDrift(u.workspace, u.host, error=u.error) for u in failed]
    return DriftReport(tuple(rows), fail_on)


def from_results(
    results: Sequence[WorkspaceResult],
    hosts: Mapping[str, str] | None = None,
    *,
    fail_on: Severity = Severity.LOW,
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
    return DriftReport(tuple(rows), fail_on)


def from_fleet(
    fleet_plan: FleetPlan,
    hosts: Mapping[str, str] | None = None,
    *,
    fail_on: Severity = Severity.LOW,
) -> DriftReport:
    """A report from ``Fleet.plan``: the planned workspaces and the failed ones, in order."""
    return from_results(fleet_plan.results, hosts, fail_on=fail_on)


def with_warnings(report: DriftReport, extra: Mapping[str, Sequence[str]]) -> DriftReport:
    """The report with ``extra`` warnings added to the named workspaces (for example a
    pip-cert that expires within the warning window), after the planner's own."""
    rows = tuple(
        replace(ws, warnings=(*ws.warnings, *extra[ws.workspace]))
        if extra.get(ws.workspace)
        else ws
        for ws in report.workspaces
    )
    return replace(report, workspaces=rows)
