"""A ``WorkspacePort`` over one emulated workspace, in this process.

The engine's unit tests (planner, applier, lock, write-ahead ledger) run against the
emulator's own backends (``SecretsBackend``, ``WorkspaceFiles``): the objects the HTTP
emulator serves, called directly, as moto's in-process mode calls its backends. There is one
model of the service: the rules (the scope's creator gets MANAGE, ACL calls need MANAGE, a
principal must exist to be granted, deletes of what is gone fail, key names and sizes) are
the backend's, each with its source cited there. What the adapter (``edges/adapter.py``)
does over HTTP, this port does over the backends, with the same meaning:

- every write is idempotent (creating what exists, deleting what is gone counts as done);
- refusals map as the adapter's ``_call`` maps them: throttling and 5xx answers become
  ``TransientError``, everything else a ``WorkspaceError`` naming what was refused;
- the workspace's ``Faults`` apply to each call by endpoint, as the server applies them
  (one-shot failures, dropped answers, answers lost after the change took effect);
- values are never read back (the adapter's ``read_values=False``).

The service runs with ``timestamps: millis`` (each write its own stamp; the whole-second
stamps of the real service, FIDELITY row 3, are pinned by ``tests/fidelity`` through HTTP)
and ``rest_get: refused`` (the documented REST behaviour). Its clock is a ``ServiceClock``:
fixed until moved, or following a test's ``FakeClock``.

Test-side views (``values``, ``acls``, ``ledger``, ``lock``) read the state as a workspace
admin would, and are read-only: a change made outside pkgrepo goes through the service, as
another principal (``edit``, ``grant``, ``revoke``, ``as_principal``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from types import MappingProxyType
from typing import TypeVar

from reconciler.core.errors import TransientError, WorkspaceError
from reconciler.core.model import (
    SCOPE,
    Backend,
    LiveSecret,
    LiveState,
    Permission,
    SecretValue,
    frozen_map,
)
from reconciler.edges.adapter import LEDGER_DIR, LEDGER_PATH
from reconciler.emulator import (
    AclLevel,
    ApiError,
    EmulatorConfig,
    Faults,
    InProcessEmulator,
    OneShotFailure,
    Principal,
    SecretsBackend,
    ServiceModes,
    WorkspaceFiles,
    WorkspaceSettings,
)
from reconciler.emulator import Dropped as ConnectionDropped
from reconciler.engine.lock import LOCK_SCOPE
from reconciler.engine.port import ProvenKeys, Snapshot
from tests.support.clock import SERVICE_EPOCH

T = TypeVar("T")

DEPLOYER = "deployer@example.com"
"""Who pkgrepo runs as by default: a workspace admin."""
COLLEAGUE = "colleague@example.com"
"""Another workspace admin, who edits things by hand (changes made outside pkgrepo)."""
MALLORY = "mallory@example.com"
"""A plain user (no admin), who may create scopes of her own (the lock scope, say)."""
PLAIN_USER = "user@example.com"
SP_DEPLOYER = "sp-deployer"
"""A service principal that is not a workspace admin."""
GROUPS = ("team", "team-a", "data-eng", "intruder")
TOKENS = {DEPLOYER: "dapi-port-deployer", MALLORY: "dapi-port-mallory"}
"""For the same directory served over HTTP (``tests/engine/test_emulated_port.py``)."""
PRINCIPALS = (
    Principal(DEPLOYER, groups=frozenset({"admins"}), tokens=(TOKENS[DEPLOYER],)),
    Principal(COLLEAGUE, groups=frozenset({"admins"})),
    Principal(MALLORY, tokens=(TOKENS[MALLORY],)),
    Principal(PLAIN_USER),
    Principal(SP_DEPLOYER, kind="service_principal"),
    Principal("sp-1", kind="service_principal"),
)
ENGINE_MODES = ServiceModes(timestamps="millis", rest_get="refused")

_TRANSIENT_CODES = frozenset(
    {"REQUEST_LIMIT_EXCEEDED", "TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", "DEADLINE_EXCEEDED"}
)
_WRITES = frozenset(
    {"create_scope", "delete_scope", "put_secret", "delete_secret", "put_acl", "delete_acl"}
)


class ServiceClock:
    """The service's wall clock (seconds): fixed at ``SERVICE_EPOCH`` until ``advance``d,
    or following ``source`` (a test's ``FakeClock.time``) plus ``offset``."""

    def __init__(self, source: Callable[[], float] | None = None, offset: float = 0.0) -> None:
        self._source = source
        self._now = SERVICE_EPOCH
        self.offset = offset

    def __call__(self) -> float:
        base = self._source() if self._source is not None else self._now
        return base + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    @property
    def ms(self) -> int:
        return int(self() * 1000)


class EmulatedService:
    """One emulator's workspaces, directory and clock, without a server."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        offset: float = 0.0,
        modes: ServiceModes = ENGINE_MODES,
        admins: Iterable[str] = (),
    ) -> None:
        extra = tuple(Principal(name, groups=frozenset({"admins"})) for name in admins)
        self.config = EmulatorConfig(
            principals=PRINCIPALS + extra,
            groups=GROUPS,
            workspace_defaults=WorkspaceSettings(modes=modes),
        )
        self.emulator = InProcessEmulator(self.config)
        self.clock = ServiceClock(clock, offset)

    def secrets(self, name: str) -> SecretsBackend:
        """Workspace ``name``'s Secrets service, on this service's clock."""
        self.emulator.set_clock(name, self.clock)
        return self.emulator.backend(name)

    def files(self, name: str) -> WorkspaceFiles:
        return self.emulator.files(name)

    def principal(self, name: str) -> Principal:
        for principal in self.emulator.principals():
            if principal.name == name:
                return principal
        raise KeyError(f"no principal {name!r} in the emulated directory")

    def port(self, name: str = "ws", identity: str = DEPLOYER) -> EmulatedWorkspace:
        return EmulatedWorkspace(service=self, name=name, identity=identity)


class EmulatedWorkspace:
    """A ``WorkspacePort`` for workspace ``name`` of ``service``, acting as ``identity``.

    ``calls`` counts this port's operations by name (``writes``: the scope, secret and ACL
    writes), as a test of the engine wants to see them."""

    def __init__(
        self,
        service: EmulatedService | None = None,
        *,
        name: str = "ws",
        identity: str = DEPLOYER,
        clock: Callable[[], float] | None = None,
        offset: float = 0.0,
        ledger_in_workspace: bool = True,
    ) -> None:
        self.service = service or EmulatedService(clock=clock, offset=offset)
        self.ledger_in_workspace = ledger_in_workspace
        """As the adapter's: False where the ledger is kept elsewhere (``--ledger``)."""
        self.name = name
        self.identity = identity
        self.caller = self.service.principal(identity)
        self.secrets = self.service.secrets(name)
        self.files = self.service.files(name)
        self.calls: Counter[str] = Counter()

    # -- another principal, faults, time -----------------------------------------------------

    def as_principal(self, identity: str) -> EmulatedWorkspace:
        """The same workspace, reached by someone else (counted separately)."""
        return EmulatedWorkspace(self.service, name=self.name, identity=identity)

    def fail(self, endpoint: str, times: int, status: int = 503) -> None:
        """The next ``times`` calls to ``endpoint`` (``secrets/put``) fail with ``status``
        (one-shot failures of the emulator's ``Faults``)."""
        shots = tuple(OneShotFailure(endpoint, status=status) for _ in range(times))
        self.set_faults(Faults(one_shot=shots))

    def set_faults(self, faults: Faults) -> None:
        """Replace this workspace's faults (the emulator's ``Faults``), from the next call."""
        self.service.emulator.set_faults(self.name, faults)

    def heal(self) -> None:
        self.set_faults(Faults())

    def advance(self, seconds: float) -> None:
        self.service.clock.advance(seconds)

    @property
    def service_ms(self) -> int:
        """The service's clock now, in milliseconds."""
        return self.service.clock.ms

    # -- what a workspace admin sees (read-only views, for assertions) -----------------------

    @property
    def _admin(self) -> Principal:
        return self.service.principal(COLLEAGUE)

    @property
    def scope(self) -> bool:
        return any(s.name.lower() == SCOPE for s in self.secrets.list_scopes(self._admin))

    @property
    def values(self) -> Mapping[str, str]:
        """The managed scope's values (empty without a scope)."""
        backend = self.secrets
        try:
            listed = backend.list_secrets(self._admin, SCOPE)
        except ApiError:
            return MappingProxyType({})
        return MappingProxyType(
            {s.key: backend.secret_value(SCOPE, s.key).decode() for s in listed}
        )

    @property
    def acls(self) -> Mapping[str, Permission]:
        return MappingProxyType(dict(self._grants(SCOPE) or {}))

    @property
    def lock(self) -> Mapping[str, int] | None:
        """The lock scope's keys with their stamps, or None without a lock scope."""
        try:
            listed = self.secrets.list_secrets(self._admin, LOCK_SCOPE)
        except ApiError:
            return None
        return MappingProxyType({s.key: s.last_updated_timestamp for s in listed})

    def lock_grants(self) -> Mapping[str, Permission] | None:
        """Every grant on the lock scope (None without one)."""
        return self._grants(LOCK_SCOPE)

    def _grants(self, scope: str) -> Mapping[str, Permission] | None:
        try:
            listed = self.secrets.list_acls(self._admin, scope)
        except ApiError:
            return None
        return {p: Permission(level.name) for p, level in listed}

    @property
    def ledger(self) -> bytes | None:
        try:
            return self.files.export_file(self._admin, LEDGER_PATH, format="AUTO")
        except ApiError:
            return None

    @ledger.setter
    def ledger(self, document: bytes) -> None:
        """Rewrite the ledger file by hand (as another admin)."""
        files = self.files
        files.mkdirs(self._admin, LEDGER_DIR)
        files.import_file(self._admin, LEDGER_PATH, document, format="AUTO", overwrite=True)

    # -- changes made outside pkgrepo, by another admin --------------------------------------

    def edit(self, key: str, value: str) -> None:
        self.secrets.put_secret(self._admin, SCOPE, key, value.encode("utf-8"), is_bytes=False)

    def grant(self, principal: str, permission: Permission) -> None:
        self.secrets.put_acl(self._admin, SCOPE, principal, AclLevel[permission.value])

    def revoke(self, principal: str) -> None:
        self.secrets.delete_acl(self._admin, SCOPE, principal)

    # -- the one place calls are made and refusals mapped -----------------------------------

    def _op(self, name: str) -> None:
        self.calls[name] += 1
        if name in _WRITES:
            self.calls["writes"] += 1

    def _call(
        self,
        op: str,
        what: str,
        endpoint: str,
        fn: Callable[[], T],
        *,
        if_missing: Callable[[], T] | None = None,
        if_exists: Callable[[], T] | None = None,
    ) -> T:
        self._op(op)
        try:
            return self.service.emulator.call(self.name, endpoint, fn)
        except ConnectionDropped:
            raise TransientError(f"{self.name}: {what}: cannot reach the workspace") from None
        except ApiError as exc:
            code = str(exc.error_code)
            if code == "RESOURCE_DOES_NOT_EXIST" and if_missing is not None:
                return if_missing()
            if code == "RESOURCE_ALREADY_EXISTS" and if_exists is not None:
                return if_exists()
            if code in _TRANSIENT_CODES or exc.status in (429, 500, 502, 503, 504):
                raise TransientError(f"{self.name}: {what}: {code}") from None
            raise WorkspaceError(self.name, f"{what}: {exc.message}") from None

    # -- the port: reads ------------------------------------------------------------------------

    def _keys(self, scope: str, what: str, op: str) -> Mapping[str, LiveSecret] | None:
        listed = self._call(
            op,
            what,
            "secrets/list",
            lambda: self.secrets.list_secrets(self.caller, scope),
            if_missing=lambda: None,
        )
        if listed is None:
            return None
        return frozen_map({s.key: LiveSecret(s.key, s.last_updated_timestamp) for s in listed})

    def _acl_map(self, scope: str, what: str, op: str) -> Mapping[str, Permission] | None:
        listed = self._call(
            op,
            what,
            "secrets/acls/list",
            lambda: self.secrets.list_acls(self.caller, scope),
            if_missing=lambda: None,
        )
        if listed is None:
            return None
        return frozen_map({p: Permission(level.name) for p, level in listed})

    def read(self, proven: ProvenKeys | None = None) -> Snapshot:
        del proven  # values are never read back here, so none need proving
        secrets = self._keys(SCOPE, "list secrets", "read")
        ledger = None
        if self.ledger_in_workspace:
            ledger = self._call(
                "read_ledger",
                "read ledger",
                "workspace/export",
                lambda: self.files.export_file(self.caller, LEDGER_PATH, format="AUTO"),
                if_missing=lambda: None,
            )
        if secrets is None:
            return Snapshot(LiveState(scope_exists=False, identity=self.identity), ledger)
        acls = self._acl_map(SCOPE, "list ACLs", "read_acls") or frozen_map()
        live = LiveState(True, secrets, acls, self.identity, Backend.DATABRICKS)
        return Snapshot(live, ledger)

    def read_values(self, keys: Collection[str]) -> Mapping[str, SecretValue] | None:
        """None: values are not read back (the adapter's ``read_values=False``)."""
        del keys
        return None

    def list_secrets(self) -> Mapping[str, LiveSecret]:
        return self._keys(SCOPE, "list secrets", "list_secrets") or frozen_map()

    def list_acls(self) -> Mapping[str, Permission]:
        return self._acl_map(SCOPE, "list ACLs", "list_acls") or frozen_map()

    # -- the port: writes (idempotent) -------------------------------------------------------

    def create_scope(self) -> None:
        self._call(
            "create_scope",
            "create scope",
            "secrets/scopes/create",
            lambda: self.secrets.create_scope(self.caller, SCOPE),
            if_exists=lambda: None,
        )

    def delete_scope(self) -> None:
        self._call(
            "delete_scope",
            "delete scope",
            "secrets/scopes/delete",
            lambda: self.secrets.delete_scope(self.caller, SCOPE),
            if_missing=lambda: None,
        )

    def put_secret(self, key: str, value: SecretValue) -> None:
        data = value.plaintext.encode("utf-8")
        self._call(
            "put_secret",
            f"put {key}",
            "secrets/put",
            lambda: self.secrets.put_secret(self.caller, SCOPE, key, data, is_bytes=False),
        )

    def delete_secret(self, key: str) -> None:
        self._call(
            "delete_secret",
            f"delete {key}",
            "secrets/delete",
            lambda: self.secrets.delete_secret(self.caller, SCOPE, key),
            if_missing=lambda: None,
        )

    def put_acl(self, principal: str, permission: Permission) -> None:
        level = AclLevel[permission.value]
        self._call(
            "put_acl",
            f"grant {permission.value} to {principal}",
            "secrets/acls/put",
            lambda: self.secrets.put_acl(self.caller, SCOPE, principal, level),
        )

    def delete_acl(self, principal: str) -> None:
        self._call(
            "delete_acl",
            f"remove grant of {principal}",
            "secrets/acls/delete",
            lambda: self.secrets.delete_acl(self.caller, SCOPE, principal),
            if_missing=lambda: None,
        )

    def write_ledger(self, document: bytes) -> None:
        files = self.files

        def write() -> None:
            files.mkdirs(self.caller, LEDGER_DIR)
            files.import_file(self.caller, LEDGER_PATH, document, format="AUTO", overwrite=True)

        self._call("write_ledger", "write ledger", "workspace/import", write)

    # -- the port: the lock scope --------------------------------------------------------------

    def lock_create(self) -> bool:
        def create() -> bool:
            self.secrets.create_scope(self.caller, LOCK_SCOPE)
            return True

        return self._call(
            "lock_create", "take lock", "secrets/scopes/create", create, if_exists=lambda: False
        )

    def lock_keys(self) -> Mapping[str, LiveSecret] | None:
        return self._keys(LOCK_SCOPE, "read lock", "lock_keys")

    def lock_put(self, key: str) -> None:
        self._call(
            "lock_put",
            "record lock holder",
            "secrets/put",
            lambda: self.secrets.put_secret(self.caller, LOCK_SCOPE, key, b"held", is_bytes=False),
        )

    def lock_delete_key(self, key: str) -> bool:
        def delete() -> bool:
            self.secrets.delete_secret(self.caller, LOCK_SCOPE, key)
            return True

        return self._call(
            "lock_delete_key", "claim lock", "secrets/delete", delete, if_missing=lambda: False
        )

    def lock_delete(self) -> None:
        self._call(
            "lock_delete",
            "release lock",
            "secrets/scopes/delete",
            lambda: self.secrets.delete_scope(self.caller, LOCK_SCOPE),
            if_missing=lambda: None,
        )

    def lock_writers(self) -> Mapping[str, Permission] | None:
        found = self._acl_map(LOCK_SCOPE, "read lock ACLs", "lock_writers")
        if found is None:
            return None
        return frozen_map(
            {
                p: level
                for p, level in found.items()
                if level in (Permission.WRITE, Permission.MANAGE)
            }
        )

    def lock_revoke(self, principal: str) -> bool:
        def revoke() -> bool:
            self.secrets.delete_acl(self.caller, LOCK_SCOPE, principal)
            return True

        return self._call(
            "lock_revoke",
            "revoke lock access",
            "secrets/acls/delete",
            revoke,
            if_missing=lambda: False,
        )

    def admin_status(self, principal: str) -> bool | str:
        """As the adapter asks SCIM: ``admins`` is, ``users`` is not; a user or service
        principal is when it is a member of ``admins``; a group of its own is not; a name
        nobody has is a reason. Only an admin caller sees others' groups."""
        self._op("admin_status")
        if principal == "admins":
            return True
        if principal == "users":
            return False
        if not self.caller.is_admin:
            return (
                "pkgrepo's identity is not a workspace admin here, and the workspace shows "
                "others' groups to admins only"
            )
        for found in self.service.emulator.principals():
            if found.name.casefold() == principal.casefold():
                return found.is_admin
        if principal in self.service.emulator.groups():
            return False
        return "the workspace knows no user, service principal or group of that name"
