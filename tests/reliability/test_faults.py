"""The fault matrix: a fleet of 20+ workspaces applied through ``pkgrepo apply`` while the
emulator injects latency, throttling, 5xx answers, dropped connections and late ACLs.

For every row: the run converges, or stops with a clear per-workspace error; a rerun
converges and ``plan --detailed-exitcode`` exits 0 afterwards; nothing outside the plan
changes (other scopes, ignored keys, files, bystander workspaces); no write ever leaves the
managed scope without an admin MANAGE grant; no lock is left behind. The unmarked rows are
the fast representatives ``make test`` runs; the ``slow`` rows are harsher and larger.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorHandle, Faults, OneShotFailure, running_emulator
from tests.reliability.harness import (
    AclRecorder,
    Fleet,
    Result,
    assert_converged_state,
    assert_untouched,
    baseline,
    deployer_config,
    emulator_state,
    seed,
    write_fleet,
)
from tests.support.cli import run_cli

# One fault per workspace, each at another step of the run (the lock's too), so the fleet
# covers every endpoint pkgrepo calls; nth counts calls to that endpoint from the start.
STEPS: tuple[tuple[str, int], ...] = (
    ("secrets/scopes/create", 1),  # taking the lock
    ("secrets/put", 1),  # recording the lock holder
    ("secrets/scopes/create", 2),  # the managed scope
    ("secrets/put", 2),
    ("secrets/put", 4),
    ("secrets/acls/put", 1),
    ("secrets/acls/put", 2),
    ("secrets/acls/list", 2),
    ("secrets/list", 3),
    ("preview/scim/v2/Me", 2),
    ("workspace/export", 2),
    ("workspace/mkdirs", 1),
    ("workspace/import", 1),  # the ledger
    ("secrets/scopes/delete", 1),  # releasing the lock
    ("secrets/list", 5),
    ("secrets/acls/list", 4),
)
AFTER_COMMIT_OK = {"secrets/put", "secrets/acls/put", "workspace/import", "workspace/mkdirs"}
"""Writes whose acknowledgement may be lost after they took effect (idempotent retries)."""


def one_fault_per_workspace(
    status: int | None, *, lost_acks: bool = False
) -> Callable[[int], Faults]:
    def faults(index: int) -> Faults:
        endpoint, nth = STEPS[index % len(STEPS)]
        after = lost_acks and index % 2 == 1 and endpoint in AFTER_COMMIT_OK
        return Faults(
            one_shot=(OneShotFailure(endpoint, nth=nth, status=status, after_commit=after),)
        )

    return faults


def everywhere(faults: Faults) -> Callable[[int], Faults]:
    return lambda index: dataclasses.replace(faults, seed=index)


@dataclass(frozen=True)
class Row:
    name: str
    faults: Callable[[int], Faults]
    """The faults of the i-th workspace."""
    fired: frozenset[int]
    """Answer statuses that prove the fault was injected (0: a dropped connection)."""
    first_must_converge: bool = True
    """Modest rates are ridden out in one run; harsh ones may fail workspaces, clearly."""
    workspaces: int = 20
    waves: int = 1
    parallelism: int = 32
    storm_through_rerun: bool = False
    """Keep the faults on for the rerun and the check (the slow rows)."""


FAST: list[Row] = [
    Row("latency", everywhere(Faults(latency_range_ms=(0.0, 40.0))), frozenset({200})),
    Row(
        "throttling-429",
        # A burst of 2: one plan's concurrent reads exceed it however slow the machine is.
        everywhere(Faults(rate_limit_rps=100.0, rate_limit_burst=2, retry_after_seconds=0)),
        frozenset({429}),
    ),
    Row("503-each-step", one_fault_per_workspace(503), frozenset({503})),
    Row("500-each-step", one_fault_per_workspace(500), frozenset({500})),
    Row("dropped-each-step", one_fault_per_workspace(None, lost_acks=True), frozenset({0})),
    Row("late-acl", everywhere(Faults(late_acl_seconds=1.0)), frozenset({200})),
]

SLOW: list[Row] = [
    Row(
        "latency-spikes",
        everywhere(Faults(latency_range_ms=(0.0, 400.0))),
        frozenset({200}),
        workspaces=40,
        waves=3,
        parallelism=16,
        storm_through_rerun=True,
    ),
    Row(
        "throttling-storm",
        everywhere(Faults(rate_limit_rps=5.0, rate_limit_burst=1, retry_after_seconds=1)),
        frozenset({429}),
        workspaces=40,
        waves=2,
        storm_through_rerun=True,
    ),
    Row(
        "503-storm",
        everywhere(Faults(error_rate=0.1, error_statuses=(503,), retry_after_seconds=0)),
        frozenset({503}),
        workspaces=30,
        storm_through_rerun=True,
    ),
    Row(
        "500-502-504-storm",
        everywhere(Faults(error_rate=0.3, error_statuses=(500, 502, 504))),
        frozenset({500, 502, 504}),
        first_must_converge=False,
        workspaces=40,
        waves=2,
        storm_through_rerun=True,
    ),
    Row(
        "drop-storm",
        everywhere(Faults(drop_rate=0.1)),
        frozenset({0}),
        first_must_converge=False,
        workspaces=30,
        storm_through_rerun=True,
    ),
    Row("late-acl-slow", everywhere(Faults(late_acl_seconds=4.0)), frozenset({200}), workspaces=40),
    Row(
        "everything-at-once",
        everywhere(
            Faults(
                latency_range_ms=(0.0, 100.0),
                rate_limit_rps=30.0,
                rate_limit_burst=4,
                retry_after_seconds=0,
                error_rate=0.05,
                error_statuses=(500, 503),
                drop_rate=0.03,
                late_acl_seconds=1.5,
            )
        ),
        frozenset({0, 429, 500, 503}),
        first_must_converge=False,
        workspaces=40,
        waves=2,
        storm_through_rerun=True,
    ),
]

FAILED_LINE = re.compile(r"^  (ws\d\d): (.+)$", re.MULTILINE)


def assert_clear_outcome(run: Result, names: tuple[str, ...]) -> set[str]:
    """Exit 0 with every workspace applied, or exit 1 naming each failed workspace with a
    reason. Never a trace, never an "unexpected error". Returns the failed workspaces."""
    assert "Traceback" not in run.text and "unexpected error" not in run.text, run.err[-2000:]
    assert run.code in (0, 1), run.text[-2000:]
    assert re.search(rf"^{len(names)} workspace\(s\): ", run.out, re.MULTILINE), run.out[-2000:]
    failed = {m.group(1) for m in FAILED_LINE.finditer(run.out)}
    if run.code == 0:
        assert failed == set(), run.out[-2000:]
    else:
        assert failed, f"exit 1 without a per-workspace reason:\n{run.text[-2000:]}"
        assert failed <= set(names)
    return failed


def run_row(
    emu: EmulatorHandle, fleet: Fleet, row: Row, capsys: pytest.CaptureFixture[str]
) -> None:
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    for index, name in enumerate((*fleet.names, *fleet.bystanders)):
        emu.set_faults(name, row.faults(index))
    apply = ["apply", str(fleet.file), "--auto-approve", "--parallelism", str(row.parallelism)]

    first = run_cli(capsys, *apply)
    failed = assert_clear_outcome(first, fleet.names)
    if row.first_must_converge:
        assert first.code == 0, first.out[-3000:]
    fired = {status for name in fleet.names for (_m, _p, status) in emu.responses(name)}
    assert row.fired <= fired, f"the fault never fired: {row.fired - fired}"

    if failed or not row.storm_through_rerun:  # the operator reruns once the storm is over
        for name in fleet.names:
            emu.set_faults(name, Faults())
    rerun = run_cli(capsys, *apply)
    assert_clear_outcome(rerun, fleet.names)
    assert rerun.code == 0, rerun.out[-3000:]
    check = run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "--quiet"])
    assert check.code == 0, check.text[-3000:]

    assert_untouched(before, state)
    assert_converged_state(fleet, state)
    assert recorder.violations == [], recorder.violations[:5]
    assert not any(w.workspace in fleet.bystanders for w in recorder.writes)


@pytest.mark.parametrize("row", FAST, ids=lambda r: r.name)
def test_fault_fast(
    emu: EmulatorHandle, fleet: Fleet, row: Row, capsys: pytest.CaptureFixture[str]
) -> None:
    run_row(emu, fleet, row, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("row", SLOW, ids=lambda r: r.name)
def test_fault_slow(tmp_path: Path, row: Row, capsys: pytest.CaptureFixture[str]) -> None:
    with running_emulator(deployer_config()) as emu:
        fleet = write_fleet(tmp_path / "repo", emu.url, row.workspaces, waves=row.waves)
        seed(fleet)
        run_row(emu, fleet, row, capsys)


def test_a_permanent_refusal_stops_only_that_workspace_with_the_services_reason(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """Four workspaces refuse a secret put with a permanent 400: those four fail with the
    service's reason, the other sixteen apply, nothing outside the plan moves, and the rerun
    after the fault clears converges."""
    state = emulator_state(emu)
    before = baseline(fleet, state)
    broken = fleet.names[3::5]
    for name in broken:
        emu.set_faults(
            name,
            Faults(
                one_shot=(  # puts 1 and 2 record the lock holder and its first beat
                    OneShotFailure(
                        "secrets/put",
                        nth=3,
                        status=400,
                        error_code="INVALID_PARAMETER_VALUE",
                        message="refused by test",
                    ),
                )
            ),
        )
    first = run_cli(capsys, *["apply", str(fleet.file), "--auto-approve"])
    assert set(assert_clear_outcome(first, fleet.names)) == set(broken)
    for name in broken:
        assert re.search(rf"^  {name}: .*put pip-\S+: .*refused by test", first.out, re.M), (
            first.out[-2000:]
        )
    counts = Counter(
        line.split()[2] for line in first.out.splitlines() if re.match(r"^ws\d\d\s+0\s", line)
    )
    assert counts == Counter({"applied": 16, "FAILED": 4})
    for name in broken:
        emu.set_faults(name, Faults())
    assert run_cli(capsys, *["apply", str(fleet.file), "--auto-approve", "-q"]).code == 0
    assert run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"]).code == 0
    assert_untouched(before, state)
    assert_converged_state(fleet, state)
