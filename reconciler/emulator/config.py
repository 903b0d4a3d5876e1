"""Emulator configuration: principals and tokens, extra groups, per-workspace settings.

In code::

    EmulatorConfig(
        principals=(Principal("alice@example.com", groups=frozenset({"data-eng"}),
                              tokens=("dapi-alice",)),),
        workspaces={"prod": WorkspaceSettings(notebook_context=True,
                                              faults=Faults(rate_limit_rps=5))},
    )

or from a YAML/JSON file (``load_config``), whose format ``EXAMPLE`` shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from reconciler.core.errors import UserError
from reconciler.emulator.account import AccountSettings, settings_from_dict
from reconciler.emulator.faults import Faults
from reconciler.emulator.identity import Directory, Principal
from reconciler.emulator.modes import MODE_FIELDS, ServiceModes, modes_from_dict

EXAMPLE = """\
# pkgrepo emulator configuration (YAML or JSON)
principals:
  - name: alice@example.com          # a user's userName
    groups: [data-eng]               # 'users' is implied; add 'admins' for a workspace admin
    tokens: [dapi-alice]
  - name: 6d3c6a4e-ci-bot            # a service principal's application id
    type: service_principal
    display_name: ci-bot
    groups: [admins]
    tokens: [dapi-ci-bot]
groups: [data-scientists]            # groups that exist without members (valid in ACLs)
default_tokens: true                 # keep dapi-emulator-admin and dapi-emulator-user
validate_principals: true            # acls/put refuses principals nobody configured
workspace_defaults:                  # settings for every workspace not listed below
  notebook_context: false
workspaces:
  prod-eu:
    workspace_id: "1234567890123456"
    notebook_context: false          # true: secrets/get answers as if called in a notebook
    faults:
      latency_ms: 20                 # or latency_range_ms: [5, 50]
      rate_limit_rps: 10             # 429 REQUEST_LIMIT_EXCEEDED + Retry-After past this
      error_rate: 0.01               # share of 500/503 answers
      drop_rate: 0.0                 # share of connections closed without an answer
      late_acl_seconds: 2            # acls/put shows in acls/list this much later
      one_shot:
        - {endpoint: secrets/acls/put, nth: 2, status: 503}
      seed: 7
    # How the service behaves (defaults are the real service's; FIDELITY.md has sources):
    tier: premium                    # standard: no secret ACLs, scopes only for "users"
    rest_get: manage_only            # secrets/get over REST: manage_only | refused | allowed
    timestamps: seconds              # last_updated_timestamp granularity: seconds | millis
    acl_writes: lossy                # reliable | lossy: some ACL writes are acknowledged, lost
    acl_drop_rate: 0.25
    acl_lists: stale                 # fresh | stale: acls/list lags each ACL write
    acl_stale_seconds: 2
  azure-prod:
    backend: azure_keyvault          # the package scope exists, backed by Azure Key Vault
    keyvault:
      dns_name: https://corp-kv.vault.azure.net/
      secrets: {pip-index-url: "https://pypi.corp.example/simple", db-password: "x"}
account:                             # an emulated Databricks account (account host: the root URL)
  account_id: 0d1e7a4b-0000-4000-8000-000000000001
  token_ttl_seconds: 3600            # OAuth access tokens expire after this
  service_principals:
    - application_id: 9f0c2d4e-fleet-deployer    # the client id
      secrets: [emulator-fleet-secret]           # OAuth secrets (client_secret)
      account_admin: true            # may list the account's workspaces
      admin_in: ["*"]                # workspaces (globs) where it is assigned ADMIN
      user_in: []                    # ... and where it is assigned USER
  workspaces:                        # what GET /api/2.0/accounts/<id>/workspaces lists
    - {name: prod-eu, region: eu-west-1, tags: {env: prod}}     # served at /prod-eu
    - {name: new-one, status: PROVISIONING}
  generate: {count: 0, prefix: ws-}  # add COUNT generated RUNNING workspaces
"""


class EmulatorConfigError(UserError):
    """The emulator configuration file is invalid."""


@dataclass(frozen=True)
class WorkspaceSettings:
    """Settings of one workspace. ``workspace_id`` defaults to a stable number derived from
    the workspace name."""

    notebook_context: bool = False
    faults: Faults = field(default_factory=Faults)
    workspace_id: str | None = None
    modes: ServiceModes = field(default_factory=ServiceModes)


@dataclass(frozen=True)
class EmulatorConfig:
    principals: tuple[Principal, ...] = ()
    groups: tuple[str, ...] = ()
    workspaces: Mapping[str, WorkspaceSettings] = field(default_factory=dict)
    workspace_defaults: WorkspaceSettings = field(default_factory=WorkspaceSettings)
    default_tokens: bool = True
    validate_principals: bool = True
    account: AccountSettings | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "principals", tuple(self.principals))
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "workspaces", MappingProxyType(dict(self.workspaces)))

    def settings(self, workspace: str) -> WorkspaceSettings:
        return self.workspaces.get(workspace, self.workspace_defaults)

    def directory(self) -> Directory:
        service_principals = tuple(
            sp.principal(admin=False)
            for sp in (self.account.service_principals if self.account else ())
        )
        return Directory(
            self.principals + service_principals, self.groups, default_tokens=self.default_tokens
        )


def load_config(path: Path) -> EmulatorConfig:
    """Read a YAML or JSON configuration file (format: ``EXAMPLE``)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EmulatorConfigError(f"cannot read emulator config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise EmulatorConfigError(f"{path}: not valid YAML/JSON: {exc}") from exc
    try:
        return config_from_dict(data or {})
    except (ValueError, TypeError, KeyError) as exc:
        raise EmulatorConfigError(f"{path}: {exc}") from exc


def config_from_dict(data: Mapping[str, Any]) -> EmulatorConfig:
    """Build from parsed file data; raises ``ValueError`` naming what is wrong."""
    _only(
        data,
        "configuration",
        {
            "principals",
            "groups",
            "workspaces",
            "workspace_defaults",
            "default_tokens",
            "validate_principals",
            "account",
        },
    )
    principals = tuple(_principal(item) for item in data.get("principals") or ())
    workspaces = {
        str(name): _settings(f"workspaces.{name}", value or {})
        for name, value in (data.get("workspaces") or {}).items()
    }
    config = EmulatorConfig(
        principals=principals,
        groups=tuple(str(g) for g in data.get("groups") or ()),
        workspaces=workspaces,
        workspace_defaults=_settings("workspace_defaults", data.get("workspace_defaults") or {}),
        default_tokens=bool(data.get("default_tokens", True)),
        validate_principals=bool(data.get("validate_principals", True)),
        account=_account(data.get("account")),
    )
    config.directory()  # duplicate tokens are reported now, not on the first request
    return config


def _account(item: Any) -> AccountSettings | None:
    if item is None:
        return None
    if not isinstance(item, Mapping):
        raise ValueError("account must be a mapping")
    return settings_from_dict(item)


def _principal(item: Mapping[str, Any]) -> Principal:
    if not isinstance(item, Mapping):
        raise ValueError("each entry of 'principals' must be a mapping")
    _only(item, "principal", {"name", "groups", "tokens", "type", "display_name"})
    if not item.get("name"):
        raise ValueError("every principal needs a 'name'")
    kind = item.get("type", "user")
    if kind not in ("user", "service_principal"):
        raise ValueError(f"principal {item['name']}: type must be user or service_principal")
    return Principal(
        str(item["name"]),
        groups=frozenset(str(g) for g in item.get("groups") or ()),
        tokens=tuple(str(t) for t in item.get("tokens") or ()),
        kind=kind,
        display_name=str(item.get("display_name") or ""),
    )


def _settings(where: str, item: Mapping[str, Any]) -> WorkspaceSettings:
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be a mapping")
    _only(item, where, {"notebook_context", "faults", "workspace_id"} | MODE_FIELDS)
    try:
        faults = Faults.from_dict(item.get("faults") or {})
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}.faults: {exc}") from exc
    try:
        modes = modes_from_dict(item, seed=faults.seed or 0)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from exc
    workspace_id = item.get("workspace_id")
    return WorkspaceSettings(
        notebook_context=bool(item.get("notebook_context", False)),
        faults=faults,
        workspace_id=None if workspace_id is None else str(workspace_id),
        modes=modes,
    )


def _only(item: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s) in {where}: {', '.join(map(str, unknown))}")
