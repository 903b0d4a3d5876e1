"""The boundary between the engine and a workspace (a Protocol, so the planner and applier
run against an in-memory fake in unit tests and against the real databricks-sdk adapter
everywhere else).

Every write is idempotent from the caller's point of view: creating what exists or deleting
what is gone counts as done. Implementations raise ``TransientError`` for failures worth
retrying and ``WorkspaceError`` for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from reconciler.model import LiveSecret, LiveState, Permission, SecretValue


@dataclass(frozen=True)
class Snapshot:
    """One read of a workspace: its live state, and the stored ledger document if the
    ledger lives in the workspace (``None`` when there is none yet)."""

    live: LiveState
    ledger: bytes | None


class LockPort(Protocol):
    """The primitives of the advisory lock (``reconciler.lock``): a scope of its own."""

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

    def lock_managers(self) -> frozenset[str] | None:
        """The principals with MANAGE on the lock scope (its creator among them), or None
        when there is no lock scope."""
        ...


class WorkspacePort(LockPort, Protocol):
    """What the engine needs from one workspace's secret scope."""

    def read(self) -> Snapshot:
        """Scope, keys with timestamps, ACLs, the caller's identity and the ledger, read
        concurrently: one round trip."""
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
