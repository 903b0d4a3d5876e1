"""A converged workspace gives its connections back as soon as it is planned: a fleet of
thousands does not hold open connections (file descriptors on the runner, a connection on
each workspace's front end) for every workspace until the run ends."""

from __future__ import annotations

import time
from pathlib import Path

from reconciler.commands.context import open_session
from reconciler.emulator import EmulatorHandle
from reconciler.engine.apply import ApplyOptions
from reconciler.engine.fleet import Status

from .conftest import NAMES


def open_connections(emu: EmulatorHandle) -> int:
    """Connections the emulator still holds, once closes have reached it (bounded wait)."""
    server = emu._server
    assert server is not None
    deadline = time.monotonic() + 15
    while True:
        with server._connections_lock:
            count = len(server._connections)
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def test_workspaces_close_their_connections_once_done(
    emu: EmulatorHandle, discovery_file: str
) -> None:
    session = open_session(Path(discovery_file))
    applied = session.fleet.apply(
        session.specs, session.fleet.plan(session.specs, salt="first"), options=ApplyOptions()
    )
    assert {r.status for r in applied} == {Status.APPLIED}
    assert open_connections(emu) == 0  # each workspace let go once applied and planned again

    fleet_plan = session.fleet.plan(session.specs, salt="connections")
    assert {r.status for r in fleet_plan.results} == {Status.UP_TO_DATE}
    assert len(fleet_plan.results) == len(NAMES)
    # the session (and its fleet) is still alive here: nothing was closed by the exit
    assert open_connections(emu) == 0
    assert session.fleet is not None
    assert sum(emu.requests(n)[("POST", "/oidc/v1/token")] for n in NAMES) == 2 * len(NAMES)
