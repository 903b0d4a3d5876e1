"""An in-memory workspace behind the same port the SDK adapter implements, for fast tests
of the planner and applier. It follows the service's rules that matter to the engine: the
scope creator gets MANAGE, timestamps move on every write, deletes of missing things fail."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.core.errors import TransientError
from reconciler.core.model import LiveSecret, LiveState, Permission, SecretValue, frozen_map
from reconciler.engine.port import Snapshot


@dataclass
class FakeWorkspace:
    identity: str = "deployer@example.com"
    lock_creator: str | None = None
    """Who created the lock scope, when not pkgrepo's identity (a hostile user, say)."""
    lock_revoked: set[str] = field(default_factory=set)
    admins: frozenset[str] = frozenset({"admins"})
    """Who ``admin_status`` says is a workspace admin."""
    scope: bool = False
    values: dict[str, str] = field(default_factory=dict)
    stamps: dict[str, int] = field(default_factory=dict)
    acls: dict[str, Permission] = field(default_factory=dict)
    ledger: bytes | None = None
    clock_ms: int = 1_700_000_000_000
    calls: Counter[str] = field(default_factory=Counter)
    lock: dict[str, int] | None = None
    fail_on: dict[str, int] = field(default_factory=dict)
    """Operation name to how many times it fails transiently before it succeeds."""

    def _op(self, name: str, *, write: bool = False) -> None:
        self.calls[name] += 1
        if write:
            self.calls["writes"] += 1
        left = self.fail_on.get(name, 0)
        if left:
            self.fail_on[name] = left - 1
            raise TransientError(f"fake: {name}: TemporarilyUnavailable")

    def _tick(self) -> int:
        self.clock_ms += 1
        return self.clock_ms

    # -- out-of-band edits, as another admin would make them -------------------------------

    def edit(self, key: str, value: str) -> None:
        self.values[key] = value
        self.stamps[key] = self._tick()

    # -- the port ----------------------------------------------------------------------------

    def read(self) -> Snapshot:
        self._op("read")
        if not self.scope:
            return Snapshot(LiveState(scope_exists=False, identity=self.identity), self.ledger)
        return Snapshot(
            LiveState(True, self.list_secrets(count=False), frozen_map(self.acls), self.identity),
            self.ledger,
        )

    def list_secrets(self, count: bool = True) -> Mapping[str, LiveSecret]:
        if count:
            self._op("list_secrets")
        return frozen_map({k: LiveSecret(k, self.stamps[k]) for k in self.values})

    def list_acls(self) -> Mapping[str, Permission]:
        self._op("list_acls")
        return frozen_map(self.acls)

    def create_scope(self) -> None:
        self._op("create_scope", write=True)
        if not self.scope:
            self.scope = True
            self.acls = {self.identity: Permission.MANAGE}

    def delete_scope(self) -> None:
        self._op("delete_scope", write=True)
        self.scope = False
        self.values.clear()
        self.stamps.clear()
        self.acls.clear()

    def put_secret(self, key: str, value: SecretValue) -> None:
        self._op("put_secret", write=True)
        assert self.scope, "put into a missing scope"
        self.edit(key, value.plaintext)

    def delete_secret(self, key: str) -> None:
        self._op("delete_secret", write=True)
        self.values.pop(key, None)
        self.stamps.pop(key, None)

    def put_acl(self, principal: str, permission: Permission) -> None:
        self._op("put_acl", write=True)
        assert self.scope, "ACL on a missing scope"
        self.acls[principal] = permission

    def delete_acl(self, principal: str) -> None:
        self._op("delete_acl", write=True)
        self.acls.pop(principal, None)

    def write_ledger(self, document: bytes) -> None:
        self._op("write_ledger")
        self.ledger = document

    # -- the lock scope ------------------------------------------------------------------

    def lock_create(self) -> bool:
        self._op("lock_create")
        if self.lock is not None:
            return False
        self.lock = {}
        return True

    def lock_keys(self) -> Mapping[str, LiveSecret] | None:
        self._op("lock_keys")
        if self.lock is None:
            return None
        return {k: LiveSecret(k, ms) for k, ms in self.lock.items()}

    def lock_put(self, key: str) -> None:
        self._op("lock_put")
        assert self.lock is not None
        self.lock[key] = self._tick()

    def lock_delete_key(self, key: str) -> bool:
        self._op("lock_delete_key")
        if self.lock is None or key not in self.lock:
            return False
        del self.lock[key]
        return True

    def lock_delete(self) -> None:
        self._op("lock_delete")
        self.lock = None
        self.lock_creator = None
        self.lock_revoked = set()

    def lock_writers(self) -> Mapping[str, Permission] | None:
        self._op("lock_writers")
        if self.lock is None:
            return None
        creator = self.lock_creator or self.identity
        return {} if creator in self.lock_revoked else {creator: Permission.MANAGE}

    def lock_revoke(self, principal: str) -> bool:
        self._op("lock_revoke")
        if self.lock is None or principal in self.lock_revoked:
            return False
        self.lock_revoked.add(principal)
        return principal == (self.lock_creator or self.identity)

    def admin_status(self, principal: str) -> bool | str:
        self._op("admin_status")
        return principal in self.admins


@dataclass
class FakeClock:
    """Time that moves only when code sleeps."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        """Starts where FakeWorkspace's service clock starts, so expiry lines up."""
        return 1_700_000_000.0 + (self.now - 1000.0)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
