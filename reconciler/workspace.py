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
from reconciler.model import MARKER_KEY, Ensure, Ledger, LiveState, SecretValue, WorkspaceSpec
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
    previous_key: SecretValue | None = None,
) -> Observation:
    """Read the workspace (retrying transient failures) and its ledger. ``previous_key``
    (``PKGREPO_LEDGER_KEY_PREVIOUS``) is accepted for a ledger during a key rotation."""
    clock = clock or SystemClock()
    snapshot = call_with_retry(
        port.read,
        workspace=spec.name,
        clock=clock,
        deadline=clock.monotonic() + READ_DEADLINE_SECONDS,
    )
    raw = store.load(spec.name, snapshot)
    ledger = ledger_doc.parse(
        raw, workspace=spec.name, hmac_key=hmac_key, previous_key=previous_key
    )
    return Observation(snapshot.live, ledger)


def plan_workspace(
    spec: WorkspaceSpec,
    port: WorkspacePort,
    store: LedgerStore,
    hmac_key: SecretValue | None,
    *,
    salt: str,
    clock: Clock | None = None,
    mask: Callable[[str], str] = lambda text: text,
    previous_key: SecretValue | None = None,
) -> tuple[WorkspacePlan, Observation]:
    seen = observe(spec, port, store, hmac_key, clock=clock, previous_key=previous_key)
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
    """Apply ``plan`` (made from ``seen``), then plan again: success means nothing is left.
    A plan with nothing to change but the ledger (a key rotation, a missing marker) records
    the ledger and writes no value."""
    if not plan.needs_apply:
        return ApplyOutcome(spec.name, (), ())
    progress = Progress()
    try:
        Applier(port, clock, options).run(spec, plan, progress)
    finally:
        if progress.done or plan.ledger_update:
            _record_ledger(spec, seen, progress, port, store, salt, clock, mask)
    check, _ = plan_workspace(
        spec, port, store, seen.ledger.hmac_key, salt=salt, clock=clock, mask=mask
    )
    return ApplyOutcome(spec.name, tuple(progress.done), check.changes)


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
    so a later re-creation is not mistaken for a scope deleted out of band.

    Before the ledger, the scope's marker key (``model.MARKER_KEY``) is written if it is
    missing, and its timestamp recorded in the ledger: from then on the workspace is known
    to be managed, so a deleted or replaced ledger is reported, never trusted as empty."""
    previous = seen.ledger
    if previous.hmac_key is None:
        return
    deadline = clock.monotonic() + READ_DEADLINE_SECONDS
    try:
        marker_ms = _ensure_marker(spec, store, port, clock, deadline)
    except (UserError, TransientError) as exc:
        # The ledger is still worth recording; the next plan says the marker is missing.
        log.warning("%s: ledger marker not written: %s", spec.name, exc)
        marker_ms = None
    try:
        updated = ledger_doc.after_apply(
            spec,
            previous,
            stamps=progress.stamps,
            salt=salt,
            mask=mask,
            live=seen.live,
            marker_ms=marker_ms,
        )
        document = ledger_doc.render(updated, workspace=spec.name)
        call_with_retry(
            lambda: store.save(spec.name, document, port),
            workspace=spec.name,
            clock=clock,
            deadline=deadline,
        )
    except (UserError, TransientError) as exc:
        # Not fatal: the next plan sees these keys as modified outside pkgrepo and rewrites
        # them, and the verification plan reports the workspace as not converged.
        log.warning("%s: ledger not recorded: %s", spec.name, exc)


def _ensure_marker(
    spec: WorkspaceSpec, store: LedgerStore, port: WorkspacePort, clock: Clock, deadline: float
) -> int | None:
    """The marker key's timestamp, writing the key first if the scope lacks it (never
    rewritten once there: its timestamp is what ties the ledger to this scope). ``None``
    after ``ensure: absent``, or when the scope is gone."""
    if spec.ensure is not Ensure.PRESENT:
        return None
    listed = call_with_retry(port.list_secrets, workspace=spec.name, clock=clock, deadline=deadline)
    if MARKER_KEY not in listed:
        where = "a workspace file" if store.in_workspace else "a local file (--ledger)"
        note = f"pkgrepo keeps this scope's ledger in {where}; do not delete this key"
        call_with_retry(
            lambda: port.put_secret(MARKER_KEY, SecretValue(note)),
            workspace=spec.name,
            clock=clock,
            deadline=deadline,
        )
        listed = call_with_retry(
            port.list_secrets, workspace=spec.name, clock=clock, deadline=deadline
        )
    marker = listed.get(MARKER_KEY)
    return marker.last_updated_ms if marker is not None else None
