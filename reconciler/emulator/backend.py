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
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.emulator import errors
from reconciler.emulator.identity import USERS, Principal

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
    ) -> None:
        self._scopes: dict[str, Scope] = {}  # by lower-cased name
        self._principal_exists = principal_exists
        self._clock = clock
        self._last_timestamp = 0
        self._lock = threading.RLock()

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
            if backend_type == "AZURE_KEYVAULT":
                # scopes/create: "Throws BAD_REQUEST if request violated constraints."
                raise errors.bad_request(
                    "Azure KeyVault-backed scopes need an Azure AD token; not emulated."
                )
            raise errors.invalid(f"Invalid scope_backend_type '{backend_type}'.")
        if initial_manage_principal is not None and initial_manage_principal != USERS:
            # scopes/create: "The only supported principal for this option is the group
            # users, which contains all users in the workspace."
            raise errors.invalid(
                f"initial_manage_principal must be 'users', not '{initial_manage_principal}'."
            )
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

    def get_secret(self, caller: Principal, scope: str, key: str, *, in_notebook: bool) -> bytes:
        if not in_notebook:
            # get: "Throws BAD_REQUEST if normal user calls get secret outside of a notebook."
            # ("This API can only be called from the DBUtils interface.")
            raise errors.bad_request(
                "Secret values can only be read from within a notebook or job on a cluster"
                " (dbutils.secrets.get); this API is not available to REST clients."
            )
        with self._lock:
            found = self._scope(scope)
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
            # acls/put: "Users must have the MANAGE permission to invoke this API."
            self._require(caller, found, Permission.MANAGE, "put ACL")
            self._check_principal(principal)
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
            # acls/list: "Users must have the MANAGE permission to invoke this API."
            self._require(caller, found, Permission.MANAGE, "list ACLs")
            return sorted(self._visible_acls(found).items())

    def get_acl(self, caller: Principal, scope: str, principal: str) -> Permission:
        with self._lock:
            found = self._scope(scope)
            # acls/get: "Users must have the MANAGE permission to invoke this API."
            self._require(caller, found, Permission.MANAGE, "get ACL")
            permission = self._visible_acls(found).get(principal)
            if permission is None:
                raise errors.not_found(
                    f"Failed to get secret ACL for principal {principal} for scope {found.name}."
                )
            return permission

    def delete_acl(self, caller: Principal, scope: str, principal: str) -> None:
        with self._lock:
            found = self._scope(scope)
            # acls/delete: "Users must have the MANAGE permission to invoke this API."
            self._require(caller, found, Permission.MANAGE, "delete ACL")
            if self._visible_acls(found).get(principal) is None:
                # acls/delete: "Throws RESOURCE_DOES_NOT_EXIST if no such secret scope,
                # principal, or ACL exists."
                raise errors.not_found(
                    f"Failed to delete secret ACL for principal {principal} on scope"
                    f" {found.name}: it does not exist."
                )
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
        # last_updated_timestamp is milliseconds since the epoch. Two writes within the same
        # millisecond would get the same stamp and a reader could not tell them apart, so
        # the emulator keeps stamps strictly increasing per workspace: max(now, last + 1).
        now_ms = int(self._clock() * 1000)
        self._last_timestamp = max(now_ms, self._last_timestamp + 1)
        return self._last_timestamp

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
