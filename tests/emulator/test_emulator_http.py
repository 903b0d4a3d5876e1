"""The HTTP surface: auth, discovery, SCIM, malformed requests, unknown paths, limits.

Raw requests go through ``http.client`` so the exact status and JSON are visible."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied, ResourceAlreadyExists, Unauthenticated

from reconciler.emulator import EmulatorHandle, RequestSeen

MakeClient = Callable[..., WorkspaceClient]
ADMIN = {"Authorization": "Bearer dapi-emulator-admin"}


def call(
    emulator: EmulatorHandle,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, Any, http.client.HTTPResponse]:
    conn = connection or http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    conn.request(method, path, body=body, headers=ADMIN if headers is None else headers)
    response = conn.getresponse()
    raw = response.read()
    return response.status, json.loads(raw), response


def test_unknown_token_gets_the_gateways_403(emulator: EmulatorHandle) -> None:
    status, body, response = call(
        emulator,
        "GET",
        "/ws1/api/2.0/secrets/scopes/list",
        headers={"Authorization": "Bearer nope"},
    )
    assert (status, body) == (403, {"error_code": 403, "message": "Invalid access token."})
    assert response.getheader("Content-Type") == "application/json"
    client = WorkspaceClient(host=emulator.host("ws1"), token="nope")
    with pytest.raises(PermissionDenied, match="Invalid access token"):
        list(client.secrets.list_scopes())


def test_missing_credentials_get_401(emulator: EmulatorHandle) -> None:
    status, body, _ = call(emulator, "GET", "/ws1/api/2.0/secrets/scopes/list", headers={})
    assert status == 401 and body["error_code"] == 401
    status, _, _ = call(
        emulator, "GET", "/ws1/api/2.0/secrets/scopes/list", headers={"Authorization": "Basic eA=="}
    )
    assert status == 401


def test_host_metadata_probe_keeps_the_sdk_on_pat(emulator: EmulatorHandle) -> None:
    status, body, _ = call(emulator, "GET", "/ws7/.well-known/databricks-config", headers={})
    assert status == 200
    assert body == {
        "oidc_endpoint": f"http://127.0.0.1:{emulator.port}/ws7/oidc",
        "workspace_id": emulator.workspace_id("ws7"),
    }
    assert body["workspace_id"].isdigit()
    client = WorkspaceClient(host=emulator.host("ws7"), token="dapi-emulator-admin")
    assert client.config.auth_type == "pat"
    assert client.config.workspace_id == emulator.workspace_id("ws7")
    assert emulator.requests("ws7")[("GET", "/.well-known/databricks-config")] == 2


def test_scim_me_names_the_caller(make_client: MakeClient) -> None:
    admin = make_client().current_user.me()
    assert admin.user_name == "admin@pkgrepo.local" and admin.active
    assert {g.display for g in admin.groups or []} == {"admins", "users"}
    bot = make_client(token="dapi-ci-bot").current_user.me()
    assert (bot.user_name, bot.display_name) == ("0a1b2c3d-ci-bot", "ci-bot")
    assert {g.display for g in bot.groups or []} == {"deployers", "users"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "MALFORMED_REQUEST"),
        (b"[1, 2]", "MALFORMED_REQUEST"),
        (b'{"scope": 42}', "MALFORMED_REQUEST"),
        (b'{"scope": ["a"]}', "MALFORMED_REQUEST"),
        (b"{}", "INVALID_PARAMETER_VALUE"),
        (b"\xff\xfe", "MALFORMED_REQUEST"),
    ],
)
def test_malformed_bodies_get_the_error_json(
    emulator: EmulatorHandle, body: bytes, code: str
) -> None:
    status, answer, _ = call(emulator, "POST", "/ws1/api/2.0/secrets/scopes/create", body=body)
    assert status == 400
    assert answer["error_code"] == code and answer["message"]
    assert emulator.backend("ws1").list_scopes(emulator.admin) == []


def test_wrong_type_in_put_never_echoes_the_value(emulator: EmulatorHandle) -> None:
    call(emulator, "POST", "/ws1/api/2.0/secrets/scopes/create", body=b'{"scope": "s"}')
    status, answer, _ = call(
        emulator,
        "POST",
        "/ws1/api/2.0/secrets/put",
        body=b'{"scope": "s", "key": "k", "string_value": 31337}',
    )
    assert status == 400 and answer["error_code"] == "MALFORMED_REQUEST"
    assert "31337" not in answer["message"]


def test_unknown_paths_and_wrong_methods_are_endpoint_not_found(emulator: EmulatorHandle) -> None:
    status, answer, _ = call(emulator, "GET", "/ws1/api/2.0/secrets/nope")
    assert (status, answer) == (
        404,
        {"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found for 'GET /secrets/nope'"},
    )
    status, answer, _ = call(emulator, "GET", "/ws1/api/2.0/secrets/put")
    assert (status, answer["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
    status, answer, _ = call(emulator, "DELETE", "/ws1/api/2.0/secrets/scopes/list")
    assert (status, answer["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
    status, answer, _ = call(emulator, "BREW", "/ws1/api/2.0/secrets/scopes/list")
    assert (status, answer["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
    status, answer, _ = call(emulator, "GET", "/bad%20name/api/2.0/secrets/scopes/list")
    assert (status, answer["error_code"]) == (404, "ENDPOINT_NOT_FOUND")


def test_oversized_body_is_refused_and_the_connection_stays_usable(
    emulator: EmulatorHandle,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    big = json.dumps({"scope": "s", "key": "k", "string_value": "x" * (1024 * 1024)}).encode()
    status, answer, _ = call(
        emulator, "POST", "/ws1/api/2.0/secrets/put", body=big, connection=conn
    )
    assert status == 400 and answer["error_code"] == "BAD_REQUEST"
    assert "exceeds the limit" in answer["message"]
    status, _, _ = call(emulator, "GET", "/ws1/api/2.0/secrets/scopes/list", connection=conn)
    assert status == 200


def test_keep_alive_serves_many_requests_on_one_connection(emulator: EmulatorHandle) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    for _ in range(5):
        status, _, response = call(
            emulator, "GET", "/ws1/api/2.0/secrets/scopes/list", connection=conn
        )
        assert status == 200 and not response.will_close
    assert conn.sock is not None


def test_garbage_request_line_gets_json_not_a_dropped_connection(emulator: EmulatorHandle) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        reply = sock.recv(4096)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error_code"] == "BAD_REQUEST"


def test_databricks_cli_legacy_client(emulator: EmulatorHandle) -> None:
    from databricks_cli.sdk.api_client import ApiClient
    from databricks_cli.secrets.api import SecretApi

    api_client = ApiClient(host=emulator.host("legacy"), token="dapi-emulator-admin")
    # databricks-cli 0.18 keeps only scheme and hostname of the host (port and path are
    # dropped: "%s://%s/api/" % (scheme, hostname)), so point it at the workspace explicitly.
    api_client.url = emulator.host("legacy") + "/api/"
    secrets = SecretApi(api_client)
    secrets.create_scope("legacy-scope", None, None, None)
    secrets.put_secret("legacy-scope", "pip-index-url", "https://idx/simple", None)
    secrets.put_acl("legacy-scope", "users", "READ")
    assert secrets.list_scopes() == {
        "scopes": [{"name": "legacy-scope", "backend_type": "DATABRICKS"}]
    }
    assert [s["key"] for s in secrets.list_secrets("legacy-scope")["secrets"]] == ["pip-index-url"]
    assert secrets.list_acls("legacy-scope")["items"] == [
        {"principal": "admin@pkgrepo.local", "permission": "MANAGE"},
        {"principal": "users", "permission": "READ"},
    ]
    assert secrets.get_acl("legacy-scope", "users") == {"principal": "users", "permission": "READ"}
    secrets.delete_acl("legacy-scope", "users")
    secrets.delete_secret("legacy-scope", "pip-index-url")
    secrets.delete_scope("legacy-scope")
    assert secrets.list_scopes() == {}


def test_unauthenticated_maps_to_the_sdk_class(emulator: EmulatorHandle) -> None:
    import requests

    answer = requests.get(emulator.host("ws1") + "/api/2.0/secrets/scopes/list", timeout=5)
    assert answer.status_code == 401
    from databricks.sdk.errors.parser import _Parser

    error = _Parser().get_api_error(answer)
    assert isinstance(error, Unauthenticated)


def test_request_listeners_see_each_request_before_its_answer(
    emulator: EmulatorHandle, make_client: MakeClient
) -> None:
    """The request-listener hook: method, path, status, caller and scope of every request,
    in the order served; a write is marked as carried out only when it took effect; a
    listener that raises never costs the client its answer; a removed one hears nothing."""
    seen: list[RequestSeen] = []
    scopes_then: list[list[str]] = []

    def listener(event: RequestSeen) -> None:
        if not event.path.startswith("/api/"):
            return  # the SDK's host-metadata probe
        seen.append(event)
        # runs before the answer goes out, after the change: the state already shows it
        scopes_then.append(
            [s.name for s in emulator.backend(event.workspace).list_scopes(emulator.admin)]
        )

    def broken(event: RequestSeen) -> None:
        raise RuntimeError("a listener bug")

    emulator.add_request_listener(broken)
    emulator.add_request_listener(listener)
    client = make_client("ws1")
    client.secrets.create_scope("team")
    with pytest.raises(ResourceAlreadyExists):
        client.secrets.create_scope("team")
    status, _, _ = call(emulator, "GET", "/ws1/api/2.0/secrets/list?scope=team", headers={})
    assert status == 401
    emulator.remove_request_listener(listener)
    client.secrets.delete_scope("team")

    assert [(e.workspace, e.method, e.path, e.status) for e in seen] == [
        ("ws1", "POST", "/api/2.0/secrets/scopes/create", 200),
        ("ws1", "POST", "/api/2.0/secrets/scopes/create", 400),
        ("ws1", "GET", "/api/2.0/secrets/list", 401),
    ]
    created, refused, anonymous = seen
    assert created.is_write and created.scope == "team" and scopes_then[0] == ["team"]
    assert created.caller is not None and created.caller.name == emulator.admin.name
    assert not refused.applied and not refused.is_write
    assert anonymous.caller is None and not anonymous.applied
