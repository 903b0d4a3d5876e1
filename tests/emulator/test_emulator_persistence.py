"""The state file: survives a restart, written atomically with mode 0600."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.workspace import AclPermission, ImportFormat

from reconciler.emulator import (
    EmulatorConfig,
    Faults,
    StateFileError,
    WorkspaceSettings,
    running_emulator,
)

SCOPE = "databricks-package-management"


def admin(host: str) -> WorkspaceClient:
    return WorkspaceClient(host=host, token="dapi-emulator-admin")


def test_restart_keeps_scopes_secrets_acls_timestamps_and_files(tmp_path: Path) -> None:
    state = tmp_path / "emulator-state.json"
    with running_emulator(state_file=state) as emu:
        client = admin(emu.host("prod"))
        client.secrets.create_scope(SCOPE)
        client.secrets.put_secret(SCOPE, "pip-index-url", string_value="https://u:t@idx/simple")
        client.secrets.put_acl(SCOPE, "users", AclPermission.READ)
        client.workspace.mkdirs("/Shared/pkgrepo")
        client.workspace.import_(
            "/Shared/pkgrepo/ledger.json",
            content="eyJhIjogMX0=",
            format=ImportFormat.AUTO,
        )
        before = list(client.secrets.list_secrets(SCOPE))
        admin(emu.host("dev")).secrets.create_scope("dev-only")
        port = emu.port
        emu.restart()  # same port, state reloaded from the file
        assert emu.port == port
        client = admin(emu.host("prod"))
        assert list(client.secrets.list_secrets(SCOPE)) == before
        assert {a.principal: a.permission for a in client.secrets.list_acls(SCOPE)} == {
            "admin@pkgrepo.local": AclPermission.MANAGE,
            "users": AclPermission.READ,
        }
        assert emu.backend("prod").secret_value(SCOPE, "pip-index-url") == b"https://u:t@idx/simple"
        assert client.workspace.export("/Shared/pkgrepo/ledger.json").content == "eyJhIjogMX0="

    with running_emulator(state_file=state) as emu:  # a new process would see the same
        assert [s.name for s in admin(emu.host("dev")).secrets.list_scopes()] == ["dev-only"]
        client = admin(emu.host("prod"))
        client.secrets.put_secret(SCOPE, "pip-index-url", string_value="https://new/simple")
        (after,) = client.secrets.list_secrets(SCOPE)
        # Whole-second stamps, like the service's: a write in the same second keeps it.
        assert (after.last_updated_timestamp or 0) >= (before[0].last_updated_timestamp or 0)


def test_state_file_is_private_and_written_after_each_change(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with running_emulator(state_file=state) as emu:
        client = admin(emu.host("ws1"))
        assert not state.exists(), "reads write nothing"
        list(client.secrets.list_scopes())
        assert not state.exists()
        client.secrets.create_scope(SCOPE)
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
        saved = json.loads(state.read_text())["workspaces"]
        assert SCOPE in json.dumps(saved)  # saved before the answer, not at stop
        assert [p.name for p in tmp_path.iterdir()] == ["state.json"], "no temp files left"


def test_pending_late_acl_is_saved_as_it_will_end_up(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    config = EmulatorConfig(
        workspaces={"ws1": WorkspaceSettings(faults=Faults(late_acl_seconds=60))}
    )
    with running_emulator(config=config, state_file=state) as emu:
        client = admin(emu.host("ws1"))
        client.secrets.create_scope(SCOPE)
        client.secrets.put_acl(SCOPE, "users", AclPermission.READ)
        assert "users" not in {a.principal for a in client.secrets.list_acls(SCOPE)}
    with running_emulator(state_file=state) as emu:
        client = admin(emu.host("ws1"))
        assert "users" in {a.principal for a in client.secrets.list_acls(SCOPE)}


def test_a_foreign_or_corrupt_state_file_is_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    with (
        pytest.raises(StateFileError, match="not valid JSON"),
        running_emulator(state_file=corrupt),
    ):
        pass
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"hello": "world"}')
    with (
        pytest.raises(StateFileError, match="not a pkgrepo emulator state file"),
        running_emulator(state_file=foreign),
    ):
        pass
    with running_emulator(state_file=tmp_path / "absent.json") as emu:  # an empty state
        assert list(admin(emu.host("ws1")).secrets.list_scopes()) == []
