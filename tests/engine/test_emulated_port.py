"""The in-process port the engine's unit tests use (``tests/support/emulated_port``) means
what the real adapter means: the same calls, made through ``SdkWorkspace`` and the real
databricks-sdk against the HTTP emulator, and through the in-process port against the same
emulator configuration, give the same answers and leave the same state. If the adapter's
meaning of a call changes, this fails before the engine tests drift into a fiction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reconciler.core.errors import WorkspaceError
from reconciler.core.model import (
    EXTRA_INDEX_URLS,
    INDEX_URL,
    AuthSpec,
    Permission,
    SecretValue,
    WorkspaceSpec,
)
from reconciler.edges.adapter import LEDGER_PATH, SdkWorkspace
from reconciler.emulator import running_emulator
from reconciler.engine.port import WorkspacePort
from tests.support.emulated_port import (
    DEPLOYER,
    MALLORY,
    TOKENS,
    EmulatedService,
    EmulatedWorkspace,
)

Step = Callable[[WorkspacePort, WorkspacePort], Any]


def outcome(step: Step, port: WorkspacePort, user: WorkspacePort) -> Any:
    """What a step returned, or which error (kind only) it raised."""
    try:
        result = step(port, user)
    except WorkspaceError:
        return "WorkspaceError"
    if isinstance(result, bool | str | type(None)):
        return result
    if hasattr(result, "live"):  # a Snapshot
        live = result.live
        return (live.scope_exists, sorted(live.secrets), dict(live.acls), live.identity)
    return sorted(dict(result).items()) if not isinstance(result, list) else result


STEPS: list[tuple[str, Step]] = [
    ("read, nothing there", lambda p, u: p.read()),
    ("list secrets without a scope", lambda p, u: p.list_secrets()),
    ("list ACLs without a scope", lambda p, u: p.list_acls()),
    ("delete a missing scope", lambda p, u: p.delete_scope()),
    ("create the scope", lambda p, u: p.create_scope()),
    ("create it again", lambda p, u: p.create_scope()),
    ("put a key", lambda p, u: p.put_secret(INDEX_URL, SecretValue("https://a.example/simple"))),
    ("put another", lambda p, u: p.put_secret(EXTRA_INDEX_URLS, SecretValue("https://b/simple"))),
    ("put a key the service refuses", lambda p, u: p.put_secret("bad key!", SecretValue("x"))),
    ("delete a missing key", lambda p, u: p.delete_secret("pip-cert")),
    ("grant a group", lambda p, u: p.put_acl("data-eng", Permission.READ)),
    ("grant nobody", lambda p, u: p.put_acl("no-such-group", Permission.READ)),
    ("remove a missing grant", lambda p, u: p.delete_acl("team")),
    ("write the ledger", lambda p, u: p.write_ledger(b'{"ledger": 1}')),
    ("read", lambda p, u: p.read()),
    ("read values back", lambda p, u: p.read_values([INDEX_URL])),
    ("the user lists the scope", lambda p, u: u.list_secrets()),
    ("the user writes to it", lambda p, u: u.put_secret(INDEX_URL, SecretValue("x"))),
    ("the user takes the lock", lambda p, u: u.lock_create()),
    ("the user names a holder", lambda p, u: u.lock_put("holder.ruser.lease.600")),
    ("the lock exists", lambda p, u: p.lock_create()),
    ("its keys", lambda p, u: sorted(p.lock_keys() or {})),
    ("its writers", lambda p, u: p.lock_writers()),
    ("is the user an admin", lambda p, u: p.admin_status(MALLORY)),
    ("is the deployer", lambda p, u: p.admin_status(DEPLOYER)),
    ("is a group", lambda p, u: p.admin_status("data-eng")),
    ("is admins", lambda p, u: p.admin_status("admins")),
    ("is nobody", lambda p, u: p.admin_status("ghost@example.com")),
    ("the user asks", lambda p, u: u.admin_status(DEPLOYER)),
    ("revoke the user", lambda p, u: p.lock_revoke(MALLORY)),
    ("revoke again", lambda p, u: p.lock_revoke(MALLORY)),
    ("claim the user's key", lambda p, u: p.lock_delete_key("holder.ruser.lease.600")),
    ("claim it again", lambda p, u: p.lock_delete_key("holder.ruser.lease.600")),
    ("release", lambda p, u: p.lock_delete()),
    ("release again", lambda p, u: p.lock_delete()),
    ("no lock", lambda p, u: p.lock_keys()),
    ("no writers", lambda p, u: p.lock_writers()),
    ("delete a key", lambda p, u: p.delete_secret(EXTRA_INDEX_URLS)),
    ("remove the grant", lambda p, u: p.delete_acl("data-eng")),
    ("delete the scope", lambda p, u: p.delete_scope()),
    ("read, gone", lambda p, u: p.read()),
]


def test_the_in_process_port_answers_as_the_adapter_does_over_http() -> None:
    service = EmulatedService()
    in_process = (service.port("ws"), service.port("ws", MALLORY))
    with running_emulator(service.config) as emu:

        def sdk(identity: str) -> SdkWorkspace:
            spec = WorkspaceSpec(
                name="ws",
                host=emu.host("ws"),
                auth=AuthSpec(kind="token", token=SecretValue(TOKENS[identity])),
            )
            return SdkWorkspace.connect(spec, read_values=False, retry_timeout_seconds=5)

        over_http = (sdk(DEPLOYER), sdk(MALLORY))
        for what, step in STEPS:
            expected = outcome(step, *over_http)
            got = outcome(step, *in_process)
            assert got == expected, what
        # the same state is left behind: no scope, the same ledger file
        assert not in_process[0].scope
        exported = emu.files("ws").export_file(emu.admin, LEDGER_PATH, format="AUTO")
        assert in_process[0].ledger == exported == b'{"ledger": 1}'


@pytest.mark.parametrize("identity", [DEPLOYER, MALLORY])
def test_the_ports_views_read_what_the_port_wrote(identity: str) -> None:
    port = EmulatedWorkspace(identity=identity)
    port.as_principal(DEPLOYER).create_scope()
    port.as_principal(DEPLOYER).put_acl(MALLORY, Permission.WRITE)
    port.put_secret(INDEX_URL, SecretValue("https://a.example/simple"))
    assert port.values == {INDEX_URL: "https://a.example/simple"}
    assert port.acls == {DEPLOYER: Permission.MANAGE, MALLORY: Permission.WRITE}
    with pytest.raises(TypeError):
        port.acls["intruder"] = Permission.MANAGE  # type: ignore[index]
