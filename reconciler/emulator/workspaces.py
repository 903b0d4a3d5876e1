"""The workspaces one emulator serves: each has its own secrets, files, faults and counters.

A workspace comes into being, empty, on its first request (or first ``registry.get``), with
the settings the configuration gives for its name. The registry also owns persistence: it
loads the state file once and saves every workspace after each change.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.emulator import persistence
from reconciler.emulator.account import Account
from reconciler.emulator.backend import SecretsBackend
from reconciler.emulator.config import EmulatorConfig, WorkspaceSettings
from reconciler.emulator.faults import FaultInjector, Faults
from reconciler.emulator.identity import Directory, Principal, stable_id
from reconciler.emulator.workspace_files import WorkspaceFiles

WORKSPACE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
DEFAULT_WORKSPACE = "default"
RESERVED_NAMES = frozenset({"api", ".well-known", ".", ".."})

RequestKey = tuple[str, str, int]
"""(method, path, status); status 0 means the connection was dropped without an answer."""

logger = logging.getLogger("pkgrepo.emulator")


@dataclass(frozen=True)
class RequestSeen:
    """One request a workspace received, as a request listener is told of it: before the
    answer goes out, so "A was seen before B" is the order the service handled them in.
    Carries names only, never a request body."""

    workspace: str
    method: str
    path: str
    """Without the workspace prefix and the query, e.g. ``/api/2.0/secrets/acls/put``."""
    status: int
    """The answer's status; 0 when the connection is dropped without an answer."""
    caller: Principal | None
    """Who the request authenticated as (None: refused before that, or a route without a
    token)."""
    scope: str | None
    """The secret scope a Secrets API request named, when it named one."""
    applied: bool
    """The service carried the request out (for a write: the change took effect), whatever
    answer was then sent: an ``after_commit`` fault loses the answer of an applied write."""

    @property
    def is_write(self) -> bool:
        return self.applied and self.method == "POST" and self.path in WRITE_PATHS


WRITE_PATHS = frozenset(
    {
        "/api/2.0/secrets/scopes/create",
        "/api/2.0/secrets/scopes/delete",
        "/api/2.0/secrets/put",
        "/api/2.0/secrets/delete",
        "/api/2.0/secrets/acls/put",
        "/api/2.0/secrets/acls/delete",
        "/api/2.0/workspace/import",
        "/api/2.0/workspace/mkdirs",
        "/api/2.0/workspace/delete",
    }
)
"""The endpoints that change a workspace's secrets or files."""

RequestListener = Callable[[RequestSeen], None]


class Listeners:
    """The request listeners of one emulator (kept across restarts). A listener runs on the
    server's thread for the request; one that raises is logged and the answer still goes
    out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[RequestListener] = []

    def add(self, listener: RequestListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove(self, listener: RequestListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def notify(self, seen: RequestSeen) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(seen)
            except Exception:
                logger.exception("a request listener failed on %s %s", seen.method, seen.path)


class Workspace:
    """One emulated workspace."""

    def __init__(
        self,
        name: str,
        settings: WorkspaceSettings,
        directory: Directory,
        *,
        validate_principals: bool = True,
    ) -> None:
        self.name = name
        self.workspace_id = settings.workspace_id or stable_id(f"workspace:{name}")
        self.notebook_context = settings.notebook_context
        exists = directory.knows if validate_principals else _anyone
        self.secrets = SecretsBackend(principal_exists=exists, modes=settings.modes)
        self.files = WorkspaceFiles(home_owners=[p.name for p in directory.principals])
        self.faults = FaultInjector(settings.faults)
        self._counts: Counter[RequestKey] = Counter()
        self._counts_lock = threading.Lock()

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults; counters of one-shot failures and the token bucket restart."""
        self.faults = FaultInjector(faults)

    def record(self, method: str, path: str, status: int) -> None:
        with self._counts_lock:
            self._counts[(method, path, status)] += 1

    def responses(self) -> Counter[RequestKey]:
        with self._counts_lock:
            return Counter(self._counts)

    def reset_counts(self) -> None:
        with self._counts_lock:
            self._counts.clear()

    def to_dict(self) -> dict[str, Any]:
        return {"secrets": self.secrets.to_dict(), "files": self.files.to_dict()}

    def load_dict(self, data: dict[str, Any]) -> None:
        self.secrets.load_dict(data.get("secrets", {}))
        self.files.load_dict(data.get("files", {}))


class WorkspaceRegistry:
    """All workspaces of one emulator, created on first use; saves to the state file."""

    def __init__(self, config: EmulatorConfig, state_file: Path | None = None) -> None:
        self.config = config
        self.directory = config.directory()
        self.account = Account(config.account) if config.account is not None else None
        self.state_file = state_file
        self._saved = persistence.load(state_file) if state_file is not None else {}
        self._workspaces: dict[str, Workspace] = {}
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        for name in self._saved:  # a restart serves every saved workspace straight away
            self.get(name)

    def get(self, name: str) -> Workspace:
        found = self._workspaces.get(name)
        if found is not None:
            return found
        if not is_workspace_name(name):
            raise ValueError(f"invalid workspace name {name!r}")
        with self._lock:
            found = self._workspaces.get(name)
            if found is None:
                found = Workspace(
                    name,
                    self.config.settings(name),
                    self.directory,
                    validate_principals=self.config.validate_principals,
                )
                saved = self._saved.get(name)
                if saved is not None:
                    found.load_dict(saved)
                self._workspaces[name] = found
            return found

    def names(self) -> list[str]:
        return sorted(self._workspaces)

    def save(self) -> None:
        """Write every workspace to the state file (no-op without one)."""
        if self.state_file is None:
            return
        with self._save_lock:
            data = {name: ws.to_dict() for name, ws in sorted(self._workspaces.items())}
            persistence.save(self.state_file, data)


def _anyone(name: str) -> bool:
    return bool(name)


def is_workspace_name(name: str) -> bool:
    return bool(WORKSPACE_NAME.fullmatch(name)) and name not in RESERVED_NAMES
