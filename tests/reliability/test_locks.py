"""Two ``pkgrepo apply`` runs at once never interleave their writes; ``plan`` and ``drift``
run while a lock is held; a lock held by another run is waited for, and an expired one is
taken over.

The two runs deploy as the same identity with two tokens; the emulator's backend records
which token made each write, in the order the writes were accepted, so "no interleaving"
is checked on what the service saw, not on what the runs printed.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from reconciler.core.model import SCOPE, LiveSecret
from reconciler.emulator import EmulatorHandle, Faults, Principal, ServiceModes
from reconciler.engine.lock import LOCK_SCOPE, beat_key, holder_key, holders
from tests.reliability.harness import (
    LEDGER_FILE,
    LEGACY_TOKEN,
    PLANTED,
    AclRecorder,
    Fleet,
    Result,
    Write,
    assert_converged_state,
    assert_untouched,
    baseline,
    client,
    emulator_state,
    finish,
    pkgrepo_process,
    subprocess_env,
    wait_until,
)
from tests.support.cli import run_cli

LOSER = re.compile(
    r"changed since it was planned \(another run applied\?\); plan again"
    r"|locked by run r[0-9a-f]{12} since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
)


def runs_per_workspace(writes: list[Write]) -> dict[str, list[str]]:
    """Per workspace, which run made each write to what pkgrepo manages (the scope and the
    ledger file), in order; the lock protocol's own writes are left out."""
    order: dict[str, list[str]] = defaultdict(list)
    for write in writes:
        if write.scope.lower() == LOCK_SCOPE.lower():
            continue
        if write.scope == "(files)" or write.scope.lower() == SCOPE.lower():
            order[write.workspace].append(write.run)
    return order


def switches(sequence: list[str]) -> int:
    return sum(1 for a, b in itertools.pairwise(sequence) if a != b)


def assert_loser_messages(run: Result) -> None:
    assert "Traceback" not in run.text and "unexpected error" not in run.text, run.err[-2000:]
    assert run.code in (0, 1), run.text[-2000:]
    for name, message in re.findall(r"^  (ws\d\d): (.+)$", run.out, re.MULTILINE):
        assert LOSER.search(message), f"{name}: {message}"


def concurrent_applies(
    emu: EmulatorHandle,
    fleet: Fleet,
    capsys: pytest.CaptureFixture[str],
    latency_ms: float,
    tmp_path: Path,
) -> None:
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    for name in fleet.names:
        emu.set_faults(name, Faults(latency_ms=latency_ms))
    # The runs must meet at a lock, however slowly a loaded machine starts the second: one
    # workspace answers slowly until the second run is seen waiting for its lock there.
    met = fleet.names[0]
    emu.set_faults(met, Faults(latency_ms=max(latency_ms, 1000)))
    args = ["apply", str(fleet.file), "--auto-approve", "-q"]
    first = pkgrepo_process(args, env=subprocess_env())
    second = None
    try:
        wait_until(lambda: _run_holds(emu, met), timeout=120, what=f"a run holding {met}")
        second = pkgrepo_process(args, env=subprocess_env({"RELIA_DB_TOKEN": PLANTED.token_b}))
        wait_until(lambda: _waiting(emu, met), timeout=120, what=f"a run waiting on {met}")
    finally:
        emu.set_faults(met, Faults(latency_ms=latency_ms))
        if second is None:
            first.kill()
    a, b = finish(first), finish(second)
    assert_loser_messages(a)
    assert_loser_messages(b)

    order = runs_per_workspace(recorder.writes)
    assert set(order) == set(fleet.names)
    for name, runs in order.items():  # all of one run's writes, then all of the other's
        assert switches(runs) <= 1, f"{name}: writes of the two runs interleave: {runs}"
    contended = [n for n in fleet.names if _waiting(emu, n)]
    assert contended, "the two runs never met at a lock: the test proved nothing"

    for name in fleet.names:
        emu.set_faults(name, Faults())
    check = run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"])
    assert check.code == 0, check.text[-3000:]
    assert_untouched(before, state)
    assert_converged_state(fleet, state)
    assert recorder.violations == [], recorder.violations[:5]


def test_two_applies_at_once_never_interleave(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    concurrent_applies(emu, fleet, capsys, latency_ms=40, tmp_path=tmp_path)


def test_two_applies_at_once_on_a_users_lock_scopes_never_interleave(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A plain user made every workspace's lock scope and keeps renewing a holder in it, and
    two applies start at once: both find the scope untrusted together. Only the run whose
    revoke of the user's access succeeds removes the user's holder and claims; the other
    never removes anything of that run's, and waits for it. The user blocks nothing, and
    the two runs' writes never interleave."""
    user_locks(emu, fleet.names)
    with renewing(emu, fleet.names, principal=emu.user):
        concurrent_applies(emu, fleet, capsys, latency_ms=40, tmp_path=tmp_path)


def user_locks(emu: EmulatorHandle, names: tuple[str, ...]) -> None:
    """A plain user creates the lock scope of each workspace and holds it on a long lease."""
    for name in names:
        backend = emu.backend(name)
        backend.create_scope(emu.user, LOCK_SCOPE)
        backend.put_secret(emu.user, LOCK_SCOPE, holder_key(HOLDER, 600), b"x", is_bytes=False)
        backend.put_secret(emu.user, LOCK_SCOPE, beat_key(HOLDER), b"x", is_bytes=False)


@pytest.mark.slow
@pytest.mark.parametrize("latency_ms", [10, 25, 100])
def test_two_applies_at_once_never_interleave_at_any_speed(
    emu: EmulatorHandle,
    fleet: Fleet,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    latency_ms: float,
) -> None:
    concurrent_applies(emu, fleet, capsys, latency_ms=latency_ms, tmp_path=tmp_path)


@pytest.mark.slow
def test_a_run_that_planned_before_the_other_recorded_its_ledger_writes_nothing(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """The race the concurrent test hits now and then, made deterministic: run A has
    written every value and holds the lock, its ledger not yet written; run B plans then
    (every key unverifiable), waits for the lock; A writes its ledger and releases. B must
    now find nothing to do, or refuse its stale plan -- never rewrite the keys.

    ``secrets/get`` is refused here (FIDELITY row 4: some workspaces refuse it): where it
    answers, B would read the values back, find them as declared and never need the lock."""
    for name in fleet.names:
        emu.set_modes(name, ServiceModes(rest_get="refused"))
    assert run_cli(capsys, *["apply", str(fleet.file), "--auto-approve", "-q"]).code == 0
    ledgers = {
        n: emu.files(n).export_file(emu.admin, LEDGER_FILE, format="AUTO") for n in fleet.names
    }
    for name in fleet.names:
        emu.files(name).delete(emu.admin, LEDGER_FILE)
    hold_locks(emu, fleet.names, lease_seconds=600)
    recorder = AclRecorder(emu).watch(fleet.names)
    loser = pkgrepo_process(
        ["apply", str(fleet.file), "--auto-approve", "-q"], env=subprocess_env()
    )
    try:
        wait_until(
            lambda: all(_waiting(emu, n) for n in fleet.names),
            timeout=60,
            what="run B waiting on every lock",
        )
        for name in fleet.names:  # run A records its ledger and releases the lock
            emu.files(name).import_file(
                emu.admin, LEDGER_FILE, ledgers[name], format="AUTO", overwrite=True
            )
            emu.backend(name).delete_scope(emu.admin, LOCK_SCOPE)
        run = finish(loser)
    finally:
        if loser.poll() is None:
            loser.kill()
    assert_loser_messages(run)
    assert [w for w in recorder.writes if w.scope == SCOPE] == []


def _run_holds(emu: EmulatorHandle, name: str) -> bool:
    """A pkgrepo run (not the stand-in ``HOLDER``) has its holder key in the lock scope."""
    try:
        listed = emu.backend(name).list_secrets(emu.admin, LOCK_SCOPE)
    except Exception:  # no lock scope yet
        return False
    keys = {s.key: LiveSecret(s.key, s.last_updated_timestamp) for s in listed}
    return any(h.run != HOLDER for h in holders(keys))


def _waiting(emu: EmulatorHandle, name: str) -> bool:
    return any(
        status != 200
        for (_m, path, status) in emu.responses(name)
        if path.endswith("/secrets/scopes/create")
    )


# -- a lock held by someone else -----------------------------------------------------------------

HOLDER = "rreleasebot74"


def hold_locks(emu: EmulatorHandle, names: tuple[str, ...], *, lease_seconds: int) -> None:
    """Another run holds the lock of every workspace, on a lease of ``lease_seconds`` (as
    that run would have written it). Nobody renews it: see ``renewing``."""
    for name in names:
        backend = emu.backend(name)
        backend.create_scope(emu.admin, LOCK_SCOPE)
        backend.put_secret(
            emu.admin, LOCK_SCOPE, holder_key(HOLDER, lease_seconds), b"held", is_bytes=False
        )
        backend.put_secret(emu.admin, LOCK_SCOPE, beat_key(HOLDER), b"beat", is_bytes=False)


@contextmanager
def renewing(
    emu: EmulatorHandle, names: tuple[str, ...], *, principal: Principal | None = None
) -> Iterator[None]:
    """The other run (or whoever ``principal`` is) is alive: it renews its locks every 0.2 s
    while the block runs."""
    stop = threading.Event()
    who = principal or emu.admin

    def beat() -> None:
        while not stop.wait(0.2):
            for name in names:
                with suppress(Exception):  # the lock scope was released, or access revoked
                    emu.backend(name).put_secret(
                        who, LOCK_SCOPE, beat_key(HOLDER), b"beat", is_bytes=False
                    )

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def lock_keys(emu: EmulatorHandle, names: tuple[str, ...]) -> dict[str, list[tuple[str, int]]]:
    return {
        n: [
            (s.key, s.last_updated_timestamp)
            for s in emu.backend(n).list_secrets(emu.admin, LOCK_SCOPE)
        ]
        for n in names
    }


def test_plan_and_drift_run_while_every_workspace_is_locked(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    hold_locks(emu, fleet.names, lease_seconds=600)
    held = lock_keys(emu, fleet.names)
    emu.reset_counts()
    plan = run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"])
    assert plan.code == 2, plan.text[-2000:]
    drift = run_cli(capsys, *["drift", str(fleet.file), "--format", "json", "-q"])
    assert drift.code == 2, drift.text[-2000:]
    assert lock_keys(emu, fleet.names) == held
    for name in fleet.names:
        assert [k for k in emu.requests(name) if k[0] != "GET"] == [], name


def test_apply_waits_for_a_held_lock_and_goes_on_once_it_is_released(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    state = emulator_state(emu)
    before = baseline(fleet, state)
    hold_locks(emu, fleet.names, lease_seconds=600)
    recorder = AclRecorder(emu).watch(fleet.names)
    apply = pkgrepo_process(
        ["apply", str(fleet.file), "--auto-approve", "-q"], env=subprocess_env()
    )
    try:
        wait_until(
            lambda: all(_waiting(emu, n) for n in fleet.names),
            timeout=60,
            what="the apply waiting on every lock",
        )
        assert [w for w in recorder.writes if w.scope == SCOPE] == []
        for name in fleet.names:  # the other run (another admin) finishes: releases its lock
            client(fleet.url, name, LEGACY_TOKEN).secrets.delete_scope(LOCK_SCOPE)
        run = finish(apply)
    finally:
        if apply.poll() is None:
            apply.kill()
    assert run.code == 0, run.text[-3000:]
    for name, runs in runs_per_workspace(recorder.writes).items():
        first_release = next(
            i for i, w in enumerate(recorder.writes) if w.workspace == name and w.run == "other"
        )
        assert all(
            i > first_release
            for i, w in enumerate(recorder.writes)
            if w.workspace == name and w.run == "run-a"
        ), (name, runs)
    assert run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"]).code == 0
    assert_untouched(before, state)
    assert_converged_state(fleet, state)


def test_a_lock_whose_holder_stopped_renewing_is_taken_over_after_one_lease(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    hold_locks(emu, fleet.names, lease_seconds=1)  # a dead run, on a one-second lease
    run = run_cli(capsys, *["apply", str(fleet.file), "--auto-approve", "-q"])
    assert run.code == 0, run.text[-3000:]
    assert run.err.count(
        f"taking over the lock of run {HOLDER}: not renewed for a whole lease (1s)"
    ) == len(fleet.names), run.err[-2000:]
    assert run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"]).code == 0
    assert_converged_state(fleet, emulator_state(emu))


@pytest.mark.slow
def test_a_lock_that_is_never_released_fails_each_workspace_naming_the_holder(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """A live holder (renewing) that never finishes: each workspace fails after the wait,
    naming the run, since when, and when its lease runs out; nothing is written."""
    state = emulator_state(emu)
    before = baseline(fleet, state)
    hold_locks(emu, fleet.names, lease_seconds=600)
    recorder = AclRecorder(emu).watch(fleet.names)
    with renewing(emu, fleet.names):
        run = run_cli(capsys, *["apply", str(fleet.file), "--auto-approve", "-q"])
    assert run.code == 1
    failed = dict(re.findall(r"^  (ws\d\d): (.+)$", run.out, re.MULTILINE))
    assert sorted(failed) == list(fleet.names)
    for name, message in failed.items():
        assert re.fullmatch(
            rf"{name}: locked by run {HOLDER} since \S+ \S+ UTC; lease 600s, not renewed "
            r"for \d+s, runs out at \d\d:\d\d:\d\d UTC unless renewed; waited \d+s for it\. "
            "The lock passes on by itself once that run stops renewing it; if it is stuck, "
            rf"`pkgrepo force-unlock --workspace {name} --file FILE` removes it",
            message,
        ), message
    assert [w for w in recorder.writes if w.scope != LOCK_SCOPE] == []
    assert_untouched(before, state)
