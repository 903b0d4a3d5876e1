"""One workspace, end to end: read it, plan it, apply the plan, record the ledger, verify.

The fleet runs this for many workspaces; the CLI never calls the port directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.core import diff
from reconciler.core import ledger as ledger_doc
from reconciler.core.errors import Cancelled, TransientError, UserError, WorkspaceError
from reconciler.core.model import (
    MANAGED_KEYS,
    MARKER_KEY,
    Backend,
    Ensure,
    Kind,
    Ledger,
    LiveSecret,
    LiveState,
    Permission,
    SecretValue,
    WorkspaceSpec,
)
from reconciler.core.plan import Action, Change, WorkspacePlan, make_plan
from reconciler.core.results import Observation
from reconciler.edges.ledger_store import LedgerStore
from reconciler.engine.apply import Applier, ApplyOptions, Journal
from reconciler.engine.clock import Clock, SystemClock
from reconciler.engine.port import Snapshot, WorkspacePort
from reconciler.engine.retry import call_with_retry

log = logging.getLogger("pkgrepo.workspace")


@dataclass(frozen=True)
class ApplyOutcome:
    workspace: str
    applied: tuple[Change, ...]
    remaining: tuple[Change, ...]
    """What a fresh plan still shows after the apply: empty on success."""
    stopped: UserError | None = None
    """Why the apply stopped before its last change (cancelled, or the lock's lease in
    doubt); ``remaining`` is then what was planned and not applied."""

    @property
    def converged(self) -> bool:
        return not self.remaining and self.stopped is None


@dataclass(frozen=True)
class WriteAhead:
    """What the write-ahead ledger needs to date its intents: the run's id and a window on
    the service's clock in which this run's writes can land."""

    run: str
    since_ms: int
    """A moment (service clock) at which this run certainly held the workspace's lock."""
    window_seconds: float
    """How long after ``since_ms`` a write of this apply can still land."""


def _no_guard() -> None:
    return None


READ_DEADLINE_SECONDS = 120.0
CANCELLED_LEDGER_SECONDS = 5.0
SEAL_AFTER_SECONDS = 1.1
"""How long after the listing that gave the stamps was answered the values are read back
to seal the entries: a stamp is a whole second, and once that second has ended on the
service's clock no other write can carry it. The service handled the write behind a stamp
before that listing was answered, and handles the read back after this run sends it, so a
pause of one second here is at least one second there (the margin covers clocks running
at slightly different rates, and service hosts whose clocks differ by less than a tenth of
a second)."""


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
    parsed: dict[bytes | None, Ledger] = {}

    def load(snapshot: Snapshot) -> Ledger:
        """The ledger, loaded and verified once however often it is asked for."""
        if snapshot.ledger not in parsed:
            raw = store.load(spec.name, snapshot)
            parsed[snapshot.ledger] = ledger_doc.parse(
                raw, workspace=spec.name, hmac_key=hmac_key, previous_key=previous_key
            )
        return parsed[snapshot.ledger]

    def proven(secrets: Mapping[str, LiveSecret], document: bytes | None) -> frozenset[str]:
        listed = Snapshot(LiveState(scope_exists=True, secrets=secrets), document)
        return ledger_doc.proven_keys(load(listed), secrets)

    snapshot = call_with_retry(
        lambda: port.read(proven),
        workspace=spec.name,
        clock=clock,
        deadline=clock.monotonic() + READ_DEADLINE_SECONDS,
    )
    return Observation(snapshot.live, load(snapshot))


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
    guard: Callable[[], None] = _no_guard,
    work_clock: Clock | None = None,
    write_ahead: WriteAhead | None = None,
    stop_errors: tuple[type[UserError], ...] = (),
) -> ApplyOutcome:
    """Apply ``plan`` (made from ``seen``), then plan again: success means nothing is left.

    The ledger is written ahead: the intents before the first secret is put, the confirmed
    entries after (also after a failure or a cancel half way, for what was written). A
    ``guard`` that raises one of ``stop_errors`` stops the apply cleanly: what was written is
    recorded (unless the guard says the lock is lost: then another run may be writing the
    ledger) and the outcome says what was not applied. ``work_clock`` is the applier's
    (its sleeps may end a cancelled run); the ledger is recorded on ``clock``.

    A plan with nothing to change but the ledger (a key rotation, a missing marker) records
    the ledger and writes no value."""
    if not plan.needs_apply:
        return ApplyOutcome(spec.name, (), ())
    progress = Journal()
    previous = seen.ledger
    stopped: UserError | None = None
    sealed: frozenset[str] = frozenset()
    try:
        if previous.hmac_key is not None:
            guard()
            previous = _record_intents(spec, plan, seen, port, store, clock, write_ahead)
        stamps = {k: s.last_updated_ms for k, s in seen.live.secrets.items()}
        Applier(port, work_clock or clock, options, guard=guard).run(spec, plan, progress, stamps)
        if previous.hmac_key is not None:
            sealed = _seal(spec, seen, port, progress, work_clock or clock, guard)
    except stop_errors as exc:
        stopped = exc
    finally:
        if (progress.done or plan.ledger_update) and _may_write(guard):
            # A cancelled run records quickly: the operator is waiting for it to exit.
            seconds = CANCELLED_LEDGER_SECONDS if stopped is not None else READ_DEADLINE_SECONDS
            _record_ledger(
                spec,
                plan,
                previous,
                seen.live,
                progress,
                port,
                store,
                clock,
                mask,
                seconds,
                # A Key Vault backed scope refuses every put: no marker there.
                write_marker=stopped is None and seen.live.backend is Backend.DATABRICKS,
                adopting=not seen.ledger.stored and MARKER_KEY not in seen.live.secrets,
                sealed=sealed,
            )
    if stopped is not None:
        done = set(progress.done)
        left = tuple(c for c in plan.changes if c.action is not Action.NOOP and c not in done)
        return ApplyOutcome(spec.name, tuple(progress.done), left, stopped)
    check, _ = plan_workspace(
        spec, port, store, seen.ledger.hmac_key, salt=salt, clock=clock, mask=mask
    )
    remaining = tuple(c for c in check.changes if c.action is not Action.NOOP)
    return ApplyOutcome(spec.name, tuple(progress.done), remaining)


def _seal(
    spec: WorkspaceSpec,
    seen: Observation,
    port: WorkspacePort,
    progress: Journal,
    clock: Clock,
    guard: Callable[[], None],
) -> frozenset[str]:
    """The keys whose ledger entries this apply seals (``LedgerEntry.sealed``): their
    values, read back once their stamp's second has ended, are the declared ones and
    still carry the stamp recorded. Later plans need not read them back while the stamp
    stays. Two kinds: the keys this apply put, and keys an older apply wrote whose entries
    are not sealed yet (the plan read them back and they matched; ``plan`` says so).

    The wait runs from the moment the listing that gave the stamps was answered: the write
    behind a stamp, pkgrepo's or anyone's, was handled before then (for older keys, a
    listing made here). Sealing is optional work: where ``secrets/get`` does not answer
    (known from the plan's read, or from one probe before the wait when the plan could not
    tell), on a cancel, a lost lease or any failure, nothing is sealed and the entries are
    kept as before."""
    stamps = dict(progress.stamps)
    older = {
        key: seen.ledger.entries[key].last_updated_ms
        for key in ledger_doc.sealable_keys(spec, seen.live, seen.ledger)
        if key not in stamps
    }
    proven = ledger_doc.proven_keys(seen.ledger, seen.live.secrets)
    asked = [s for k, s in seen.live.secrets.items() if k in MANAGED_KEYS and k not in proven]
    if not (stamps or older) or (asked and all(s.value is None for s in asked)):
        return frozenset()  # the plan's read asked for values and got none: get refused
    try:
        anchor = progress.stamped_at
        if anchor is None or (older and not stamps):
            listed = port.list_secrets()
            anchor = clock.monotonic()
            older = {
                k: ms for k, ms in older.items() if k in listed and listed[k].last_updated_ms == ms
            }
        recorded = stamps | older
        keys = sorted(recorded)
        if not asked and port.read_values(keys[:1]) is None:
            return frozenset()  # the probe: no wait where the service will not answer
        wait = anchor + SEAL_AFTER_SECONDS - clock.monotonic()
        if wait > 0:
            clock.sleep(wait)
        guard()
        values = port.read_values(keys)
        if values is None:
            return frozenset()
        listed = port.list_secrets()
    except Exception as exc:  # cancelled, lease in doubt, any failure: optional work
        log.debug("%s: values not sealed (%s)", spec.name, type(exc).__name__)
        return frozenset()
    return frozenset(
        key
        for key in keys
        if key in values
        and key in listed
        and key in spec.secrets
        and recorded[key] > 0  # a listing without a stamp proves no second
        and listed[key].last_updated_ms == recorded[key]
        and diff.same_value(key, values[key].plaintext, spec.secrets[key].plaintext)
    )


def _may_write(guard: Callable[[], None]) -> bool:
    """Whether the ledger may still be written: a cancelled run records what it wrote; a
    run whose lease is in doubt does not (another run may already own the ledger)."""
    try:
        guard()
    except Cancelled:
        return True
    except UserError:
        return False
    return True


def _record_intents(
    spec: WorkspaceSpec,
    plan: WorkspacePlan,
    seen: Observation,
    port: WorkspacePort,
    store: LedgerStore,
    clock: Clock,
    write_ahead: WriteAhead | None,
) -> Ledger:
    """Before any secret is put: store the ledger with an intent per key about to be
    written. A run killed after this and before its confirmation leaves the intents, and
    the next plan knows those keys as its own interrupted writes. If the intents cannot be
    stored, nothing is written."""
    keys = [
        c.address.name
        for c in plan.changes
        if c.address.kind is Kind.SECRET and c.action in (Action.CREATE, Action.UPDATE)
    ]
    if not keys:
        return seen.ledger
    if write_ahead is not None:
        run, since, window = write_ahead.run, write_ahead.since_ms, write_ahead.window_seconds
    else:  # no lock to date it by: after the latest write this run has seen
        latest = max((s.last_updated_ms for s in seen.live.secrets.values()), default=0)
        run, since, window = "unknown", latest + 1, 3600.0
    intended = ledger_doc.with_intents(
        spec, seen.ledger, keys, run=run, since_ms=since, until_ms=since + int(window * 1000)
    )
    document = ledger_doc.render(intended, workspace=spec.name)
    call_with_retry(
        lambda: store.save(spec.name, document, port),
        workspace=spec.name,
        clock=clock,
        deadline=clock.monotonic() + READ_DEADLINE_SECONDS,
    )
    return intended


def _record_ledger(
    spec: WorkspaceSpec,
    plan: WorkspacePlan,
    previous: Ledger,
    live: LiveState,
    progress: Journal,
    port: WorkspacePort,
    store: LedgerStore,
    clock: Clock,
    mask: Callable[[str], str],
    seconds: float = READ_DEADLINE_SECONDS,
    *,
    write_marker: bool = True,
    adopting: bool = False,
    sealed: frozenset[str] = frozenset(),
) -> None:
    """Write down what was written, even after a failure half way: the next plan then
    knows these keys were set by pkgrepo. After ``ensure: absent`` the ledger is emptied,
    so a later re-creation is not mistaken for a scope deleted out of band.

    Before the ledger, the scope's marker key (``model.MARKER_KEY``) is written if it is
    missing (not by a stopped run), and its timestamp recorded in the ledger: from then on
    the workspace is known to be managed, so a deleted or replaced ledger is reported, never
    trusted as empty."""
    if previous.hmac_key is None:
        return
    unproven = frozenset(
        key
        for key, stamp in progress.stamps.items()
        if (before := live.secrets.get(key)) is not None and before.last_updated_ms == stamp
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
    deadline = clock.monotonic() + seconds
    known = live.secrets.get(MARKER_KEY)
    try:
        if write_marker:
            marker_ms = _ensure_marker(spec, store, port, clock, deadline)
        else:  # a stopped run writes nothing new; the next apply writes the marker
            marker_ms = known.last_updated_ms if known is not None else None
    except (UserError, TransientError) as exc:
        # The ledger is still worth recording; the next plan says the marker is missing.
        log.warning("%s: ledger marker not written: %s", spec.name, exc)
        marker_ms = None
    written: dict[str, Permission | None] = {
        c.address.name: None if c.action is Action.DELETE else spec.acls[c.address.name]
        for c in progress.done
        if c.address.kind is Kind.ACL
    }
    pending = {
        c.address.name
        for c in plan.changes
        if c.address.kind is Kind.ACL and c.action is not Action.NOOP
    } - set(written)
    updated = ledger_doc.after_apply(
        spec,
        previous,
        stamps=progress.stamps,
        acl_written=written,
        acl_pending=pending,
        mask=mask,
        live=live,
        marker_ms=marker_ms,
        adopting=adopting,
        unproven=unproven,
        sealed=sealed - unproven,
    )
    document = ledger_doc.render(updated, workspace=spec.name)
    try:
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
