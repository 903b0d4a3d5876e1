"""A converged workspace gives its connections back as soon as it is planned: a fleet of
thousands does not hold open connections (file descriptors on the runner, a connection on
each workspace's front end) for every workspace until the run ends."""

from __future__ import annotations

from pathlib import Path

from reconciler.commands.context import open_session
from reconciler.emulator import EmulatorHandle
from reconciler.engine.apply import ApplyOptions
from reconciler.engine.fleet import Status

from .conftest import NAMES


def test_workspaces_close_their_connections_once_done(
    emu: EmulatorHandle, discovery_file: str
) -> None:
    session = open_session(Path(discovery_file))
    applied = session.fleet.apply(
        session.specs, session.fleet.plan(session.specs, salt="first"), options=ApplyOptions()
    )
    assert {r.status for r in applied} == {Status.APPLIED}
    # each workspace let go once applied and planned again
    assert emu.open_connections(settle_seconds=3) == 0

    fleet_plan = session.fleet.plan(session.specs, salt="connections")
    assert {r.status for r in fleet_plan.results} == {Status.UP_TO_DATE}
    assert len(fleet_plan.results) == len(NAMES)
    # the session (and its fleet) is still alive here: nothing was closed by the exit
    assert emu.open_connections(settle_seconds=3) == 0
    assert session.fleet is not None
    assert sum(emu.requests(n)[("POST", "/oidc/v1/token")] for n in NAMES) == 2 * len(NAMES)
