"""The boundary between the engine and a workspace (a Protocol, so the planner and applier
run against the emulator's backends in-process in unit tests, ``tests/support/emulated_port``,
and against the real databricks-sdk adapter everywhere else).

Every write is idempotent from the caller's point of view: creating what exists or deleting
what is gone counts as done. Implementations raise ``TransientError`` for failures worth
retrying and ``WorkspaceError`` for the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from reconciler.core.model import LiveSecret, LiveState, Permission, SecretValue


@dataclass(frozen=True)
class Snapshot:
    """One read of a workspace: its live state, and the stored ledger document if the
    ledger lives in the workspace (``None`` when there is none yet)."""

    live: LiveState
    ledger: bytes | None


ProvenKeys = Callable[[Mapping[str, LiveSecret], bytes | None], Collection[str]]
"""Given the keys listed (with their stamps) and the stored ledger document: the keys whose
values the ledger vouches for (``ledger.proven_keys``), which need not be read back."""


class LockPort(Protocol):
    """The primitives of the advisory lock (``reconciler.engine.lock``): a scope of its own."""

    def lock_create(self) -> bool:
        """Create the lock scope; False when it already exists."""
        ...

    def lock_keys(self) -> Mapping[str, LiveSecret] | None:
        """The lock scope's keys, or None when there is no lock."""
        ...

    def lock_put(self, key: str) -> None: ...

    def lock_delete_key(self, key: str) -> bool:
        """Delete one key of the lock scope; False when it was already gone."""
        ...

    def lock_delete(self) -> None:
        """Delete the lock scope (already gone counts as done)."""
        ...

    def lock_writers(self) -> Mapping[str, Permission] | None:
        """The principals granted WRITE or MANAGE on the lock scope (its creator among them,
        with MANAGE), or None when there is no lock scope. Workspace admins may write to
        every scope without a grant, so they need not be listed."""
        ...

    def lock_revoke(self, principal: str) -> bool:
        """Remove ``principal``'s grant on the lock scope: True when this call removed it,
        False when it was already gone (the service answers RESOURCE_DOES_NOT_EXIST to
        every caller but the first, which makes this a one-winner step like a key delete)."""
        ...

    def admin_status(self, principal: str) -> bool | str:
        """Whether ``principal`` (a user name, a service principal's application id, or a
        group) is a workspace admin, i.e. a member of ``admins``; a reason, when the
        workspace could not tell (refused, unknown principal, unreachable). Answers are
        kept for the run; a failed lookup is asked again next time."""
        ...


class WorkspacePort(LockPort, Protocol):
    """What the engine needs from one workspace's secret scope."""

    def read(self, proven: ProvenKeys | None = None) -> Snapshot:
        """Scope, keys with timestamps, ACLs, the caller's identity and the ledger, read
        concurrently (one round trip), then the managed keys' values where the service
        answers ``secrets/get``.

        ``proven`` names the keys whose values need not be read back. When it names every
        managed key listed, the scope is Databricks backed (it holds pkgrepo's own sealed
        writes) and is not looked up; otherwise what backs it is asked alongside the
        values."""
        ...

    def read_values(self, keys: Collection[str]) -> Mapping[str, SecretValue] | None:
        """The values of ``keys`` through ``secrets/get``, or None where the service does
        not answer it (or reading values is off). A key that is gone is left out."""
        ...

    def list_secrets(self) -> Mapping[str, LiveSecret]: ...

    def list_acls(self) -> Mapping[str, Permission]: ...

    def create_scope(self) -> None: ...

    def delete_scope(self) -> None: ...

    def put_secret(self, key: str, value: SecretValue) -> None: ...

    def delete_secret(self, key: str) -> None: ...

    def put_acl(self, principal: str, permission: Permission) -> None: ...

    def delete_acl(self, principal: str) -> None: ...

    def write_ledger(self, document: bytes) -> None:
        """Store the ledger where the next run finds it (readable by admins only)."""
        ...
