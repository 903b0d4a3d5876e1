"""The ``Fleet`` class itself, where the command line gives too little control: the listener's
view of waves, ``max_failures`` with several workspaces in flight, and plan failures.

Specs come from a generated ``pkgrepo.yaml`` through ``config.load``, ports are real
``SdkWorkspace`` clients, the emulator is the in-process one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import config
from reconciler.core.model import SecretValue, WorkspaceSpec
from reconciler.core.results import Listener, Status, WorkspaceResult
from reconciler.edges.adapter import SdkWorkspace
from reconciler.edges.ledger_store import WorkspaceLedgerStore
from reconciler.emulator import EmulatorHandle, Faults, OneShotFailure, running_emulator
from reconciler.engine.apply import ApplyOptions
from reconciler.engine.fleet import Fleet
from reconciler.engine.port import WorkspacePort
from tests.fleet.conftest import (
    COUNT,
    LEDGER_KEY,
    NAMES,
    FleetFile,
    Journal,
    canary_waves,
    fleet_config,
    one_wave,
)

FAST = ApplyOptions(
    deadline_seconds=20, acl_settle_seconds=5, backoff_initial=0.05, backoff_max=0.5
)


def connect(spec: WorkspaceSpec) -> WorkspacePort:
    return SdkWorkspace.connect(spec, ledger_in_workspace=True, retry_timeout_seconds=10)


def make_fleet(*, parallelism: int = 8, listener: Listener | None = None) -> Fleet:
    return Fleet(
        connect,
        WorkspaceLedgerStore(),
        SecretValue(LEDGER_KEY),
        parallelism=parallelism,
        listener=listener,
    )


def specs_of(path: str) -> list[WorkspaceSpec]:
    return list(config.load(Path(path)).desired.workspaces)


def test_listener_sees_every_wave_finish_before_the_next_one_writes(
    fleet_file: FleetFile, journal: Journal
) -> None:
    specs = specs_of(fleet_file.write(wave_of=canary_waves))
    lock = threading.Lock()
    events: list[tuple[str, WorkspaceResult, int]] = []

    def listen(phase: str, result: WorkspaceResult) -> None:
        with lock:
            events.append((phase, result, journal.mark()))

    fleet = make_fleet(listener=listen)
    fleet_plan = fleet.plan(specs, salt="fleet-tests")
    start = journal.mark()
    results = fleet.apply(specs, fleet_plan, options=FAST)

    assert [r.workspace for r in results] == list(NAMES)
    assert {r.status for r in results} == {Status.APPLIED}
    phases = [phase for phase, _, _ in events]
    assert phases == ["plan"] * COUNT + ["apply"] * COUNT
    waves = [result.wave for phase, result, _ in events if phase == "apply"]
    assert waves == sorted(waves)

    writes = journal.writes(start)
    for wave in (0, 1):
        finished = max(mark for phase, r, mark in events if phase == "apply" and r.wave == wave)
        later = [s.name for s in specs if s.wave == wave + 1]
        assert min(writes[name][0].seq for name in later) >= finished


@pytest.fixture
def ten_broken(journal: Journal) -> Iterator[EmulatorHandle]:
    broken = Faults(one_shot=(OneShotFailure("secrets/acls/put", status=400),))
    faults = {f"ws-0{i}": broken for i in range(10)}
    with running_emulator(fleet_config(faults)) as handle:
        yield journal.watch(handle)


def test_max_failures_with_workspaces_in_flight(
    ten_broken: EmulatorHandle, tmp_path: Path, journal: Journal
) -> None:
    """With 4 at a time, at most 3 more can fail after the limit is reached; everything not
    yet started is skipped and never written to."""
    specs = specs_of(FleetFile(tmp_path / "pkgrepo.yaml", ten_broken).write(wave_of=one_wave))
    fleet = make_fleet(parallelism=4)
    fleet_plan = fleet.plan(specs, salt="fleet-tests")
    start = journal.mark()
    results = fleet.apply(specs, fleet_plan, options=FAST, max_failures=3)

    assert [r.workspace for r in results] == list(NAMES)
    failed = {r.workspace for r in results if r.status is Status.FAILED}
    skipped = {r.workspace for r in results if r.status is Status.SKIPPED}
    assert 3 <= len(failed) <= 3 + 4 - 1
    assert failed | skipped == set(NAMES)
    assert {r.error for r in results if r.status is Status.SKIPPED} == {
        "not started: --max-failures 3 reached"
    }
    assert not set(journal.writes(start)) & skipped
    # the fleet is still alive, yet no workspace, skipped or failed, holds a connection
    assert fleet is not None and ten_broken.open_connections(settle_seconds=3) == 0


@pytest.fixture
def unreadable_in_wave_one(journal: Journal) -> Iterator[EmulatorHandle]:
    broken = Faults(one_shot=(OneShotFailure("secrets/list", status=400),))
    with running_emulator(fleet_config({"ws-07": broken})) as handle:
        yield journal.watch(handle)


def test_a_plan_failure_counts_as_a_failure_of_its_wave(
    unreadable_in_wave_one: EmulatorHandle, tmp_path: Path, journal: Journal
) -> None:
    specs = specs_of(
        FleetFile(tmp_path / "pkgrepo.yaml", unreadable_in_wave_one).write(wave_of=canary_waves)
    )
    fleet = make_fleet()
    fleet_plan = fleet.plan(specs, salt="fleet-tests")
    assert [r.workspace for r in fleet_plan.failed] == ["ws-07"]
    start = journal.mark()
    by_name = {r.workspace: r for r in fleet.apply(specs, fleet_plan, options=FAST)}

    assert by_name["ws-07"].status is Status.FAILED
    assert by_name["ws-07"].error is not None and "list secrets" in by_name["ws-07"].error
    for spec in specs:
        if spec.name == "ws-07":
            continue
        expected = Status.SKIPPED if spec.wave == 2 else Status.APPLIED
        assert by_name[spec.name].status is expected, spec.name
    written = set(journal.writes(start))
    assert written == {s.name for s in specs if s.wave < 2 and s.name != "ws-07"}
    # the fleet is still alive, yet no workspace, skipped or failed, holds a connection
    assert fleet is not None and unreadable_in_wave_one.open_connections(settle_seconds=3) == 0
