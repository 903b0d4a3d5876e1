"""Many workspaces at once: concurrency, waves and failure limits.

Thin on purpose (orchestration only): planning and applying one workspace is
``reconciler.engine.workspace``; what the results look like is ``reconciler.core.report``.
It is handed the workspaces already chosen (the command line parses ``--workspace``,
``--select`` and ``--shard``). Workspaces run concurrently up to ``parallelism``; apply goes
wave by wave (lower ``wave`` first) and a wave starts only when the previous one fully
succeeded. A failure in one workspace never hides the results of the others.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from reconciler.core.errors import (
    Cancelled,
    LeaseLost,
    LockHeld,
    TransientError,
    UserError,
    WorkspaceError,
)
from reconciler.core.model import SecretValue, WorkspaceSpec
from reconciler.core.plan import WorkspacePlan, live_digest
from reconciler.core.results import FleetPlan, Listener, Observation, Status, WorkspaceResult
from reconciler.edges.ledger_store import LedgerStore
from reconciler.engine.apply import ApplyOptions
from reconciler.engine.cancel import Cancel
from reconciler.engine.clock import Clock, InterruptibleClock, SystemClock
from reconciler.engine.lock import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_WAIT_SECONDS,
    WorkspaceLock,
    new_run_id,
    trusted_creators,
)
from reconciler.engine.parallel import in_parallel
from reconciler.engine.port import WorkspacePort
from reconciler.engine.workspace import WriteAhead, apply_workspace, observe, plan_workspace

DEFAULT_PARALLELISM = 32
T = TypeVar("T")
R = TypeVar("R")


def _describe(exc: BaseException) -> str:
    """What went wrong, without the workspace name (results are keyed by it)."""
    if isinstance(exc, WorkspaceError):
        return exc.detail
    if isinstance(exc, (UserError, TransientError)):
        return str(exc)
    return f"unexpected {type(exc).__name__}"


@dataclass(frozen=True)
class Reached(Generic[T]):
    """What ``each_workspace`` got from one workspace: ``value``, or ``error`` (the reason,
    without the workspace name)."""

    spec: WorkspaceSpec
    value: T | None = None
    error: str | None = None


def each_workspace(
    specs: Sequence[WorkspaceSpec],
    connect: Callable[[WorkspaceSpec], WorkspacePort],
    work: Callable[[WorkspaceSpec, WorkspacePort], T],
    *,
    parallelism: int = DEFAULT_PARALLELISM,
) -> list[Reached[T]]:
    """Run ``work`` on each workspace in parallel, in the order of ``specs``; a workspace
    that fails gives its reason and never hides the others. The one thread pool for
    workspaces: ``Fleet`` plans and applies with it, and commands that only read (export,
    force-unlock) use it directly."""

    def one(spec: WorkspaceSpec) -> Reached[T]:
        try:
            return Reached(spec, value=work(spec, connect(spec)))
        except Exception as exc:  # one workspace's surprise must not hide the others
            return Reached(spec, error=_describe(exc))

    return in_parallel(specs, one, parallelism)


class Fleet:
    """Runs plan and apply over workspaces. ``connect`` builds a port per workspace (one
    client each); ports are reused between plan and apply."""

    def __init__(
        self,
        connect: Callable[[WorkspaceSpec], WorkspacePort],
        store: LedgerStore,
        hmac_key: SecretValue | None,
        *,
        parallelism: int = DEFAULT_PARALLELISM,
        clock: Clock | None = None,
        listener: Listener | None = None,
        lock_wait_seconds: float = DEFAULT_WAIT_SECONDS,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        mask: Callable[[str], str] = lambda text: text,
        cancel: Cancel | None = None,
        run_id: str | None = None,
        previous_key: SecretValue | None = None,
    ) -> None:
        if parallelism < 1:
            raise UserError("--parallelism must be at least 1")
        self._connect = connect
        self._store = store
        self._hmac_key = hmac_key
        self._previous_key = previous_key
        self.parallelism = parallelism
        self.cancel = cancel or Cancel()
        self._clock = clock or SystemClock()
        self._work_clock = InterruptibleClock(self._clock, self.cancel.event)
        """For the applier: its backoffs end as soon as the run is cancelled."""
        self.listener = listener
        self._lock_wait = lock_wait_seconds
        self._lease = lease_seconds
        self.run_id = run_id or new_run_id()
        """Names this run on the locks it holds (and in its log)."""
        self._mask = mask
        self._ports: dict[str, WorkspacePort] = {}
        self._lock = threading.Lock()

    def _port(self, spec: WorkspaceSpec) -> WorkspacePort:
        with self._lock:
            port = self._ports.get(spec.name)
        if port is not None:
            return port
        port = self._connect(spec)
        with self._lock:
            self._ports[spec.name] = port
        return port

    def _release(self, name: str) -> None:
        """A workspace this run will not write to needs its client no more: its connections
        are closed and the client dropped (a later call connects again). A fleet of
        thousands then holds open connections, file descriptors and clients only for the
        workspaces in flight or with changes, not for every workspace until the run ends."""
        with self._lock:
            port = self._ports.pop(name, None)
        close = getattr(port, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # best effort: the result stands regardless
                close()

    def _emit(self, phase: str, result: WorkspaceResult) -> None:
        if self.listener is not None:
            self.listener(phase, result)

    # -- plan -------------------------------------------------------------------------------

    def plan(self, specs: Sequence[WorkspaceSpec], *, salt: str) -> FleetPlan:
        fleet_plan = FleetPlan(salt=salt, results=[])

        def one(spec: WorkspaceSpec) -> WorkspaceResult:
            started = time.monotonic()
            try:
                wplan, seen = plan_workspace(
                    spec,
                    self._port(spec),
                    self._store,
                    self._hmac_key,
                    salt=salt,
                    clock=self._clock,
                    mask=self._mask,
                    previous_key=self._previous_key,
                )
            except Exception as exc:
                result = WorkspaceResult(
                    spec.name,
                    spec.wave,
                    Status.FAILED,
                    error=_describe(exc),
                    seconds=time.monotonic() - started,
                )
            else:
                with self._lock:
                    fleet_plan.observations[spec.name] = seen
                status = Status.CHANGES if wplan.has_changes else Status.UP_TO_DATE
                result = WorkspaceResult(
                    spec.name, spec.wave, status, plan=wplan, seconds=time.monotonic() - started
                )
            if result.plan is None or not result.plan.needs_apply:
                self._release(spec.name)  # apply skips it: nothing more to send there
            self._emit("plan", result)
            return result

        fleet_plan.results = in_parallel(specs, one, self.parallelism)
        return fleet_plan

    # -- apply ------------------------------------------------------------------------------

    def apply(
        self,
        specs: Sequence[WorkspaceSpec],
        fleet_plan: FleetPlan,
        *,
        options: ApplyOptions,
        max_failures: int | None = None,
    ) -> list[WorkspaceResult]:
        """Apply wave by wave. Workspaces whose plan failed count as failures of their wave.
        Returns one result per workspace, in the order of ``specs``."""
        planned = {r.workspace: r for r in fleet_plan.results}
        results: dict[str, WorkspaceResult] = {}
        failures = 0
        halted: str | None = None
        for wave in sorted({s.wave for s in specs}):
            members = [s for s in specs if s.wave == wave]
            if self.cancel.is_set and not halted:
                halted = "interrupted"
            if halted:
                for spec in members:
                    results[spec.name] = WorkspaceResult(
                        spec.name, wave, Status.SKIPPED, error=f"not started: {halted}"
                    )
                    self._release(spec.name)
                continue
            outcome = self._apply_wave(
                members, planned, fleet_plan, options, max_failures, failures
            )
            results.update(outcome)
            wave_failures = sum(1 for r in outcome.values() if r.status is Status.FAILED)
            failures += wave_failures
            if max_failures is not None and failures >= max_failures:
                halted = f"--max-failures {max_failures} reached"
            elif wave_failures:
                halted = f"wave {wave} had {wave_failures} failure(s)"
        return [results[s.name] for s in specs]

    def _apply_wave(
        self,
        members: list[WorkspaceSpec],
        planned: Mapping[str, WorkspaceResult],
        fleet_plan: FleetPlan,
        options: ApplyOptions,
        max_failures: int | None,
        failures_before: int,
    ) -> dict[str, WorkspaceResult]:
        failures = [failures_before]
        lock = threading.Lock()

        def one(spec: WorkspaceSpec) -> WorkspaceResult:
            prior = planned.get(spec.name)
            with lock:
                stop = max_failures is not None and failures[0] >= max_failures
            if self.cancel.is_set:
                result = WorkspaceResult(
                    spec.name,
                    spec.wave,
                    Status.SKIPPED,
                    plan=prior.plan if prior else None,
                    error="not started: interrupted",
                )
            elif stop:
                result = WorkspaceResult(
                    spec.name,
                    spec.wave,
                    Status.SKIPPED,
                    error=f"not started: --max-failures {max_failures} reached",
                )
            elif prior is None or prior.plan is None:
                result = WorkspaceResult(
                    spec.name,
                    spec.wave,
                    Status.FAILED,
                    error=prior.error if prior else "not planned",
                )
            else:
                result = self._apply_one(spec, prior.plan, fleet_plan, options)
            self._release(spec.name)  # applied (and planned again), skipped or failed: done
            if result.status is Status.FAILED:
                with lock:
                    failures[0] += 1
            self._emit("apply", result)
            return result

        workers = min(self.parallelism, max(1, len(members)))
        if max_failures is not None:
            # No more in flight than failures still allowed: otherwise a whole wave starts
            # before the first failure is known and --max-failures halts nothing.
            workers = min(workers, max(1, max_failures - failures_before))
        return {r.workspace: r for r in in_parallel(members, one, workers)}

    def _apply_one(
        self,
        spec: WorkspaceSpec,
        wplan: WorkspacePlan,
        fleet_plan: FleetPlan,
        options: ApplyOptions,
    ) -> WorkspaceResult:
        started = time.monotonic()
        if not wplan.needs_apply:
            return WorkspaceResult(spec.name, spec.wave, Status.UP_TO_DATE, plan=wplan)

        def failed(error: str, **extra: object) -> WorkspaceResult:
            return WorkspaceResult(
                spec.name,
                spec.wave,
                Status.FAILED,
                plan=wplan,
                error=error,
                seconds=time.monotonic() - started,
                **extra,  # type: ignore[arg-type]
            )

        port = self._port(spec)
        planned = tuple(str(c.address) for c in wplan.changes if c.action.value != "no-op")
        lock = WorkspaceLock(
            spec.name,
            port,
            self._clock,
            run=self.run_id,
            lease_seconds=self._lease,
            wait_seconds=self._lock_wait,
            stop=self.cancel.event,
            trusted=trusted_creators(fleet_plan.observations[spec.name].live, spec),
        )

        def guard() -> None:
            lock.check()  # first: a lost lease forbids the ledger write a cancel still allows
            self.cancel.check()

        try:
            lock.acquire()
        except LockHeld as exc:
            if self.cancel.is_set:
                return WorkspaceResult(
                    spec.name,
                    spec.wave,
                    Status.SKIPPED,
                    plan=wplan,
                    error="not started: interrupted",
                    not_applied=planned,
                )
            return failed(_describe(exc), not_applied=planned)
        except Exception as exc:
            return failed(_describe(exc), not_applied=planned)
        try:
            guard()
            _refuse_if_moved(
                spec,
                wplan,
                fleet_plan.observations[spec.name],
                port,
                self._store,
                self._hmac_key,
                self._clock,
                self._previous_key,
            )
            outcome = apply_workspace(
                spec,
                wplan,
                fleet_plan.observations[spec.name],
                port,
                self._store,
                options=options,
                clock=self._clock,
                work_clock=self._work_clock,
                salt=fleet_plan.salt,
                mask=self._mask,
                guard=guard,
                write_ahead=WriteAhead(
                    self.run_id,
                    lock.service_ms or 0,
                    options.deadline_seconds + options.acl_settle_seconds + 2 * self._lease,
                ),
                stop_errors=(Cancelled, LeaseLost),
            )
        except Cancelled:
            return WorkspaceResult(
                spec.name,
                spec.wave,
                Status.SKIPPED,
                plan=wplan,
                error="not started: interrupted",
                seconds=time.monotonic() - started,
                not_applied=planned,
            )
        except Exception as exc:
            return failed(_describe(exc), not_applied=planned)
        finally:
            lock.release()
        seconds = time.monotonic() - started
        if outcome.stopped is not None:
            left = tuple(str(c.address) for c in outcome.remaining)
            total = len(outcome.applied) + len(left)
            what = f"{len(outcome.applied)} of {total} change(s) applied"
            if isinstance(outcome.stopped, Cancelled):
                return WorkspaceResult(
                    spec.name,
                    spec.wave,
                    Status.INTERRUPTED,
                    plan=wplan,
                    error=f"interrupted: {what}; not applied: {', '.join(left)}",
                    seconds=seconds,
                    applied=len(outcome.applied),
                    not_applied=left,
                )
            return failed(
                f"{_describe(outcome.stopped)}; {what}; not applied: {', '.join(left)}",
                applied=len(outcome.applied),
                not_applied=left,
            )
        if not outcome.converged:
            still = ", ".join(str(c.address) for c in outcome.remaining)
            return WorkspaceResult(
                spec.name,
                spec.wave,
                Status.FAILED,
                plan=wplan,
                error=f"did not converge; still planned: {still}",
                seconds=seconds,
                applied=len(outcome.applied),
            )
        return WorkspaceResult(
            spec.name,
            spec.wave,
            Status.APPLIED,
            plan=wplan,
            seconds=seconds,
            applied=len(outcome.applied),
        )


def _refuse_if_moved(
    spec: WorkspaceSpec,
    wplan: WorkspacePlan,
    planned: Observation,
    port: WorkspacePort,
    store: LedgerStore,
    hmac_key: SecretValue | None,
    clock: Clock,
    previous_key: SecretValue | None = None,
) -> None:
    """Under the lock, check the workspace is still as planned: another run may have
    applied while this one waited for the lock (its ledger write counts too: it can land
    after its last secret write)."""
    now = observe(spec, port, store, hmac_key, clock=clock, previous_key=previous_key)
    moved = live_digest(now.live, spec.ignore) != wplan.live_digest
    if moved or now.ledger != planned.ledger:
        raise WorkspaceError(
            spec.name, "changed since it was planned (another run applied?); plan again"
        )
