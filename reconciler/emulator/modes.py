"""How one emulated workspace's Secrets service behaves, where real workspaces differ.

Each mode copies a behaviour of the real service seen in a public source (FIDELITY.md has the
table). The defaults are what the service does, not the kindest case:

- ``tier``: ``premium`` (secret ACLs exist) or ``standard`` (``scopes/create`` needs
  ``initial_manage_principal: users`` and ACL calls are refused).
- ``rest_get``: who ``secrets/get`` answers over REST. ``manage_only`` (default): a principal
  holding MANAGE on the scope (or a workspace admin), as in databricks/cli's acceptance test run
  against the cloud; ``refused``: nobody, as the REST reference says ("only from DBUtils");
  ``allowed``: anyone with READ (inside a notebook or job).
- ``timestamps``: ``seconds`` (default; every real ``last_updated_timestamp`` sample is a whole
  second, so two writes within one second get the same stamp) or ``millis``.
- ``acl_writes``: ``reliable`` or ``lossy`` (each ``acls/put``/``acls/delete`` is acknowledged
  and, with probability ``acl_drop_rate``, never applied: it shows only once sent again,
  databrickslabs/ucx#627 and PR #683, terraform-provider-databricks#4195 and PR #4885).
- ``acl_lists``: ``fresh`` or ``stale`` (after each ACL write, ``acls/list`` and ``acls/get``
  answer with the grants as they were before it for ``acl_stale_seconds``; each write extends
  the window; ucx PR #683: "both the list_acls and get_acl methods seem to be very
  inconsistent").
- ``acl_renames``: principal -> the name the service lists it under (a group renamed in the
  account: ucx#627 put ``ucx_j2Yn`` and listed ``db-temp-ucx_j2Yn``).
- ``backend``: ``databricks`` or ``azure_keyvault``: the predefined scope exists from the
  start, backed by Azure Key Vault (``keyvault``: vault name, resource id and the secrets the
  vault holds); ``put`` and ``delete`` on it are refused with 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

TIERS = ("premium", "standard")
REST_GET = ("manage_only", "refused", "allowed")
TIMESTAMPS = ("seconds", "millis")
ACL_WRITES = ("reliable", "lossy")
ACL_LISTS = ("fresh", "stale")
BACKENDS = ("databricks", "azure_keyvault")

PACKAGE_SCOPE = "databricks-package-management"
"""The predefined scope of the default Python package repositories (the one an Azure
workspace may have backed by Key Vault)."""


@dataclass(frozen=True)
class KeyVault:
    """The Azure Key Vault behind a Key Vault backed scope. ``secrets`` maps a Key Vault
    secret name to its value (every secret of the vault is listed in the scope)."""

    dns_name: str = "https://pkgrepo-emulated.vault.azure.net/"
    resource_id: str = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/pkgrepo"
        "/providers/Microsoft.KeyVault/vaults/pkgrepo-emulated"
    )
    scope: str = PACKAGE_SCOPE
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "secrets", MappingProxyType(dict(self.secrets)))


@dataclass(frozen=True)
class ServiceModes:
    tier: str = "premium"
    rest_get: str = "manage_only"
    timestamps: str = "seconds"
    acl_writes: str = "reliable"
    acl_drop_rate: float = 0.25
    acl_lists: str = "fresh"
    acl_stale_seconds: float = 2.0
    backend: str = "databricks"
    keyvault: KeyVault = field(default_factory=KeyVault)
    acl_renames: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "acl_renames", MappingProxyType(dict(self.acl_renames)))
        for name, allowed in (
            ("tier", TIERS),
            ("rest_get", REST_GET),
            ("timestamps", TIMESTAMPS),
            ("acl_writes", ACL_WRITES),
            ("acl_lists", ACL_LISTS),
            ("backend", BACKENDS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        if not 0.0 <= self.acl_drop_rate < 1.0:
            raise ValueError("acl_drop_rate must be at least 0 and below 1")
        if not 0.0 <= self.acl_stale_seconds <= 3600:
            raise ValueError("acl_stale_seconds must be between 0 and 3600")

    @property
    def drop_rate(self) -> float:
        return self.acl_drop_rate if self.acl_writes == "lossy" else 0.0

    @property
    def stale_seconds(self) -> float:
        return self.acl_stale_seconds if self.acl_lists == "stale" else 0.0


MODE_FIELDS = frozenset(
    {
        "tier",
        "rest_get",
        "timestamps",
        "acl_writes",
        "acl_drop_rate",
        "acl_lists",
        "acl_stale_seconds",
        "backend",
        "keyvault",
        "acl_renames",
    }
)


def modes_from_dict(item: Mapping[str, Any], *, seed: int = 0) -> ServiceModes:
    """The modes among a workspace's settings (``MODE_FIELDS``); ``ValueError`` if invalid."""
    values: dict[str, Any] = {k: item[k] for k in MODE_FIELDS if k in item}
    for name in ("acl_drop_rate", "acl_stale_seconds"):
        if name in values:
            values[name] = float(values[name])
    for name in ("tier", "rest_get", "timestamps", "acl_writes", "acl_lists", "backend"):
        if name in values:
            values[name] = str(values[name])
    renames = values.pop("acl_renames", None) or {}
    if not isinstance(renames, Mapping):
        raise ValueError("acl_renames must map a principal to the name it is listed under")
    values["acl_renames"] = {str(k): str(v) for k, v in renames.items()}
    raw = values.pop("keyvault", None)
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise ValueError("keyvault must be a mapping")
        unknown = sorted(set(raw) - {"dns_name", "resource_id", "scope", "secrets"})
        if unknown:
            raise ValueError(f"unknown field(s) in keyvault: {', '.join(map(str, unknown))}")
        secrets = raw.get("secrets") or {}
        if not isinstance(secrets, Mapping):
            raise ValueError("keyvault.secrets must map secret names to values")
        defaults = KeyVault()
        values["keyvault"] = KeyVault(
            dns_name=str(raw.get("dns_name", defaults.dns_name)),
            resource_id=str(raw.get("resource_id", defaults.resource_id)),
            scope=str(raw.get("scope", defaults.scope)),
            secrets={str(k): str(v) for k, v in secrets.items()},
        )
    return ServiceModes(seed=seed, **values)
