"""The Secrets service of one workspace: scopes, secrets and ACLs, and the rules they obey.

Pure: no HTTP. Every method takes the calling ``Principal`` and raises ``ApiError`` the way the
service refuses. Each rule quotes the public Secrets API reference it models, e.g.
https://docs.databricks.com/api/secrets/v1/put-secret.md and list-scopes.md (the same text is
in the ``SecretsAPI`` docstrings of databricks-sdk, ``service/workspace.py``); a quote prefixed
``put:`` is from the ``secrets/put`` page, ``acls/put:`` from ``secrets/acls/put``, and so on.
Thread-safe: one lock per workspace.
"""

from __future__ import annotations

import base64
import enum
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.emulator import errors
from reconciler.emulator.identity import ADMINS, USERS, Principal
from reconciler.emulator.modes import ServiceModes

# put: "The secret key must consist of alphanumeric characters, dashes, underscores, and
# periods, and cannot exceed 128 characters."
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
# scopes/create: "The scope name must consist of alphanumeric characters, dashes, underscores,
# and periods, and may not exceed 128 characters." (names with "@" exist too, e.g. the
# per-user scopes some tools create, so "@" is accepted).
SCOPE_PATTERN = re.compile(r"[A-Za-z0-9_.@\-]{1,128}")
# put: "The maximum allowed secret value size is 128 KB."
MAX_VALUE_BYTES = 128 * 1024
# put: "The maximum number of secrets in a given scope is 1000."
MAX_SECRETS_PER_SCOPE = 1000
# scopes/create: "Throws RESOURCE_LIMIT_EXCEEDED if maximum number of scopes in the workspace
# is exceeded." (the reference gives no number; the emulator uses 1000).
MAX_SCOPES = 1000
BACKEND_TYPE = "DATABRICKS"
KEYVAULT_BACKEND = "AZURE_KEYVAULT"
# The answer of a Standard-tier workspace to scopes/create without
# initial_manage_principal "users" (gbrueckl/Databricks.API.PowerShell PR #24,
# MicrosoftDocs/azure-docs#92584, MicrosoftDocs/azure-devops-docs PR #9089).
STANDARD_TIER_MESSAGE = (
    "Premium Tier is disabled in this workspace. Secret scopes can only be created with "
    'initial_manage_principal "users".'
)


class Permission(enum.IntEnum):
    """acls/put: "MANAGE - Allowed to change ACLs, and read and write to this secret scope.
    WRITE - Allowed to read and write to this secret scope. READ - Allowed to read this secret
    scope and list what secrets are available." Ordered, so the strongest one wins."""

    READ = 1
    WRITE = 2
    MANAGE = 3

    @classmethod
    def parse(cls, text: object) -> Permission:
        if isinstance(text, str) and text in cls.__members__:
            return cls[text]
        # acls/put: "Throws INVALID_PARAMETER_VALUE if the permission or principal is invalid."
        raise errors.invalid(f"Invalid permission {text!r}: use READ, WRITE or MANAGE.")


@dataclass
class Secret:
    value: bytes = field(repr=False)
    is_bytes: bool
    last_updated_timestamp: int


@dataclass
class AclSlot:
    """One principal's ACL; a put can be pending until ``pending_at`` (late-ACL fault)."""

    current: Permission | None
    pending: Permission | None = None
    pending_at: float = 0.0

    def view(self, now: float) -> Permission | None:
        if self.pending is not None and now >= self.pending_at:
            self.current, self.pending = self.pending, None
        return self.current


@dataclass
class Scope:
    name: str
    backend_type: str = BACKEND_TYPE
    secrets: dict[str, Secret] = field(default_factory=dict)
    acls: dict[str, AclSlot] = field(default_factory=dict)
    keyvault_metadata: dict[str, str] | None = None
    stale_acls: dict[str, Permission] | None = None
    """What acls/list and acls/get answer until ``stale_until`` (the ``stale`` mode)."""
    stale_until: float = 0.0


@dataclass(frozen=True)
class SecretMetadata:
    key: str
    last_updated_timestamp: int


class SecretsBackend:
    """Scopes, secrets and ACLs of one workspace."""

    def __init__(
        self,
        *,
        principal_exists: Callable[[str], bool] = lambda _name: True,
        clock: Callable[[], float] = time.time,
        modes: ServiceModes | None = None,
    ) -> None:
        self._scopes: dict[str, Scope] = {}  # by lower-cased name
        self._principal_exists = principal_exists
        self._clock = clock
        self._last_timestamp = 0
        self._lock = threading.RLock()
        self.modes = modes or ServiceModes()
        self._random = random.Random(self.modes.seed)
        if self.modes.backend == "azure_keyvault":
            self._seed_keyvault_scope()

    def set_modes(self, modes: ServiceModes) -> None:
        """Change how the service behaves from now on (tests)."""
        with self._lock:
            self.modes = modes
            self._random = random.Random(modes.seed)
            if modes.backend == "azure_keyvault":
                self._seed_keyvault_scope()

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Replace the wall clock timestamps and late/stale ACLs are measured with (tests)."""
        with self._lock:
            self._clock = clock

    def _seed_keyvault_scope(self) -> None:
        """The predefined scope, backed by Azure Key Vault: created in the Azure portal with
        a Microsoft Entra ID token (a service principal's token cannot create one,
        terraform-provider-databricks#1531), listing every secret of the vault."""
        vault = self.modes.keyvault
        if vault.scope.lower() in self._scopes:
            return
        stamp = self._next_timestamp()
        self._scopes[vault.scope.lower()] = Scope(
            vault.scope,
            KEYVAULT_BACKEND,
            secrets={
                key: Secret(value.encode("utf-8"), False, stamp)
                for key, value in vault.secrets.items()
            },
            acls={ADMINS: AclSlot(Permission.MANAGE)},
            keyvault_metadata={"resource_id": vault.resource_id, "dns_name": vault.dns_name},
        )

    def keyvault_set(self, scope: str, key: str, value: str | None) -> None:
        """A change made in Azure Key Vault itself (the portal or Azure's Set Secret API):
        ``None`` deletes the secret. Tests only."""
        with self._lock:
            found = self._scope(scope)
            if value is None:
                found.secrets.pop(key, None)
            else:
                found.secrets[key] = Secret(value.encode("utf-8"), False, self._next_timestamp())

    # -- scopes -------------------------------------------------------------------------

    def create_scope(
        self,
        caller: Principal,
        scope: str,
        *,
        initial_manage_principal: str | None = None,
        backend_type: str | None = None,
    ) -> None:
        if not SCOPE_PATTERN.fullmatch(scope):
            # scopes/create: "Throws INVALID_PARAMETER_VALUE if the scope name is invalid."
            raise errors.invalid(
                f"Scope name '{scope}' is invalid: use letters, digits, '-', '_', '.' and '@',"
                " at most 128 characters."
            )
        if backend_type not in (None, BACKEND_TYPE):
            if backend_type == KEYVAULT_BACKEND:
                # Creating one with a token that is not a Microsoft Entra ID user's is refused
                # MicrosoftDocs/azure-docs#82429 and
                # #114543, terraform-provider-databricks#4304): the emulator has no such
                # tokens, so it always refuses. Use the "azure_keyvault" backend mode.
                raise errors.invalid("Scope with Azure KeyVault must have userAADToken defined!")
            raise errors.invalid(f"Invalid scope_backend_type '{backend_type}'.")
        if initial_manage_principal is not None and initial_manage_principal != USERS:
            # scopes/create: "The only supported principal for this option is the group
            # users, which contains all users in the workspace."
            # The service's answer: 400 BAD_REQUEST "Cannot specify TestGroup as
            # initial_manage_principal." (paiqo/Databricks-VSCode#197).
            raise errors.bad_request(
                f"Cannot specify {initial_manage_principal} as initial_manage_principal."
            )
        if self.modes.tier == "standard" and initial_manage_principal != USERS:
            # Below Premium there are no secret ACLs: a scope must be manageable by all users.
            raise errors.bad_request(STANDARD_TIER_MESSAGE)
        with self._lock:
            if scope.lower() in self._scopes:
                # scopes/create: "Throws RESOURCE_ALREADY_EXISTS if a scope with the given name
                # already exists." Names compare case-insensitively.
                raise errors.already_exists(f"Scope {scope} already exists!")
            if len(self._scopes) >= MAX_SCOPES:
                raise errors.limit_exceeded(f"A workspace holds at most {MAX_SCOPES} scopes.")
            # scopes/create: "If initial_manage_principal is not specified, the initial ACL
            # with MANAGE permission applied to the scope is assigned to the API request
            # issuer's user identity."
            owner = initial_manage_principal or caller.name
            self._scopes[scope.lower()] = Scope(scope, acls={owner: AclSlot(Permission.MANAGE)})

    def list_scopes(self, caller: Principal) -> list[Scope]:
        # scopes/list: "Lists all secret scopes available in the workspace." -- every scope,
        # whatever the caller's ACLs.
        del caller
        with self._lock:
            return sorted(self._scopes.values(), key=lambda s: s.name.lower())

    def delete_scope(self, caller: Principal, scope: str) -> None:
        with self._lock:
            found = self._scope(scope)
            # scopes/delete: "Throws PERMISSION_DENIED if the user does not have permission to
            # make this API call." Deleting a scope takes MANAGE.
            self._require(caller, found, Permission.MANAGE, "delete scope")
            del self._scopes[found.name.lower()]

    # -- secrets ------------------------------------------------------------------------

    def put_secret(
        self, caller: Principal, scope: str, key: str, value: bytes, *, is_bytes: bool
    ) -> int:
        """Store (or overwrite) a secret; returns its ``last_updated_timestamp``."""
        if not KEY_PATTERN.fullmatch(key):
            # put: "Throws INVALID_PARAMETER_VALUE if the request parameters are invalid."
            raise errors.invalid(
                f"Invalid secret key '{key}': use letters, digits, '-', '_' and '.',"
                " at most 128 characters."
            )
        if len(value) > MAX_VALUE_BYTES:
            # put: "The maximum allowed secret value size is 128 KB." Refused as an invalid
            # parameter ("Throws INVALID_PARAMETER_VALUE if the key name or value length is
            # invalid", databricks-sdk-r put_secret). The message gives sizes, never the value.
            raise errors.invalid(
                f"Secret value of {len(value)} bytes exceeds the limit of {MAX_VALUE_BYTES} bytes."
            )
        with self._lock:
            found = self._scope(scope)
            # put: "You must have WRITE or MANAGE permission on the secret scope."
            self._require(caller, found, Permission.WRITE, "put secret")
            self._refuse_keyvault(found, "put")
            if key not in found.secrets and len(found.secrets) >= MAX_SECRETS_PER_SCOPE:
                # put: "Throws RESOURCE_LIMIT_EXCEEDED if maximum number of secrets in scope
                # is exceeded."
                raise errors.limit_exceeded(
                    f"Scope {found.name} already holds {MAX_SECRETS_PER_SCOPE} secrets."
                )
            # put: "If a secret already exists with the same name, this command overwrites
            # the existing secret's value."
            stamp = self._next_timestamp()
            found.secrets[key] = Secret(value, is_bytes, stamp)
            return stamp

    def list_secrets(self, caller: Principal, scope: str) -> list[SecretMetadata]:
        with self._lock:
            found = self._scope(scope)
            # list: "Users need the READ permission to make this call." ... "The
            # lastUpdatedTimestamp returned is in milliseconds since epoch."
            self._require(caller, found, Permission.READ, "list secrets")
            return [
                SecretMetadata(key, secret.last_updated_timestamp)
                for key, secret in sorted(found.secrets.items())
            ]

    def get_secret(
        self, caller: Principal, scope: str, key: str, *, in_notebook: bool = False
    ) -> bytes:
        rest_get = "allowed" if in_notebook else self.modes.rest_get
        with self._lock:
            found = self._scope(scope)
            manages = caller.is_admin or self._effective(caller, found) is Permission.MANAGE
            if rest_get == "refused" or (rest_get == "manage_only" and not manages):
                # get: "Throws BAD_REQUEST if normal user calls get secret outside of a
                # notebook." ("This API can only be called from the DBUtils interface.") Yet
                # databricks/cli's acceptance test, run against the cloud, reads a value
                # back with the MANAGE holder's token: "manage_only" is that.
                raise errors.bad_request(
                    "Secret values can only be read from within a notebook or job on a"
                    " cluster (dbutils.secrets.get); this API is not available to REST"
                    " clients."
                )
            # get: "Users need the READ permission to make this call."
            self._require(caller, found, Permission.READ, "get secret")
            secret = found.secrets.get(key)
            if secret is None:
                # get: "Throws RESOURCE_DOES_NOT_EXIST if no such secret or secret scope
                # exists."
                raise errors.not_found(f"Secret {key} does not exist in scope {found.name}.")
            return secret.value

    def delete_secret(self, caller: Principal, scope: str, key: str) -> None:
        with self._lock:
            found = self._scope(scope)
            # delete: "You must have WRITE or MANAGE permission on the Secret Scope."
            self._require(caller, found, Permission.WRITE, "delete secret")
            self._refuse_keyvault(found, "delete")
            if key not in found.secrets:
                # delete: "Throws RESOURCE_DOES_NOT_EXIST if no such secret scope or secret
                # exists."
                raise errors.not_found(f"Secret {key} does not exist in scope {found.name}.")
            del found.secrets[key]

    # -- ACLs ---------------------------------------------------------------------------

    def put_acl(
        self,
        caller: Principal,
        scope: str,
        principal: str,
        permission: Permission,
        *,
        visible_after: float = 0.0,
    ) -> None:
        """Create or overwrite an ACL; with ``visible_after`` > 0 it shows (and takes effect)
        only that many seconds later, while the call is acknowledged at once."""
        with self._lock:
            found = self._scope(scope)
            self._refuse_standard_tier()
            # acls/put: "Users must have the MANAGE permission to invoke this API."
            self._require(caller, found, Permission.MANAGE, "put ACL")
            self._check_principal(principal)
            if self._acl_write_lost(found):
                return
            # The service resolves the principal: a renamed group is listed (and kept) under
            # its current name (databrickslabs/ucx#627).
            principal = self.modes.acl_renames.get(principal, principal)
            # acls/put: "Creates or overwrites the ACL associated with the given principal".
            slot = found.acls.get(principal)
            if visible_after <= 0:
                found.acls[principal] = AclSlot(permission)
                return
            if slot is None:
                slot = found.acls[principal] = AclSlot(None)
            slot.pending, slot.pending_at = permission, self._clock() + visible_after

    def list_acls(self, caller: Principal, scope: str) -> list[tuple[str, Permission]]:
        with self._lock:
            found = self._scope(scope)
            self._refuse_standard_tier()
            # acls/list: "Users must have the MANAGE permission to invoke this API."
            self._require(caller, found, Permission.MANAGE, "list ACLs")
            return sorted(self._listed_acls(found).items())

    def get_acl(self, caller: Principal, scope: str, principal: str) -> Permission:
        with self._lock:
            found = self._scope(scope)
            self._refuse_standard_tier()
            # acls/get: "Users must have the MANAGE permission to invoke this API."
            self._require(caller, found, Permission.MANAGE, "get ACL")
            permission = self._listed_acls(found).get(principal)
            if permission is None:
                raise errors.not_found(
                    f"Failed to get secret ACL for principal {principal} for scope {found.name}."
                )
            return permission

    def delete_acl(self, caller: Principal, scope: str, principal: str) -> None:
        with self._lock:
            found = self._scope(scope)
            self._refuse_standard_tier()
            # acls/delete: "Users must have the MANAGE permission to invoke this API."
            self._require(caller, found, Permission.MANAGE, "delete ACL")
            if self._visible_acls(found).get(principal) is None:
                # acls/delete: "Throws RESOURCE_DOES_NOT_EXIST if no such secret scope,
                # principal, or ACL exists."
                raise errors.not_found(
                    f"Failed to delete secret ACL for principal {principal} on scope"
                    f" {found.name}: it does not exist."
                )
            if self._acl_write_lost(found):
                return
            del found.acls[principal]

    def effective_permission(self, caller: Principal, scope: str) -> Permission | None:
        """The strongest of the caller's own ACL and its groups' ACLs (None: no access)."""
        with self._lock:
            return self._effective(caller, self._scope(scope))

    # -- direct access for tests and persistence ----------------------------------------

    def secret_value(self, scope: str, key: str) -> bytes:
        """The stored value, bypassing every rule (test assertions only)."""
        with self._lock:
            return self._scope(scope).secrets[key].value

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            return {
                "last_timestamp_ms": self._last_timestamp,
                "scopes": [
                    {
                        "name": s.name,
                        "backend_type": s.backend_type,
                        "keyvault_metadata": s.keyvault_metadata,
                        "secrets": [
                            {
                                "key": key,
                                "value": base64.b64encode(secret.value).decode(),
                                "is_bytes": secret.is_bytes,
                                "last_updated_timestamp": secret.last_updated_timestamp,
                            }
                            for key, secret in sorted(s.secrets.items())
                        ],
                        # A pending (late) ACL is saved as it will end up.
                        "acls": {
                            p: eventual.name
                            for p, slot in sorted(s.acls.items())
                            if (eventual := slot.pending or slot.view(now)) is not None
                        },
                    }
                    for s in self._scopes.values()
                ],
            }

    def load_dict(self, data: dict[str, Any]) -> None:
        with self._lock:
            self._last_timestamp = int(data.get("last_timestamp_ms", 0))
            self._scopes = {}
            for item in data.get("scopes", []):
                scope = Scope(str(item["name"]), str(item.get("backend_type", BACKEND_TYPE)))
                metadata = item.get("keyvault_metadata")
                if isinstance(metadata, dict):
                    scope.keyvault_metadata = {str(k): str(v) for k, v in metadata.items()}
                for secret in item.get("secrets", []):
                    scope.secrets[str(secret["key"])] = Secret(
                        base64.b64decode(secret["value"]),
                        bool(secret["is_bytes"]),
                        int(secret["last_updated_timestamp"]),
                    )
                for principal, permission in item.get("acls", {}).items():
                    scope.acls[str(principal)] = AclSlot(Permission[permission])
                self._scopes[scope.name.lower()] = scope

    # -- rules --------------------------------------------------------------------------

    def _next_timestamp(self) -> int:
        # list: "The lastUpdatedTimestamp returned is in milliseconds since epoch." Every
        # real sample is a whole second (1520467595000 in the SDK's docstrings, 1602168336000
        # in terraform-provider-databricks' exporter fixtures), so by default two writes
        # within one second get the same stamp and a reader cannot tell them apart. In
        # "millis" mode stamps are strictly increasing per workspace: max(now, last + 1).
        now_ms = int(self._clock() * 1000)
        if self.modes.timestamps == "seconds":
            self._last_timestamp = now_ms - now_ms % 1000
            return self._last_timestamp
        self._last_timestamp = max(now_ms, self._last_timestamp + 1)
        return self._last_timestamp

    def _refuse_keyvault(self, scope: Scope, action: str) -> None:
        if scope.backend_type == KEYVAULT_BACKEND:
            # Azure secret-scope docs: "Because the Azure Key Vault-backed secret scope is a
            # read-only interface to the Key Vault, the PutSecret and DeleteSecret the Secrets
            # API operations are not allowed." delete: "Throws BAD_REQUEST if ... request is
            # made against Azure KeyVault backed scope." (The message text is not quoted
            # anywhere public; this one is the emulator's.)
            raise errors.bad_request(
                f"Cannot {action} a secret in scope {scope.name}: it is backed by Azure"
                " KeyVault, which is read-only through this API."
            )

    def _refuse_standard_tier(self) -> None:
        if self.modes.tier == "standard":
            # Below Premium there are no secret ACLs (Azure secret-scope docs: fine-grained
            # permissions "if your account has the Premium plan"). The exact answer of the
            # ACL endpoints there is not quoted publicly: the emulator refuses with 400.
            raise errors.bad_request(
                "Secret ACLs are not available: Premium Tier is disabled in this workspace."
            )

    def _acl_write_lost(self, scope: Scope) -> bool:
        """Called under the lock for every ACL write that will be acknowledged: opens the
        ``stale`` window, and draws whether a ``lossy`` service drops this write."""
        window = self.modes.stale_seconds
        if window > 0:
            now = self._clock()
            if scope.stale_acls is None or now >= scope.stale_until:
                scope.stale_acls = self._visible_acls(scope, now)
            scope.stale_until = now + window
        rate = self.modes.drop_rate
        return rate > 0 and self._random.random() < rate

    def _listed_acls(self, scope: Scope) -> dict[str, Permission]:
        """What acls/list and acls/get show: the grants, or a stale copy of them."""
        now = self._clock()
        if scope.stale_acls is not None and now < scope.stale_until:
            return dict(scope.stale_acls)
        scope.stale_acls = None
        return self._visible_acls(scope, now)

    def _scope(self, name: str) -> Scope:
        found = self._scopes.get(name.lower())
        if found is None:
            # list/put/delete/acls: "Throws RESOURCE_DOES_NOT_EXIST if no such secret scope
            # exists."
            raise errors.not_found(f"Scope {name} does not exist!")
        return found

    def _visible_acls(self, scope: Scope, now: float | None = None) -> dict[str, Permission]:
        moment = self._clock() if now is None else now
        visible: dict[str, Permission] = {}
        for principal, slot in scope.acls.items():
            permission = slot.view(moment)
            if permission is not None:
                visible[principal] = permission
        return visible

    def _effective(self, caller: Principal, scope: Scope) -> Permission | None:
        acls = self._visible_acls(scope)
        granted = [acls[name] for name in (caller.name, *caller.groups) if name in acls]
        return max(granted) if granted else None

    def _require(self, caller: Principal, scope: Scope, needed: Permission, action: str) -> None:
        # Workspace admins may do everything on every scope.
        if caller.is_admin:
            return
        have = self._effective(caller, scope)
        if have is None or have < needed:
            # "Throws PERMISSION_DENIED if the user does not have permission to make this API
            # call."
            held = have.name if have is not None else "no"
            raise errors.denied(
                f"User {caller.name} does not have {needed.name} permission on scope"
                f" {scope.name} to {action} (has {held} permission)."
            )

    def _check_principal(self, principal: str) -> None:
        if not principal or not self._principal_exists(principal):
            # acls/put: "The principal is a user or group name corresponding to an existing
            # Databricks principal" ... "Throws INVALID_PARAMETER_VALUE if the permission or
            # principal is invalid."
            raise errors.invalid(f"Principal '{principal}' does not exist.")
