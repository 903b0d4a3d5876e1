"""The Secrets API through the real databricks-sdk: success paths, errors, service rules."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    BadRequest,
    InvalidParameterValue,
    NotFound,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from databricks.sdk.service.workspace import AclPermission, ScopeBackendType

from reconciler.emulator import MAX_SECRETS_PER_SCOPE, MAX_VALUE_BYTES, EmulatorHandle, ServiceModes

MakeClient = Callable[..., WorkspaceClient]

SCOPE = "databricks-package-management"


def test_every_endpoint_success_path(client: WorkspaceClient, make_client: MakeClient) -> None:
    client.secrets.create_scope(SCOPE, scope_backend_type=ScopeBackendType.DATABRICKS)
    scopes = list(client.secrets.list_scopes())
    assert [(s.name, s.backend_type) for s in scopes] == [(SCOPE, ScopeBackendType.DATABRICKS)]

    client.secrets.put_secret(SCOPE, "pip-index-url", string_value="https://pypi.example/simple")
    client.secrets.put_secret(SCOPE, "pip-cert", bytes_value=base64.b64encode(b"\x00PEM").decode())
    assert sorted(s.key for s in client.secrets.list_secrets(SCOPE)) == [
        "pip-cert",
        "pip-index-url",
    ]

    client.secrets.put_acl(SCOPE, "users", AclPermission.READ)
    acls = {a.principal: a.permission for a in client.secrets.list_acls(SCOPE)}
    assert acls == {"admin@pkgrepo.local": AclPermission.MANAGE, "users": AclPermission.READ}
    got = client.secrets.get_acl(SCOPE, "users")
    assert (got.principal, got.permission) == ("users", AclPermission.READ)

    notebook = make_client("notebook")
    notebook.secrets.create_scope(SCOPE)
    notebook.secrets.put_secret(SCOPE, "pip-index-url", string_value="https://u:t@idx/simple")
    value = notebook.secrets.get_secret(SCOPE, "pip-index-url")
    assert (value.key, base64.b64decode(value.value or "")) == (
        "pip-index-url",
        b"https://u:t@idx/simple",
    )

    client.secrets.delete_acl(SCOPE, "users")
    client.secrets.delete_secret(SCOPE, "pip-cert")
    assert [s.key for s in client.secrets.list_secrets(SCOPE)] == ["pip-index-url"]
    client.secrets.delete_scope(SCOPE)
    assert list(client.secrets.list_scopes()) == []


def test_empty_lists_are_left_out_like_the_service(emulator: EmulatorHandle) -> None:
    import json
    import urllib.request

    request = urllib.request.Request(
        emulator.host("ws1") + "/api/2.0/secrets/scopes/list",
        headers={"Authorization": "Bearer dapi-emulator-admin"},
    )
    with urllib.request.urlopen(request) as answer:
        assert json.loads(answer.read()) == {}


def test_errors_map_to_the_sdk_exception_classes(client: WorkspaceClient) -> None:
    client.secrets.create_scope(SCOPE)
    with pytest.raises(ResourceAlreadyExists) as exists:
        client.secrets.create_scope(SCOPE)
    assert exists.value.error_code == "RESOURCE_ALREADY_EXISTS"

    with pytest.raises(ResourceDoesNotExist) as missing:
        client.secrets.list_secrets("no-such-scope")
    assert isinstance(missing.value, NotFound)
    with pytest.raises(ResourceDoesNotExist):
        client.secrets.delete_secret(SCOPE, "never-written")
    with pytest.raises(ResourceDoesNotExist):
        client.secrets.delete_acl(SCOPE, "users")
    with pytest.raises(ResourceDoesNotExist):
        client.secrets.get_acl(SCOPE, "users")
    with pytest.raises(ResourceDoesNotExist):
        client.secrets.delete_scope("no-such-scope")

    with pytest.raises(InvalidParameterValue):
        client.secrets.put_secret(SCOPE, "bad key!", string_value="x")
    with pytest.raises(InvalidParameterValue):
        client.secrets.create_scope("bad scope name")
    with pytest.raises(InvalidParameterValue):
        client.secrets.put_acl(SCOPE, "nobody-by-that-name", AclPermission.READ)
    with pytest.raises(ResourceDoesNotExist):
        client.secrets.get_secret(SCOPE, "pip-index-url")


def test_put_needs_exactly_one_value(client: WorkspaceClient) -> None:
    client.secrets.create_scope(SCOPE)
    with pytest.raises(InvalidParameterValue, match="Exactly one"):
        client.secrets.put_secret(SCOPE, "k")
    with pytest.raises(BadRequest) as both:
        client.secrets.put_secret(SCOPE, "k", string_value="a", bytes_value="YQ==")
    assert both.value.error_code == "MALFORMED_REQUEST"
    with pytest.raises(InvalidParameterValue, match="base64"):
        client.secrets.put_secret(SCOPE, "k", bytes_value="not base64!")


def test_timestamps_are_whole_seconds_and_equal_within_one_second(
    client: WorkspaceClient, emulator: EmulatorHandle
) -> None:
    """FIDELITY: every real last_updated_timestamp is a whole second, so two writes within
    one second carry the same stamp."""
    emulator.backend("ws1").set_clock(lambda: 1_700_000_000.25)
    client.secrets.create_scope(SCOPE)
    stamps = []
    for i in range(5):
        client.secrets.put_secret(SCOPE, "pip-index-url", string_value=f"https://v{i}")
        (meta,) = client.secrets.list_secrets(SCOPE)
        stamps.append(meta.last_updated_timestamp or 0)
    assert stamps == [1_700_000_000_000] * 5
    assert emulator.backend("ws1").secret_value(SCOPE, "pip-index-url") == b"https://v4"


def test_millis_mode_keeps_stamps_strictly_increasing(
    client: WorkspaceClient, emulator: EmulatorHandle
) -> None:
    import time

    emulator.set_modes("ws1", ServiceModes(timestamps="millis"))
    client.secrets.create_scope(SCOPE)
    before_ms = time.time() * 1000
    stamps = []
    for i in range(20):  # many writes within the same millisecond
        client.secrets.put_secret(SCOPE, "pip-index-url", string_value=f"https://v{i}")
        (meta,) = client.secrets.list_secrets(SCOPE)
        stamps.append(meta.last_updated_timestamp or 0)
    assert stamps == sorted(set(stamps)), "every write gets a later stamp"
    assert before_ms - 1000 <= stamps[0] <= time.time() * 1000 + 1000, "milliseconds, not s"


def test_scope_names_are_case_insensitive(client: WorkspaceClient) -> None:
    client.secrets.create_scope("Team.Scope@x")
    with pytest.raises(ResourceAlreadyExists):
        client.secrets.create_scope("team.scope@X")
    client.secrets.put_secret("TEAM.SCOPE@X", "k", string_value="v")
    assert [s.name for s in client.secrets.list_scopes()] == ["Team.Scope@x"]
    assert [s.key for s in client.secrets.list_secrets("team.scope@x")] == ["k"]


def test_name_length_limits(client: WorkspaceClient) -> None:
    client.secrets.create_scope("s" * 128)
    with pytest.raises(InvalidParameterValue):
        client.secrets.create_scope("s" * 129)
    client.secrets.put_secret("s" * 128, "k" * 128, string_value="v")
    with pytest.raises(InvalidParameterValue):
        client.secrets.put_secret("s" * 128, "k" * 129, string_value="v")


def test_value_size_limit_is_128_kb_of_decoded_bytes(client: WorkspaceClient) -> None:
    client.secrets.create_scope(SCOPE)
    client.secrets.put_secret(
        SCOPE, "max", bytes_value=base64.b64encode(b"x" * MAX_VALUE_BYTES).decode()
    )
    too_big = "é" * (MAX_VALUE_BYTES // 2 + 1)  # fewer characters than bytes: bytes count
    with pytest.raises(InvalidParameterValue) as refused:
        client.secrets.put_secret(SCOPE, "big", string_value=too_big)
    assert "é" not in str(refused.value), "the value is never echoed"
    assert [s.key for s in client.secrets.list_secrets(SCOPE)] == ["max"]


def test_a_scope_holds_at_most_1000_secrets(
    client: WorkspaceClient, emulator: EmulatorHandle
) -> None:
    client.secrets.create_scope(SCOPE)
    backend = emulator.backend("ws1")
    for i in range(MAX_SECRETS_PER_SCOPE - 1):  # seed directly: 999 HTTP calls would be slow
        backend.put_secret(emulator.admin, SCOPE, f"k{i}", b"v", is_bytes=False)
    client.secrets.put_secret(SCOPE, "last-one", string_value="v")
    with pytest.raises(BadRequest) as full:
        client.secrets.put_secret(SCOPE, "one-too-many", string_value="v")
    assert full.value.error_code == "RESOURCE_LIMIT_EXCEEDED"
    client.secrets.put_secret(SCOPE, "last-one", string_value="overwrite is fine")
    assert len(list(client.secrets.list_secrets(SCOPE))) == MAX_SECRETS_PER_SCOPE


def test_creator_gets_manage_unless_users_is_the_initial_manager(
    client: WorkspaceClient, make_client: MakeClient
) -> None:
    alice = make_client(token="dapi-alice")
    alice.secrets.create_scope("alices")
    assert [(a.principal, a.permission) for a in alice.secrets.list_acls("alices")] == [
        ("alice@example.com", AclPermission.MANAGE)
    ]
    client.secrets.create_scope("shared", initial_manage_principal="users")
    assert [(a.principal, a.permission) for a in client.secrets.list_acls("shared")] == [
        ("users", AclPermission.MANAGE)
    ]
    # FIDELITY: 400 BAD_REQUEST "Cannot specify TestGroup as initial_manage_principal."
    with pytest.raises(BadRequest, match="Cannot specify admins as initial_manage_principal"):
        client.secrets.create_scope("other", initial_manage_principal="admins")
    assert [s.name for s in client.secrets.list_scopes()] == ["alices", "shared"]


def test_azure_keyvault_scopes_cannot_be_created_with_a_token(client: WorkspaceClient) -> None:
    with pytest.raises(InvalidParameterValue, match="userAADToken"):
        client.secrets.create_scope("kv", scope_backend_type=ScopeBackendType.AZURE_KEYVAULT)


def test_rest_get_answers_a_manage_holder_by_default(
    emulator: EmulatorHandle, make_client: MakeClient
) -> None:
    """FIDELITY: databricks/cli's cloud acceptance test reads a value back over REST with
    the token of the principal that holds MANAGE; the REST reference says DBUtils only."""
    admin = make_client("ws1")
    admin.secrets.create_scope(SCOPE)
    admin.secrets.put_secret(SCOPE, "k", string_value="v")
    admin.secrets.put_acl(SCOPE, "users", AclPermission.READ)
    assert base64.b64decode(admin.secrets.get_secret(SCOPE, "k").value or "") == b"v"
    reader = make_client("ws1", token="dapi-emulator-user")
    with pytest.raises(BadRequest, match="notebook"):
        reader.secrets.get_secret(SCOPE, "k")
    with pytest.raises(ResourceDoesNotExist):
        admin.secrets.get_secret(SCOPE, "missing")


def test_rest_get_refused_and_allowed_modes(
    emulator: EmulatorHandle, make_client: MakeClient
) -> None:
    admin = make_client("ws1")
    admin.secrets.create_scope(SCOPE)
    admin.secrets.put_secret(SCOPE, "k", string_value="v")
    admin.secrets.put_acl(SCOPE, "users", AclPermission.READ)
    emulator.set_modes("ws1", ServiceModes(rest_get="refused"))
    with pytest.raises(BadRequest, match="notebook"):
        admin.secrets.get_secret(SCOPE, "k")
    emulator.set_modes("ws1", ServiceModes(rest_get="allowed"))
    reader = make_client("ws1", token="dapi-emulator-user")
    assert base64.b64decode(reader.secrets.get_secret(SCOPE, "k").value or "") == b"v"
    emulator.set_modes("ws1", ServiceModes(rest_get="refused"))
    emulator.set_notebook_context("ws1", True)  # inside a notebook: READ is enough
    assert base64.b64decode(reader.secrets.get_secret(SCOPE, "k").value or "") == b"v"


def test_workspaces_are_isolated(make_client: MakeClient, emulator: EmulatorHandle) -> None:
    one, two = make_client("ws-one"), make_client("ws-two")
    one.secrets.create_scope(SCOPE)
    one.secrets.put_secret(SCOPE, "k", string_value="one")
    assert list(two.secrets.list_scopes()) == []
    two.secrets.create_scope(SCOPE)  # no clash with ws-one
    assert list(two.secrets.list_secrets(SCOPE)) == []
    assert emulator.workspace_id("ws-one") != emulator.workspace_id("ws-two")
    assert one.config.workspace_id == emulator.workspace_id("ws-one")


def test_the_root_is_workspace_default(emulator: EmulatorHandle) -> None:
    root = WorkspaceClient(host=emulator.url, token="dapi-emulator-admin")
    root.secrets.create_scope(SCOPE)
    assert [
        s.name
        for s in WorkspaceClient(
            host=emulator.host("default"), token="dapi-emulator-admin"
        ).secrets.list_scopes()
    ] == [SCOPE]
