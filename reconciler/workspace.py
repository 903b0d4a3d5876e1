"""One workspace, end to end: read it, plan it, apply the plan, record the ledger, verify.

The fleet runs this for many workspaces; the CLI never calls the port directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from reconciler import ledger as ledger_doc
from reconciler.apply import Applier, ApplyOptions, Progress
from reconciler.clock import Clock, SystemClock
from reconciler.errors import TransientError, UserError
from reconciler.ledger_store import LedgerStore
from reconciler.model import Ledger, LiveState, SecretValue, WorkspaceSpec
from reconciler.plan import Change, WorkspacePlan, make_plan
from reconciler.port import WorkspacePort
from reconciler.retry import call_with_retry

log = logging.getLogger("pkgrepo.workspace")


@dataclass(frozen=True)
class Observation:
    live: LiveState
    ledger: Ledger


@dataclass(frozen=True)
class ApplyOutcome:
    workspace: str
    applied: tuple[Change, ...]
    remaining: tuple[Change, ...]
    """What a fresh plan still shows after the apply: empty on success."""

    @property
    def converged(self) -> bool:
        return not self.remaining


READ_DEADLINE_SECONDS = 120.0


def observe(
    spec: WorkspaceSpec,
    port: WorkspacePort,
    store: LedgerStore,
    hmac_key: SecretValue | None,
    *,
    clock: Clock | None = None,
) -> Observation:
    """Read the workspace (retrying transient failures) and its ledger."""
    clock = clock or SystemClock()
    snapshot = call_with_retry(
        port.read,
        workspace=spec.name,
        clock=clock,
        deadline=clock.monotonic() + READ_DEADLINE_SECONDS,
    )
    raw = store.load(spec.name, snapshot)
    return Observation(snapshot.live, ledger_doc.parse(raw, workspace=spec.name, hmac_key=hmac_key))


def plan_workspace(
    spec: WorkspaceSpec,
    port: WorkspacePort,
    store: LedgerStore,
    hmac_key: SecretValue | None,
    *,
    salt: str,
    clock: Clock | None = None,
    mask: Callable[[str], str] = lambda text: text,
) -> tuple[WorkspacePlan, Observation]:
    seen = observe(spec, port, store, hmac_key, clock=clock)
    return make_plan(spec, seen.live, seen.ledger, salt=salt, mask=mask), seen


def apply_workspace(
    spec: WorkspaceSpec,
    plan: WorkspacePlan,
    seen: Observation,
    port: WorkspacePort,
    store: LedgerStore,
    *,
    options: ApplyOptions,
    clock: Clock,
    salt: str,
    mask: Callable[[str], str] = lambda text: text,
) -> ApplyOutcome:
    """Apply ``plan`` (made from ``seen``), then plan again: success means nothing is left."""
    if not plan.has_changes:
        return ApplyOutcome(spec.name, (), ())
    progress = Progress()
    try:
        Applier(port, clock, options).run(spec, plan, progress)
    finally:
        if progress.done:
            _record_ledger(spec, seen.ledger, progress, port, store, clock, mask)
    check, _ = plan_workspace(
        spec, port, store, seen.ledger.hmac_key, salt=salt, clock=clock, mask=mask
    )
    return ApplyOutcome(spec.name, tuple(progress.done), check.changes)


def _record_ledger(
    spec: WorkspaceSpec,
    previous: Ledger,
    progress: Progress,
    port: WorkspacePort,
    store: LedgerStore,
    clock: Clock,
    mask: Callable[[str], str],
) -> None:
    """Write down what was written, even after a failure half way: the next plan then
    knows these keys were set by pkgrepo. After ``ensure: absent`` the ledger is emptied,
    so a later re-creation is not mistaken for a scope deleted out of band."""
    if previous.hmac_key is None:
        return
    updated = ledger_doc.after_apply(spec, previous, stamps=progress.stamps, mask=mask)
    document = ledger_doc.render(updated, workspace=spec.name)
    try:
        call_with_retry(
            lambda: store.save(spec.name, document, port),
            workspace=spec.name,
            clock=clock,
            deadline=clock.monotonic() + READ_DEADLINE_SECONDS,
        )
    except (UserError, TransientError) as exc:
        # Not fatal: the next plan sees these keys as modified outside pkgrepo and rewrites
        # them, and the verification plan reports the workspace as not converged.
        log.warning("%s: ledger not recorded: %s", spec.name, exc)
