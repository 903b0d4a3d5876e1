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
from reconciler.errors import TransientError, UserError, WorkspaceError
from reconciler.ledger_store import LedgerStore
from reconciler.model import Backend, Ensure, Ledger, LiveState, SecretValue, WorkspaceSpec
from reconciler.plan import Action, Change, WorkspacePlan, make_plan
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
    _check_backend(spec, seen.live)
    return make_plan(spec, seen.live, seen.ledger, salt=salt, mask=mask), seen


def _check_backend(spec: WorkspaceSpec, live: LiveState) -> None:
    """A file can require what backs the scope (``backend:``); pkgrepo cannot create or
    convert a Key Vault backed scope (that takes a Microsoft Entra ID user's token and the
    vault's details), so a mismatch fails the workspace with what to do."""
    if spec.backend is None or spec.ensure is Ensure.ABSENT:
        return
    if spec.backend is Backend.AZURE_KEYVAULT and not live.scope_exists:
        raise WorkspaceError(
            spec.name,
            "the file requires an Azure Key Vault backed scope (backend: azure_keyvault) and "
            "there is no scope: create it in the workspace with the vault's details (as a "
            "Microsoft Entra ID user), then run again",
        )
    if live.scope_exists and live.backend is not spec.backend:
        raise WorkspaceError(
            spec.name,
            f"the file requires backend: {spec.backend.setting}, but the scope is backed by "
            f"{live.backend.setting}; pkgrepo does not convert scopes: change the file, or "
            "re-create the scope by hand",
        )


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
        stamps = {k: s.last_updated_ms for k, s in seen.live.secrets.items()}
        Applier(port, clock, options).run(spec, plan, progress, stamps)
    finally:
        if progress.done:
            _record_ledger(spec, seen, progress, port, store, salt, clock, mask)
    check, _ = plan_workspace(
        spec, port, store, seen.ledger.hmac_key, salt=salt, clock=clock, mask=mask
    )
    remaining = tuple(c for c in check.changes if c.action is not Action.NOOP)
    return ApplyOutcome(spec.name, tuple(progress.done), remaining)


def _record_ledger(
    spec: WorkspaceSpec,
    seen: Observation,
    progress: Progress,
    port: WorkspacePort,
    store: LedgerStore,
    salt: str,
    clock: Clock,
    mask: Callable[[str], str],
) -> None:
    """Write down what was written, even after a failure half way: the next plan then
    knows these keys were set by pkgrepo. After ``ensure: absent`` the ledger is emptied,
    so a later re-creation is not mistaken for a scope deleted out of band."""
    previous, seen_live = seen.ledger, seen.live
    if previous.hmac_key is None:
        return
    unproven = frozenset(
        key
        for key, stamp in progress.stamps.items()
        if (before := seen_live.secrets.get(key)) is not None and before.last_updated_ms == stamp
    )
    if unproven:
        # Whole-second timestamps: a write by someone else within the same second as
        # pkgrepo's own carries the same stamp. Not trusted; the next plan says so.
        log.warning(
            "%s: %s: the service's timestamp cannot tell pkgrepo's write from another in the "
            "same second; not recorded as verified",
            spec.name,
            ", ".join(sorted(unproven)),
        )
    updated = ledger_doc.after_apply(
        spec, previous, stamps=progress.stamps, salt=salt, mask=mask, unproven=unproven
    )
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
