"""Letting go of a workspace closes its connections at once, whatever still refers to them.

A fleet of thousands must not keep a connection open (a file descriptor on the runner, a slot
on the workspace's front end) for every workspace it has finished with."""

from __future__ import annotations

import time

import pytest
from databricks.sdk.errors import NotFound

from reconciler.core.errors import WorkspaceError
from reconciler.core.model import AuthSpec, SecretValue, WorkspaceSpec
from reconciler.edges.adapter import SdkWorkspace
from reconciler.emulator import EmulatorHandle, Faults, OneShotFailure


def test_close_ends_the_connections_an_error_still_holds(
    emu: EmulatorHandle, admin_token: str
) -> None:
    spec = WorkspaceSpec(
        name="ws1",
        host=emu.host("ws1"),
        auth=AuthSpec(kind="token", token=SecretValue(admin_token)),
    )
    port = SdkWorkspace.connect(spec, retry_timeout_seconds=10)
    # An error kept after the call (a result, a log record, a retry's last failure) holds its
    # traceback, the response in it, and through the response the connection pool.
    with pytest.raises(NotFound) as kept:
        port.client.secrets.list_secrets(scope="no-such-scope")
    assert emu.open_connections() == 1

    port.close()

    assert emu.open_connections(settle_seconds=5) == 0
    assert kept.value is not None  # still held: closing did not wait for it to go


def test_a_read_still_retrying_after_close_leaves_no_connection_open(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """A plan that fails (``secrets/list`` refused) leaves the grants read, started beside it,
    retrying a 503; the run then lets go of the workspace. The retry lands after the close
    and must give back the connection it opened."""
    emu.backend("ws1").create_scope(emu.admin, "databricks-package-management")
    spec = WorkspaceSpec(
        name="ws1",
        host=emu.host("ws1"),
        auth=AuthSpec(kind="token", token=SecretValue(admin_token)),
    )
    port = SdkWorkspace.connect(spec, retry_timeout_seconds=30)
    port.principal = "deployer"  # no identity lookup: the two reads are all there is
    emu.set_faults(
        "ws1",
        Faults(
            one_shot=(
                OneShotFailure(
                    "secrets/list", status=403, error_code="PERMISSION_DENIED", message="no"
                ),
                OneShotFailure("secrets/acls/list", status=503),
            )
        ),
    )
    with pytest.raises(WorkspaceError):
        port.read()
    port.close()  # what the fleet does with a workspace whose plan failed

    acls = ("GET", "/api/2.0/secrets/acls/list")
    deadline = time.monotonic() + 30
    while emu.requests("ws1")[acls] < 2:  # the retry, after the SDK's back-off
        assert time.monotonic() < deadline, "the grants read was never retried"
        time.sleep(0.05)
    assert emu.open_connections(settle_seconds=5) == 0
