"""The thin HTTP-facing layer: parse a request's fields, call the backend, shape the JSON.

``ROUTES`` is the routing table, (method, path) -> ``Route``. Handlers see a parsed
``Request`` and return a JSON-able dict (or a ``Response`` for raw bodies); any refusal is an
``ApiError`` raised by the helpers here or by the backends. Nothing here knows about sockets.
Response shapes follow the Secrets and Workspace API references; like the service, an empty
list is left out of a response (``{}`` rather than ``{"scopes": []}``).
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from reconciler.emulator import errors, scim
from reconciler.emulator.account import Account, OAuthError, oidc_document
from reconciler.emulator.backend import Permission
from reconciler.emulator.identity import Directory, Principal
from reconciler.emulator.workspaces import Workspace

MAX_BODY_BYTES = 1024 * 1024
"""Bodies above this are refused with 400 BAD_REQUEST (a 128 KB secret fits with room)."""
MAX_IMPORT_BODY_BYTES = 16 * 1024 * 1024
"""workspace/import carries up to 10 MB of content, base64-encoded."""


@dataclass
class Request:
    method: str
    path: str  # e.g. /api/2.0/secrets/list, without the workspace prefix or the query
    query: Mapping[str, str]
    body: bytes
    content_type: str
    base_url: str  # the host a client would configure for this workspace
    workspace: Workspace
    principal: Principal | None = None
    authorization: str = field(default="", repr=False)
    account: Account | None = None
    directory: Directory | None = None
    _fields: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def caller(self) -> Principal:
        assert self.principal is not None, "authenticated routes always have a principal"
        return self.principal

    def fields(self) -> dict[str, Any]:
        """Query parameters for GET; the JSON (or multipart form) body otherwise."""
        if self._fields is None:
            self._fields = dict(self.query) if self.method == "GET" else _parse_body(self)
        return self._fields


@dataclass(frozen=True)
class Response:
    body: bytes
    content_type: str = "application/json"
    status: int = 200


Handler = Callable[[Request], "dict[str, Any] | Response"]


@dataclass(frozen=True)
class Route:
    handler: Handler
    mutating: bool = False
    authenticated: bool = True
    max_body: int = MAX_BODY_BYTES
    faulted: bool = False
    """Apply the workspace's faults although the route takes no bearer token."""


# -- field helpers ------------------------------------------------------------------------


def text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise errors.invalid(f"Missing required field: {name}")
    return _string(name, value)


def optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return None if value is None else _string(name, value)


def flag(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise errors.malformed(f"Invalid value for field '{name}': expected a boolean.")


def _string(name: str, value: object) -> str:
    if not isinstance(value, str):
        # The service rejects a JSON value of the wrong type as a malformed request.
        raise errors.malformed(
            f"Invalid value for field '{name}': expected a string, got {type(value).__name__}."
        )
    return value


def _parse_body(request: Request) -> dict[str, Any]:
    if request.content_type.startswith("multipart/form-data"):
        return _parse_multipart(request.content_type, request.body)
    if not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        # put: "Throws MALFORMED_REQUEST if request is incorrectly formatted". A body nested
        # deeper than the parser's recursion limit is malformed too, not a server error.
        reason = exc.__class__.__name__
        raise errors.malformed(f"Could not parse request object: {reason}") from None
    if not isinstance(data, dict):
        raise errors.malformed("Could not parse request object: expected a JSON object.")
    return data


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """The form ``WorkspaceClient.workspace.upload`` sends (files={"content": ...})."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise errors.malformed("Could not parse the multipart form body.")
    found: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        found[name] = payload if name == "content" else payload.decode("utf-8", "replace")
    return found


def _b64decode(name: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid(f"Field '{name}' is not valid base64.") from None


def _nonempty(key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: items} if items else {}


# -- secrets ------------------------------------------------------------------------------


def create_scope(request: Request) -> dict[str, Any]:
    fields = request.fields()
    request.workspace.secrets.create_scope(
        request.caller,
        text(fields, "scope"),
        initial_manage_principal=optional_text(fields, "initial_manage_principal"),
        backend_type=optional_text(fields, "scope_backend_type"),
    )
    return {}


def list_scopes(request: Request) -> dict[str, Any]:
    scopes = request.workspace.secrets.list_scopes(request.caller)
    items: list[dict[str, Any]] = []
    for s in scopes:
        item: dict[str, Any] = {"name": s.name, "backend_type": s.backend_type}
        if s.keyvault_metadata is not None:
            # secret-scope object: "keyvault_metadata: The metadata for the secret scope if
            # the type is AZURE_KEYVAULT" (resource_id, dns_name).
            item["keyvault_metadata"] = dict(s.keyvault_metadata)
        items.append(item)
    return _nonempty("scopes", items)


def delete_scope(request: Request) -> dict[str, Any]:
    request.workspace.secrets.delete_scope(request.caller, text(request.fields(), "scope"))
    return {}


def put_secret(request: Request) -> dict[str, Any]:
    fields = request.fields()
    scope, key = text(fields, "scope"), text(fields, "key")
    string_value = optional_text(fields, "string_value")
    bytes_value = optional_text(fields, "bytes_value")
    # put: "The input fields "string_value" or "bytes_value" specify the type of the secret
    # ... Exactly one must be specified." Both at once is "conflicting" (MALFORMED_REQUEST).
    if string_value is not None and bytes_value is not None:
        raise errors.malformed("Exactly one of string_value or bytes_value may be specified.")
    if string_value is not None:
        value, is_bytes = string_value.encode("utf-8"), False
    elif bytes_value is not None:
        value, is_bytes = _b64decode("bytes_value", bytes_value), True
    else:
        raise errors.invalid("Exactly one of string_value or bytes_value must be specified.")
    request.workspace.secrets.put_secret(request.caller, scope, key, value, is_bytes=is_bytes)
    return {}


def list_secrets(request: Request) -> dict[str, Any]:
    found = request.workspace.secrets.list_secrets(request.caller, text(request.fields(), "scope"))
    return _nonempty(
        "secrets",
        [{"key": s.key, "last_updated_timestamp": s.last_updated_timestamp} for s in found],
    )


def get_secret(request: Request) -> dict[str, Any]:
    fields = request.fields()
    key = text(fields, "key")
    value = request.workspace.secrets.get_secret(
        request.caller,
        text(fields, "scope"),
        key,
        in_notebook=request.workspace.notebook_context,
    )
    # get: { "key": "my-string-key", "value": <bytes of the secret value> } -- base64 in JSON.
    return {"key": key, "value": base64.b64encode(value).decode("ascii")}


def delete_secret(request: Request) -> dict[str, Any]:
    fields = request.fields()
    request.workspace.secrets.delete_secret(
        request.caller, text(fields, "scope"), text(fields, "key")
    )
    return {}


def put_acl(request: Request) -> dict[str, Any]:
    fields = request.fields()
    workspace = request.workspace
    workspace.secrets.put_acl(
        request.caller,
        text(fields, "scope"),
        text(fields, "principal"),
        Permission.parse(text(fields, "permission")),
        visible_after=workspace.faults.late_acl_seconds(),
    )
    return {}


def list_acls(request: Request) -> dict[str, Any]:
    acls = request.workspace.secrets.list_acls(request.caller, text(request.fields(), "scope"))
    # acls/list: { "acls": [{ "principal": ..., "permission": ... }] } in the docstring, but
    # the response object (ListAclsResponse) and the service use "items".
    return _nonempty("items", [{"principal": p, "permission": perm.name} for p, perm in acls])


def get_acl(request: Request) -> dict[str, Any]:
    fields = request.fields()
    principal = text(fields, "principal")
    permission = request.workspace.secrets.get_acl(request.caller, text(fields, "scope"), principal)
    return {"principal": principal, "permission": permission.name}


def delete_acl(request: Request) -> dict[str, Any]:
    fields = request.fields()
    request.workspace.secrets.delete_acl(
        request.caller, text(fields, "scope"), text(fields, "principal")
    )
    return {}


# -- workspace files ------------------------------------------------------------------------


def import_file(request: Request) -> dict[str, Any]:
    fields = request.fields()
    raw = fields.get("content", b"")
    content = raw if isinstance(raw, bytes) else _b64decode("content", _string("content", raw))
    request.workspace.files.import_file(
        request.caller,
        text(fields, "path"),
        content,
        format=optional_text(fields, "format") or "SOURCE",
        language=optional_text(fields, "language"),
        overwrite=flag(fields, "overwrite"),
    )
    return {}


def export_file(request: Request) -> dict[str, Any] | Response:
    fields = request.fields()
    path = text(fields, "path")
    content = request.workspace.files.export_file(
        request.caller, path, format=optional_text(fields, "format") or "SOURCE"
    )
    if flag(fields, "direct_download"):
        return Response(content, content_type="application/octet-stream")
    answer: dict[str, Any] = {"content": base64.b64encode(content).decode("ascii")}
    name = path.rsplit("/", 1)[-1]
    if "." in name:
        answer["file_type"] = name.rsplit(".", 1)[-1]
    return answer


def get_status(request: Request) -> dict[str, Any]:
    return request.workspace.files.get_status(request.caller, text(request.fields(), "path"))


def mkdirs(request: Request) -> dict[str, Any]:
    request.workspace.files.mkdirs(request.caller, text(request.fields(), "path"))
    return {}


def delete_path(request: Request) -> dict[str, Any]:
    fields = request.fields()
    request.workspace.files.delete(
        request.caller, text(fields, "path"), recursive=flag(fields, "recursive")
    )
    return {}


# -- identity and discovery -----------------------------------------------------------------


def scim_me(request: Request) -> dict[str, Any]:
    """SCIM ``Me``: who the token belongs to (``WorkspaceClient().current_user.me()``)."""
    return scim.me(request.caller)


def scim_users(request: Request) -> dict[str, Any]:
    """SCIM ``Users`` list (``w.users.list``): see ``scim``."""
    users = [p for p in _members(request) if p.kind == "user"]
    return scim.list_principals(request.caller, users, request.query, name_attribute="userName")


def scim_service_principals(request: Request) -> dict[str, Any]:
    """SCIM ``ServicePrincipals`` list (``w.service_principals.list``): see ``scim``."""
    found = [p for p in _members(request) if p.kind == "service_principal"]
    return scim.list_principals(
        request.caller, found, request.query, name_attribute="applicationId"
    )


def scim_groups(request: Request) -> dict[str, Any]:
    """SCIM ``Groups`` list (``w.groups.list``): see ``scim``."""
    groups = request.directory.groups() if request.directory is not None else frozenset()
    return scim.list_groups(groups, request.query)


def _members(request: Request) -> list[Principal]:
    """Everyone in this workspace: the configured principals (assigned to every workspace)
    and the account's service principals assigned to it, with their rights here."""
    members: dict[str, Principal] = {}
    if request.directory is not None:
        members.update((p.name, p) for p in request.directory.principals)
    if request.account is not None:
        members.update((p.name, p) for p in request.account.members(request.workspace.name))
    return list(members.values())


def host_metadata(request: Request) -> dict[str, Any]:
    """``/.well-known/databricks-config``: the SDK's discovery probe (``HostMetadata``).

    A workspace answers with its OIDC root and numeric id; no ``account_id`` and no ``cloud``,
    so the SDK keeps plain PAT authentication and treats the host as a workspace. With an
    account configured, the root URL is the account host: its OIDC root carries the
    ``{account_id}`` placeholder the SDK fills in (``Config._resolve_host_metadata``) and
    there is no workspace id, which tells the SDK it is an account host."""
    if request.account is not None and request.workspace.name == "default":
        return {"oidc_endpoint": f"{request.base_url}/oidc/accounts/{{account_id}}"}
    return {
        "oidc_endpoint": f"{request.base_url}/oidc",
        "workspace_id": request.workspace.workspace_id,
    }


# -- OAuth (the workspace side; the account side is served by the server) -----------------


def workspace_token(request: Request) -> Response:
    """``POST /oidc/v1/token``: a client-credentials grant for this workspace
    (``reconciler.emulator.account`` says where each rule comes from)."""
    if request.account is None:
        error = OAuthError(401, "invalid_client", "Client authentication failed")
        return Response(error.body(), status=error.status)
    try:
        answer = request.account.issue(
            request.authorization, request.body, f"workspace:{request.workspace.name}"
        )
    except OAuthError as error:
        return Response(error.body(), status=error.status)
    return Response(json.dumps(answer).encode())


def workspace_oidc(request: Request) -> dict[str, Any]:
    """``/oidc/.well-known/oauth-authorization-server`` of the workspace."""
    return oidc_document(f"{request.base_url}/oidc")


SECRETS = "/api/2.0/secrets"
WORKSPACE = "/api/2.0/workspace"

ROUTES: Mapping[tuple[str, str], Route] = MappingProxyType(
    {
        ("POST", f"{SECRETS}/scopes/create"): Route(create_scope, mutating=True),
        ("GET", f"{SECRETS}/scopes/list"): Route(list_scopes),
        ("POST", f"{SECRETS}/scopes/delete"): Route(delete_scope, mutating=True),
        ("POST", f"{SECRETS}/put"): Route(put_secret, mutating=True),
        ("GET", f"{SECRETS}/list"): Route(list_secrets),
        ("GET", f"{SECRETS}/get"): Route(get_secret),
        ("POST", f"{SECRETS}/delete"): Route(delete_secret, mutating=True),
        ("POST", f"{SECRETS}/acls/put"): Route(put_acl, mutating=True),
        ("GET", f"{SECRETS}/acls/list"): Route(list_acls),
        ("GET", f"{SECRETS}/acls/get"): Route(get_acl),
        ("POST", f"{SECRETS}/acls/delete"): Route(delete_acl, mutating=True),
        ("POST", f"{WORKSPACE}/import"): Route(
            import_file, mutating=True, max_body=MAX_IMPORT_BODY_BYTES
        ),
        ("GET", f"{WORKSPACE}/export"): Route(export_file),
        ("GET", f"{WORKSPACE}/get-status"): Route(get_status),
        ("POST", f"{WORKSPACE}/mkdirs"): Route(mkdirs, mutating=True),
        ("POST", f"{WORKSPACE}/delete"): Route(delete_path, mutating=True),
        ("GET", "/api/2.0/preview/scim/v2/Me"): Route(scim_me),
        ("GET", "/api/2.0/preview/scim/v2/Users"): Route(scim_users),
        ("GET", "/api/2.0/preview/scim/v2/ServicePrincipals"): Route(scim_service_principals),
        ("GET", "/api/2.0/preview/scim/v2/Groups"): Route(scim_groups),
        ("GET", "/.well-known/databricks-config"): Route(host_metadata, authenticated=False),
        ("POST", "/oidc/v1/token"): Route(workspace_token, authenticated=False, faulted=True),
        ("GET", "/oidc/.well-known/oauth-authorization-server"): Route(
            workspace_oidc, authenticated=False
        ),
    }
)

KNOWN_PATHS = frozenset(path for _method, path in ROUTES)


def max_body(method: str, path: str) -> int:
    route = ROUTES.get((method, path))
    return route.max_body if route is not None else MAX_BODY_BYTES
