"""The emulated Databricks account: its workspaces, its service principals and their OAuth
tokens, and which principal is assigned to which workspace (as ADMIN or USER).

What it copies, and from where:

- ``GET /api/2.0/accounts/{account_id}/workspaces`` answers a bare JSON **array** of
  workspace objects (databricks-sdk-py ``service/provisioning.py``, ``WorkspacesAPI.list``:
  ``[Workspace.from_dict(v) for v in res]``; no pagination). Fields used: ``workspace_id``
  (an integer), ``workspace_name``, ``deployment_name``, ``aws_region`` (``location`` on GCP),
  ``workspace_status`` (``WorkspaceStatus``: NOT_PROVISIONED, PROVISIONING, RUNNING, FAILED,
  BANNED, CANCELLING), ``workspace_status_message``, ``custom_tags``, ``cloud``,
  ``creation_time`` (epoch ms), ``account_id``, ``pricing_tier``.
- Token endpoints: ``POST {workspace}/oidc/v1/token`` (``OIDC_TOKEN_PATH`` in the SDK's
  ``oauth.py``) and ``POST {account host}/oidc/accounts/{account_id}/v1/token`` (the account
  prefix of ``get_account_endpoints`` in ``oauth.py``), a form-encoded client-credentials grant
  (``grant_type=client_credentials``, ``scope=all-apis``) with the client id and secret in an
  HTTP Basic header (``oauth_service_principal`` sets ``use_header=True``). The answer is
  ``{"access_token", "token_type": "Bearer", "expires_in", "scope"}`` (databricks/cli
  ``libs/testserver/fake_oidc.go``; tokens live one hour: Databricks OAuth M2M docs, "Each
  access token is valid for one hour"). The SDK reads ``expires_in`` and refreshes itself.
- A refused client: 401 ``{"error": "invalid_client", "error_description": "Client
  authentication failed"}``, the RFC 6749 section 5.2 shape, as reported against Databricks on
  AWS for a service principal without permission (databricks/databricks-sql-nodejs#279:
  "invalid_client (Client authentication failed)"); the SDK's ``retrieve_token`` turns it into
  ``ValueError("invalid_client: Client authentication failed")``. Unconfirmed and chosen to
  be strict: a principal not assigned to a workspace gets no token for it.
- Never kinder than the service: a workspace token is good for its own workspace only, an
  account token for account APIs only (whether real workspaces accept account-level tokens
  is not relied on), an expired token is refused like an unknown one (403 "Invalid access
  token.", see ``errors.invalid_token``), and only account admins may list workspaces
  (403 PERMISSION_DENIED otherwise; message unconfirmed).
- OIDC discovery documents (``/oidc/.well-known/oauth-authorization-server``) answer
  ``authorization_endpoint`` and ``token_endpoint`` (``fake_oidc.go``), so the SDK's default
  ``oauth-m2m`` path works too.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.emulator import errors
from reconciler.emulator.identity import ADMINS, Principal, stable_id

DEFAULT_TTL_SECONDS = 3600
STATUSES = frozenset(
    {"NOT_PROVISIONED", "PROVISIONING", "RUNNING", "FAILED", "BANNED", "CANCELLING"}
)
ADMIN = "ADMIN"
USER = "USER"


@dataclass(frozen=True)
class ListedWorkspace:
    """One workspace as the account lists it. ``deployment_name`` is also the emulator's
    workspace name: ``http://127.0.0.1:PORT/<deployment_name>`` is its host."""

    name: str
    deployment_name: str
    region: str = "us-east-1"
    status: str = "RUNNING"
    tags: Mapping[str, str] = field(default_factory=dict)
    workspace_id: int | None = None
    status_message: str | None = None

    @property
    def id(self) -> int:
        return self.workspace_id or int(stable_id(f"workspace:{self.deployment_name}"))

    def to_json(self, account_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "account_id": account_id,
            "aws_region": self.region,
            "cloud": "aws",
            "creation_time": 1700000000000,
            "deployment_name": self.deployment_name,
            "pricing_tier": "PREMIUM",
            "workspace_id": self.id,
            "workspace_name": self.name,
            "workspace_status": self.status,
            "workspace_status_message": self.status_message
            or ("Workspace is running." if self.status == "RUNNING" else self.status.title()),
        }
        if self.tags:
            body["custom_tags"] = dict(self.tags)
        return body


@dataclass(frozen=True)
class ServicePrincipal:
    """An account-level service principal: ``application_id`` is its client id (and the name
    ACLs and SCIM use for it), ``secrets`` its OAuth secrets. ``admin_in``/``user_in`` are
    globs over workspace deployment names: its workspace assignments."""

    application_id: str
    secrets: tuple[str, ...] = ()
    display_name: str = ""
    account_admin: bool = False
    admin_in: tuple[str, ...] = ()
    user_in: tuple[str, ...] = ()

    def __repr__(self) -> str:  # secrets are credentials: never shown
        return f"ServicePrincipal({self.application_id!r}, account_admin={self.account_admin})"

    def assignment(self, workspace: str) -> str | None:
        """ADMIN, USER or None (not assigned) in this workspace."""
        if any(fnmatch.fnmatchcase(workspace, g) for g in self.admin_in):
            return ADMIN
        if any(fnmatch.fnmatchcase(workspace, g) for g in self.user_in):
            return USER
        return None

    def principal(self, *, admin: bool) -> Principal:
        groups = frozenset({ADMINS}) if admin else frozenset()
        return Principal(
            self.application_id,
            groups=groups,
            kind="service_principal",
            display_name=self.display_name,
        )


@dataclass(frozen=True)
class AccountSettings:
    account_id: str = "00000000-0000-4000-8000-000000000000"
    workspaces: tuple[ListedWorkspace, ...] = ()
    service_principals: tuple[ServicePrincipal, ...] = ()
    token_ttl_seconds: int = DEFAULT_TTL_SECONDS


@dataclass(frozen=True)
class _Issued:
    application_id: str
    audience: str
    """``workspace:<name>`` or ``account:<id>``."""
    expires_at: float


class Account:
    """The account's state: settings plus the tokens issued so far (thread-safe)."""

    def __init__(self, settings: AccountSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._by_client = {sp.application_id: sp for sp in settings.service_principals}
        self._tokens: dict[str, _Issued] = {}
        self._lock = threading.Lock()
        self._issued_since_prune = 0
        self.tokens_issued = 0
        self.list_answer: bytes | None = None
        """Injected answer to the workspaces list (``EmulatorHandle.set_account_list_answer``)."""

    # -- tokens -------------------------------------------------------------------------

    def issue(self, authorization: str, body: bytes, audience: str) -> dict[str, Any]:
        """A client-credentials grant; raises ``OAuthError``."""
        form = urllib.parse.parse_qs(body.decode("latin-1"), keep_blank_values=True)
        grant = form.get("grant_type", [""])[0]
        if grant != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "Only client_credentials is emulated.")
        client_id, secret = _basic_credentials(authorization)
        if client_id is None:  # use_params: id and secret in the form instead
            client_id = form.get("client_id", [""])[0]
            secret = form.get("client_secret", [""])[0]
        sp = self._by_client.get(client_id or "")
        known = sp.secrets if sp is not None else ()
        if not secret or not any(
            secrets.compare_digest(secret.encode(), s.encode()) for s in known
        ):
            raise OAuthError(401, "invalid_client", "Client authentication failed")
        assert sp is not None
        if audience.startswith("workspace:"):
            if sp.assignment(audience.partition(":")[2]) is None:
                raise OAuthError(401, "invalid_client", "Client authentication failed")
        elif not sp.account_admin:
            raise OAuthError(401, "invalid_client", "Client authentication failed")
        ttl = self.settings.token_ttl_seconds
        token = "emu-oauth-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = _Issued(sp.application_id, audience, self.clock() + ttl)
            self.tokens_issued += 1
            self._issued_since_prune += 1
            if self._issued_since_prune >= 1024:
                self._prune()
        scope = form.get("scope", ["all-apis"])[0] or "all-apis"
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": scope}

    def live_tokens(self) -> tuple[str, ...]:
        """The access tokens issued that have not expired, oldest first."""
        now = self.clock()
        with self._lock:
            return tuple(t for t, issued in self._tokens.items() if issued.expires_at > now)

    def _prune(self) -> None:
        now = self.clock()
        for token in [t for t, issued in self._tokens.items() if issued.expires_at <= now]:
            del self._tokens[token]
        self._issued_since_prune = 0

    def _valid(self, token: str, audience: str) -> _Issued | None:
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None or issued.audience != audience or issued.expires_at <= self.clock():
            return None
        return issued

    def authenticate_workspace(self, token: str, workspace: str) -> Principal | None:
        """The principal a workspace token stands for in ``workspace``, with its admin
        rights there; None for anything else (unknown, expired, another audience)."""
        issued = self._valid(token, f"workspace:{workspace}")
        if issued is None:
            return None
        sp = self._by_client[issued.application_id]
        assignment = sp.assignment(workspace)
        if assignment is None:  # unassigned since the token was issued
            return None
        return sp.principal(admin=assignment == ADMIN)

    def authenticate_account(self, token: str) -> ServicePrincipal | None:
        issued = self._valid(token, f"account:{self.settings.account_id}")
        return None if issued is None else self._by_client[issued.application_id]

    def principals(self) -> tuple[Principal, ...]:
        """Every service principal, so ACLs may name them in any workspace."""
        return tuple(sp.principal(admin=False) for sp in self.settings.service_principals)

    def members(self, workspace: str) -> tuple[Principal, ...]:
        """The service principals assigned to ``workspace``, each with its admin rights there
        (an ADMIN assignment makes it a member of the workspace's ``admins``)."""
        return tuple(
            sp.principal(admin=sp.assignment(workspace) == ADMIN)
            for sp in self.settings.service_principals
            if sp.assignment(workspace) is not None
        )

    # -- the account API ------------------------------------------------------------------

    def list_workspaces(self, authorization: str, account_id: str) -> bytes:
        caller = self._account_caller(authorization)
        if account_id != self.settings.account_id or not caller.account_admin:
            raise errors.denied(
                f"Service principal {caller.application_id} is not authorized to list the "
                f"workspaces of account {account_id}."
            )
        if self.list_answer is not None:
            return self.list_answer
        items = [ws.to_json(account_id) for ws in self.settings.workspaces]
        return json.dumps(items).encode()

    def _account_caller(self, authorization: str) -> ServicePrincipal:
        scheme, _, token = authorization.partition(" ")
        if not token.strip():
            raise errors.missing_credentials()
        if scheme.lower() != "bearer":
            raise errors.missing_credentials()
        caller = self.authenticate_account(token.strip())
        if caller is None:
            raise errors.invalid_token()
        return caller


class OAuthError(Exception):
    """A refusal from a token endpoint, in the OAuth 2.0 error shape (RFC 6749, 5.2)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> bytes:
        return json.dumps({"error": self.error, "error_description": self.description}).encode()


def _basic_credentials(authorization: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise OAuthError(401, "invalid_client", "Client authentication failed") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError(401, "invalid_client", "Client authentication failed")
    return urllib.parse.unquote(client_id), urllib.parse.unquote(secret)


def oidc_document(base_url: str) -> dict[str, str]:
    """The OIDC discovery document of a workspace or the account (``base_url`` ends with
    ``/oidc`` or ``/oidc/accounts/<id>``)."""
    return {
        "issuer": base_url,
        "authorization_endpoint": f"{base_url}/v1/authorize",
        "token_endpoint": f"{base_url}/v1/token",
    }


# -- configuration --------------------------------------------------------------------------


def settings_from_dict(data: Mapping[str, Any]) -> AccountSettings:
    """The ``account:`` section of an emulator configuration file (see ``config.EXAMPLE``);
    raises ``ValueError`` naming what is wrong."""
    _only(
        data,
        "account",
        {"account_id", "token_ttl_seconds", "service_principals", "workspaces", "generate"},
    )
    workspaces = [_workspace(item) for item in data.get("workspaces") or ()]
    generate = data.get("generate")
    if generate is not None:
        workspaces += generated_workspaces(**_generate_args(generate))
    names = [ws.deployment_name for ws in workspaces]
    if len(set(names)) != len(names):
        raise ValueError("account.workspaces: deployment names must be unique")
    ttl = int(data.get("token_ttl_seconds", DEFAULT_TTL_SECONDS))
    if ttl < 1:
        raise ValueError("account.token_ttl_seconds must be at least 1")
    return AccountSettings(
        account_id=str(data.get("account_id") or AccountSettings.account_id),
        workspaces=tuple(workspaces),
        service_principals=tuple(
            _service_principal(item) for item in data.get("service_principals") or ()
        ),
        token_ttl_seconds=ttl,
    )


def generated_workspaces(
    count: int,
    prefix: str = "ws-",
    regions: tuple[str, ...] = ("us-east-1", "eu-west-1"),
    tags: Mapping[str, str] | None = None,
) -> list[ListedWorkspace]:
    """``count`` RUNNING workspaces ``<prefix>00000``..., regions taken in turn: a large
    account for benchmarks."""
    width = max(4, len(str(count - 1)))
    return [
        ListedWorkspace(
            name=f"{prefix}{i:0{width}d}",
            deployment_name=f"{prefix}{i:0{width}d}",
            region=regions[i % len(regions)],
            tags=dict(tags or {}),
        )
        for i in range(count)
    ]


def _generate_args(item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ValueError("account.generate must be a mapping")
    _only(item, "account.generate", {"count", "prefix", "regions", "tags"})
    args: dict[str, Any] = {"count": int(item["count"])}
    if "prefix" in item:
        args["prefix"] = str(item["prefix"])
    if "regions" in item:
        args["regions"] = tuple(str(r) for r in item["regions"])
    if "tags" in item:
        args["tags"] = {str(k): str(v) for k, v in (item["tags"] or {}).items()}
    if not 0 <= args["count"] <= 100_000:
        raise ValueError("account.generate.count must be between 0 and 100000")
    return args


def _workspace(item: Any) -> ListedWorkspace:
    if not isinstance(item, Mapping):
        raise ValueError("each entry of account.workspaces must be a mapping")
    _only(
        item,
        "account workspace",
        {"name", "deployment_name", "region", "status", "tags", "workspace_id", "status_message"},
    )
    name = str(item.get("name") or "")
    if not name:
        raise ValueError("every account workspace needs a 'name'")
    status = str(item.get("status", "RUNNING"))
    if status not in STATUSES:
        raise ValueError(f"account workspace {name}: status must be one of {sorted(STATUSES)}")
    workspace_id = item.get("workspace_id")
    return ListedWorkspace(
        name=name,
        deployment_name=str(item.get("deployment_name") or name),
        region=str(item.get("region", "us-east-1")),
        status=status,
        tags={str(k): str(v) for k, v in (item.get("tags") or {}).items()},
        workspace_id=None if workspace_id is None else int(workspace_id),
        status_message=item.get("status_message"),
    )


def _service_principal(item: Any) -> ServicePrincipal:
    if not isinstance(item, Mapping):
        raise ValueError("each entry of account.service_principals must be a mapping")
    _only(
        item,
        "service principal",
        {"application_id", "secrets", "display_name", "account_admin", "admin_in", "user_in"},
    )
    if not item.get("application_id"):
        raise ValueError("every service principal needs an 'application_id'")
    return ServicePrincipal(
        application_id=str(item["application_id"]),
        secrets=tuple(str(s) for s in item.get("secrets") or ()),
        display_name=str(item.get("display_name") or ""),
        account_admin=bool(item.get("account_admin", False)),
        admin_in=tuple(str(g) for g in item.get("admin_in") or ()),
        user_in=tuple(str(g) for g in item.get("user_in") or ()),
    )


def _only(item: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s) in {where}: {', '.join(map(str, unknown))}")
