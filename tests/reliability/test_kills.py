"""Kill tests: ``pkgrepo apply`` killed with SIGKILL at random points of a large fleet, calls
slowed past the lock's lease, and runners whose clocks are hours apart.

After a kill, the operator just runs the same command again: no ``force-unlock``, no
``--force`` (these fleets keep the default safety thresholds), and ``drift`` in between
never blames anyone for pkgrepo's own cut-off writes.
"""

from __future__ import annotations

import dataclasses
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorHandle, Faults
from tests.reliability.harness import (
    PLANTED,
    AclRecorder,
    Fleet,
    assert_converged_state,
    assert_untouched,
    baseline,
    emulator_state,
    finish,
    pkgrepo_process,
    seed,
    subprocess_env,
    wait_until,
    write_fleet,
)
from tests.reliability.test_interruptions import (
    _converge_and_check,
    _drift_blames_nobody_for_pkgrepos_own_writes,
    _holders,
    _kill_mid_apply,
    _locked,
    _written,
    settle_stale_locks,
)
from tests.reliability.test_locks import runs_per_workspace, switches
from tests.support.cli import run_cli

WRITES_PER_WORKSPACE = 10
"""About what one workspace's first apply writes to its scope and ledger (scope, write-ahead
ledger, three keys, two grants, confirmed ledger): the range kill points are drawn from."""


def default_safety_fleet(emu: EmulatorHandle, directory: Path, count: int) -> Fleet:
    """A seeded fleet with the default safety thresholds and no hand-made scopes to adopt
    (their adoption alone would need --force): anything the rerun is refused for is the
    kill's doing."""
    fleet = write_fleet(directory, emu.url, count, safety=None)
    fleet = dataclasses.replace(fleet, legacy=())
    seed(fleet)
    return fleet


KILL_POINTS = [random.Random(seed).random() for seed in range(10)]
"""Ten points of an apply, as shares of its writes, drawn once (reproducible)."""


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("point", KILL_POINTS, ids=[f"{p:.2f}" for p in KILL_POINTS])
def test_sigkill_at_random_points_of_50_workspaces_then_the_same_command_converges(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    point: float,
) -> None:
    fleet = default_safety_fleet(emu, tmp_path / "repo", 50)
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    lease = {"PKGREPO_LOCK_LEASE_SECONDS": "5"}
    target = max(1, int(point * WRITES_PER_WORKSPACE * len(fleet.names)))
    killed, dead = _kill_mid_apply(
        emu, fleet, recorder, after_writes=target, env=lease, latency_ms=10
    )
    assert killed.code == -signal.SIGKILL, killed.text[-2000:]
    assert _holders(emu, dead.locked) <= {dead.run}
    kinds = _drift_blames_nobody_for_pkgrepos_own_writes(fleet, capsys)
    monkeypatch.setenv("PKGREPO_LOCK_LEASE_SECONDS", "5")
    rerun = _converge_and_check(fleet, recorder, state, before, capsys, dead=(emu, dead))
    assert "--force" not in rerun.text
    print(f"kill after {target} writes: left {len(dead.locked)} locked; drift {dict(kinds)}")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_of_an_80_workspace_apply_with_the_default_lease_reruns_within_3_minutes(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's scenario as an operator meets it: default 60 s lease, 80 workspaces,
    killed half way; the same ``apply --auto-approve`` again, then ``plan
    --detailed-exitcode`` exits 0."""
    fleet = default_safety_fleet(emu, tmp_path / "repo", 80)
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    target = WRITES_PER_WORKSPACE * len(fleet.names) // 2
    _, dead = _kill_mid_apply(emu, fleet, recorder, after_writes=target, latency_ms=10)
    assert dead.locked
    kinds = _drift_blames_nobody_for_pkgrepos_own_writes(fleet, capsys)
    assert kinds["modified-outside"] == 0
    rerun = pkgrepo_process(
        ["apply", str(fleet.file), "--auto-approve", "-q"], env=subprocess_env()
    )
    result = finish(rerun, timeout=180)  # the criterion: within three minutes
    assert result.code == 0, result.text[-3000:]
    settle_stale_locks(emu, fleet, dead, result)
    check = run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"])
    assert check.code == 0, check.text[-3000:]
    assert_untouched(before, state)
    assert_converged_state(fleet, state)
    assert recorder.violations == []


# -- calls slowed past the lease ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_calls_slowed_past_the_lease_stop_the_run_cleanly_and_never_interleave(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run A holds its locks on a 5 s lease; then every call to the workspaces takes 6 s
    (past the lease) and run B starts. Neither may write while it cannot be sure of its
    lease: each workspace's writes are all one run's, then all the other's; a run that
    could not renew says it stopped writing. Once the network is back, a rerun converges."""
    fleet = write_fleet(tmp_path / "repo", emu.url, 6)
    seed(fleet)
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    lease = subprocess_env({"PKGREPO_LOCK_LEASE_SECONDS": "5"})
    for name in fleet.names:
        emu.set_faults(name, Faults(latency_ms=150))
    args = ["apply", str(fleet.file), "--auto-approve", "-q", "-p", "6"]
    first = pkgrepo_process(args, env=lease)
    second = None
    try:
        wait_until(
            lambda: sum(_locked(emu, n) for n in fleet.names) >= 3 and _written(recorder) >= 3,
            timeout=120,
            what="run A holding locks and writing",
        )
        for name in fleet.names:
            emu.set_faults(name, Faults(latency_ms=6000))
        second = pkgrepo_process(
            args,
            env=subprocess_env(
                {"PKGREPO_LOCK_LEASE_SECONDS": "5", "RELIA_DB_TOKEN": PLANTED.token_b}
            ),
        )
        a, b = finish(first, timeout=400), finish(second, timeout=400)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
    for run in (a, b):
        assert "Traceback" not in run.text and "unexpected error" not in run.text, run.err[-2000:]
        for name, message in re.findall(r"^  (ws\d\d): (.+)$", run.out, re.MULTILINE):
            assert re.search(
                r"stopped writing here|locked by run|changed since it was planned", message
            ), f"{name}: {message}"
    stopped = a.out.count("stopped writing here") + b.out.count("stopped writing here")
    assert stopped > 0, "no run ever lost its lease: the test proved nothing"
    for name, runs in runs_per_workspace(recorder.writes).items():
        assert switches(runs) <= 1, f"{name}: writes of the two runs interleave: {runs}"
    for name in fleet.names:
        emu.set_faults(name, Faults())
    rerun = run_cli(capsys, *["apply", str(fleet.file), "--auto-approve", "-q"])
    assert rerun.code == 0, rerun.text[-3000:]
    assert run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"]).code == 0
    assert_untouched(before, state)
    assert_converged_state(fleet, state)


# -- clocks hours apart --------------------------------------------------------------------------


def clock_offset_env(directory: Path, hours: float) -> dict[str, str]:
    """The environment of a pkgrepo process whose wall clock is ``hours`` off (its
    monotonic clock is untouched, as on a real machine with a wrong time)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(
        "import time as _time\n"
        "_real = _time.time\n"
        f"_time.time = lambda: _real() + {hours * 3600!r}\n"
        "_real_ns = _time.time_ns\n"
        f"_time.time_ns = lambda: _real_ns() + {int(hours * 3600 * 1e9)!r}\n"
    )
    env = subprocess_env({"PKGREPO_LOCK_LEASE_SECONDS": "5"})
    env["PYTHONPATH"] = str(directory)
    return env


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_clock_offset_of_hours_between_two_runners_changes_nothing(
    emu: EmulatorHandle, fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run A's clock is 7 hours ahead, run B's 7 hours behind, both on a 5 s lease. A is
    killed holding locks; B, started at once, takes them over after one lease of its own
    time (never earlier, never later than a runner with a right clock would). Then both
    apply at once: their writes never interleave."""
    ahead = clock_offset_env(tmp_path / "ahead", +7)
    behind = clock_offset_env(tmp_path / "behind", -7)
    probe = run_offset_probe(ahead)
    assert abs(probe - 7 * 3600) < 600, probe  # the offset really applies
    recorder = AclRecorder(emu).watch(fleet.names)
    offset = {"PYTHONPATH": ahead["PYTHONPATH"], "PKGREPO_LOCK_LEASE_SECONDS": "5"}
    _, dead = _kill_mid_apply(emu, fleet, recorder, env=offset)
    assert dead.locked
    rerun = finish(pkgrepo_process(["apply", str(fleet.file), "--auto-approve", "-q"], env=behind))
    assert rerun.code == 0, rerun.text[-3000:]
    settle_stale_locks(emu, fleet, dead, rerun)
    assert run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"]).code == 0

    # Both at once, on a changed file: the loser waits or refuses, never interleaves.
    text = fleet.file.read_text().replace("whl/cpu", "whl/cu121")
    fleet.file.write_text(text)
    for name in fleet.names:
        emu.set_faults(name, Faults(latency_ms=40))
    recorder.writes.clear()
    args = ["apply", str(fleet.file), "--auto-approve", "-q"]
    b_env = dict(behind, RELIA_DB_TOKEN=PLANTED.token_b)
    a, b = pkgrepo_process(args, env=ahead), pkgrepo_process(args, env=b_env)
    first, second = finish(a), finish(b)
    for run in (first, second):
        assert "Traceback" not in run.text, run.err[-2000:]
        assert run.code in (0, 1), run.text[-2000:]
    for name, runs in runs_per_workspace(recorder.writes).items():
        assert switches(runs) <= 1, f"{name}: writes of the two runs interleave: {runs}"
    for name in fleet.names:
        emu.set_faults(name, Faults())
    assert run_cli(capsys, *["apply", str(fleet.file), "--auto-approve", "-q"]).code == 0
    assert run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"]).code == 0
    assert Counter(recorder.violations) == Counter()


def run_offset_probe(env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out) - time.time()
