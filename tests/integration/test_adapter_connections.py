"""Letting go of a workspace closes its connections at once, whatever still refers to them.

A fleet of thousands must not keep a connection open (a file descriptor on the runner, a slot
on the workspace's front end) for every workspace it has finished with."""

from __future__ import annotations

import pytest
from databricks.sdk.errors import NotFound

from reconciler.core.model import AuthSpec, SecretValue, WorkspaceSpec
from reconciler.edges.adapter import SdkWorkspace
from reconciler.emulator import EmulatorHandle


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
