"""Interrupted applies: the emulator restarted (or killed) under a running ``pkgrepo apply``,
and ``pkgrepo apply`` itself killed with SIGKILL half way.

What an operator should expect after a killed run, and what these tests hold pkgrepo to:

- ``plan`` and ``drift`` work at once (they take no lock) and show what is left to do.
- The workspaces the dead run was applying stay locked; a rerun waits up to 60 s for each
  and then fails it with ``locked by USER@HOST.PID since T (expires T+15m) ... If that run
  is gone, run `pkgrepo force-unlock WS --file FILE```; the others apply. After
  ``force-unlock`` (or once the 15-minute TTL passed) a rerun converges.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorHandle, Faults
from reconciler.lock import LOCK_SCOPE, parse_holder
from reconciler.model import SCOPE, LiveSecret
from tests.reliability.harness import (
    AclPoller,
    AclRecorder,
    Baseline,
    EmulatorProcess,
    Fleet,
    assert_converged_state,
    assert_untouched,
    baseline,
    emulator_state,
    file_state,
    finish,
    lock_scope,
    managed,
    pkgrepo_process,
    run_cli,
    seed,
    subprocess_env,
    wait_until,
    write_fleet,
)

# -- the emulator restarted under a running apply ---------------------------------------------


def _progress(state_file: Path, names: tuple[str, ...]) -> tuple[int, int]:
    """(workspaces locked right now, workspaces whose managed scope holds the index URL)."""
    try:
        workspaces: Mapping[str, Any] = json.loads(state_file.read_text())["workspaces"]
    except (OSError, ValueError):
        return 0, 0
    locked = done = 0
    for name in names:
        ws = workspaces.get(name)
        if ws is None:
            continue
        locked += lock_scope(ws) is not None
        scope = managed(ws)
        done += scope is not None and any(
            s["key"] == "pip-extra-index-urls" for s in scope["secrets"]
        )
    return locked, done


def _mid_apply(state_file: Path, names: tuple[str, ...], round_: int) -> bool:
    """Some workspaces locked and some written: the n-th restart waits for n*3 written."""
    locked, done = _progress(state_file, names)
    return locked >= 1 and done >= 3 * round_


def restart_scenario(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    workspaces: int,
    faults: Mapping[str, Any],
    restarts: list[int],
) -> None:
    """Seed with no faults, restart with ``faults``, start an apply, and restart the emulator
    (with each signal of ``restarts``) whenever some workspaces are locked mid-apply."""
    emulator = EmulatorProcess(tmp_path).start()
    try:
        fleet = write_fleet(tmp_path / "repo", emulator.url, workspaces)
        seed(fleet)
        emulator.stop()
        emulator.configure(faults)
        emulator.start()
        state = file_state(emulator.state)
        before = baseline(fleet, state)
        with AclPoller(emulator.url, fleet.names) as poller:
            apply = pkgrepo_process(
                ["apply", str(fleet.file), "--auto-approve"], env=subprocess_env()
            )
            try:
                for round_, sig in enumerate(restarts, start=1):
                    wait_until(
                        partial(_mid_apply, emulator.state, fleet.names, round_),
                        timeout=60,
                        what="an apply half way",
                    )
                    emulator.restart(sig)
                first = finish(apply)
            finally:
                if apply.poll() is None:
                    apply.kill()
        assert "Traceback" not in first.text and "unexpected error" not in first.text, first.err
        assert first.code == 0, first.out[-3000:] + first.err[-3000:]
        assert emulator.starts == len(restarts) + 2
        check = run_cli(["plan", str(fleet.file), "--detailed-exitcode", "-q"], capsys)
        assert check.code == 0, check.text[-3000:]
        assert_untouched(before, state)
        assert_converged_state(fleet, state)
        assert poller.polls > 0
        assert poller.violations == [], poller.violations[:5]
    finally:
        emulator.stop()


def test_emulator_restarted_mid_apply_the_apply_rides_it_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    restart_scenario(
        tmp_path, capsys, workspaces=20, faults={"latency_ms": 40}, restarts=[signal.SIGTERM]
    )


@pytest.mark.slow
def test_emulator_restarted_and_killed_three_times_mid_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    restart_scenario(
        tmp_path,
        capsys,
        workspaces=40,
        faults={"latency_range_ms": [20, 200], "seed": 3},
        restarts=[signal.SIGTERM, signal.SIGKILL, signal.SIGTERM],
    )


# -- pkgrepo killed with SIGKILL half way ------------------------------------------------------


def _kill_mid_apply(emu: EmulatorHandle, fleet: Fleet, recorder: AclRecorder) -> list[str]:
    """Start an apply, SIGKILL it once some workspaces are locked and written; returns the
    workspaces it left locked."""
    for name in fleet.names:
        emu.set_faults(name, Faults(latency_ms=40))
    process = pkgrepo_process(["apply", str(fleet.file), "--auto-approve"], env=subprocess_env())
    try:

        def mid_apply() -> bool:
            locked = [n for n in fleet.names if _locked(emu, n)]
            written = {w.workspace for w in recorder.writes if w.scope == SCOPE}
            return len(locked) >= 3 and len(written) >= 3

        wait_until(mid_apply, timeout=60, what="an apply half way")
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    for name in fleet.names:
        emu.set_faults(name, Faults())
    locked = [n for n in fleet.names if _locked(emu, n)]
    assert locked, "the kill came too late: no workspace was left locked"
    return locked


def _locked(emu: EmulatorHandle, name: str) -> bool:
    return any(s.name == LOCK_SCOPE for s in emu.backend(name).list_scopes(emu.admin))


def _assert_plan_and_drift_see_what_is_left(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = run_cli(["plan", str(fleet.file), "--detailed-exitcode", "-q"], capsys)
    assert plan.code == 2, plan.text[-2000:]
    drift = run_cli(["drift", str(fleet.file), "-q"], capsys)
    assert drift.code == 2, drift.text[-2000:]


def _force_unlock(
    fleet: Fleet, locked: list[str], pid: int, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in locked:
        run = run_cli(["force-unlock", name, "--file", str(fleet.file)], capsys)
        assert run.code == 0, run.text
        assert re.fullmatch(rf"{name}: removed the lock held by \S+\.{pid}\n", run.out), run.out


def _converge_and_check(
    fleet: Fleet,
    recorder: AclRecorder,
    state: Callable[[str], Any],
    before: Baseline,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rerun = run_cli(["apply", str(fleet.file), "--auto-approve", "-q"], capsys)
    assert rerun.code == 0, rerun.text[-3000:]
    check = run_cli(["plan", str(fleet.file), "--detailed-exitcode", "-q"], capsys)
    assert check.code == 0, check.text[-3000:]
    assert_untouched(before, state)
    assert_converged_state(fleet, state)
    assert recorder.violations == [], recorder.violations[:5]


def test_pkgrepo_killed_mid_apply_then_force_unlock_and_rerun_converges(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    locked, pid = _kill_and_pid(emu, fleet, recorder)
    _assert_plan_and_drift_see_what_is_left(fleet, capsys)
    assert [n for n in fleet.names if _locked(emu, n)] == locked  # plan/drift took no lock
    _force_unlock(fleet, locked, pid, capsys)
    _converge_and_check(fleet, recorder, state, before, capsys)


@pytest.mark.slow
def test_pkgrepo_killed_mid_apply_the_rerun_names_the_dead_holder_and_the_way_out(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without force-unlock the rerun waits for each stale lock, then fails exactly those
    workspaces with who held the lock, since when, and the command that frees it; every
    other workspace applies."""
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    locked, pid = _kill_and_pid(emu, fleet, recorder)
    rerun = run_cli(["apply", str(fleet.file), "--auto-approve", "-q"], capsys)
    assert rerun.code == 1
    assert "Traceback" not in rerun.text
    failed = dict(re.findall(r"^  (ws\d\d): (.+)$", rerun.out, re.MULTILINE))
    assert sorted(failed) == locked, rerun.out[-3000:]
    for name, message in failed.items():
        assert re.search(
            rf"{name}: locked by \S+\.{pid} since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
            rf"\(expires \d\d:\d\d:\d\d UTC\); waited 60s\. If that run is gone, run "
            rf"`pkgrepo force-unlock {name} --file FILE`",
            message,
        ), message
    rows = dict(re.findall(r"^(ws\d\d)\s+\d+\s+(\S+)", rerun.out, re.MULTILINE))
    assert {n: rows[n] for n in locked} == dict.fromkeys(locked, "FAILED")
    assert {rows[n] for n in fleet.names if n not in locked} <= {"applied", "ok"}, rows
    _force_unlock(fleet, locked, pid, capsys)
    _converge_and_check(fleet, recorder, state, before, capsys)


def _kill_and_pid(
    emu: EmulatorHandle, fleet: Fleet, recorder: AclRecorder
) -> tuple[list[str], int]:
    """Kill an apply half way; the workspaces it left locked, and its process id as the
    locks name it (``user@host.pid``)."""
    holder_pids = set()
    locked = _kill_mid_apply(emu, fleet, recorder)
    for name in locked:
        keys = {
            s.key: LiveSecret(s.key, s.last_updated_timestamp)
            for s in emu.backend(name).list_secrets(emu.admin, LOCK_SCOPE)
        }
        holder = parse_holder(keys)
        assert holder is not None, keys
        holder_pids.add(int(holder.who.rpartition(".")[2]))
    (pid,) = holder_pids
    return locked, pid
