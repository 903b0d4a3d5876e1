"""An emulator's workspaces without a server: its backends called directly, in this process.

Modelled on moto's in-process mode: the objects the HTTP emulator serves (``SecretsBackend``,
``WorkspaceFiles``) are called as they are, so a unit test of a client of the service talks to
the same model of it as the tests over HTTP do. ``call`` applies a workspace's ``Faults`` to
each call as the server applies them to a request.

    service = InProcessEmulator(EmulatorConfig(principals=...))
    backend = service.backend("ws1")
    service.call("ws1", "secrets/put", lambda: backend.put_secret(caller, scope, key, value))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from reconciler.emulator.backend import SecretsBackend
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.faults import Faults, after_commit_error
from reconciler.emulator.identity import Principal
from reconciler.emulator.workspace_files import WorkspaceFiles
from reconciler.emulator.workspaces import Workspace, WorkspaceRegistry

T = TypeVar("T")


class Dropped(Exception):
    """The connection was closed without an answer (a ``drop_rate`` or a one-shot failure
    with ``status=None``): the caller cannot know whether the call took effect."""


class InProcessEmulator:
    """The workspaces, directory and faults of one emulator (``config``), with no server and
    no state file. Workspaces come into being on first use, as over HTTP."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self._registry = WorkspaceRegistry(self.config)

    def _workspace(self, name: str) -> Workspace:
        return self._registry.get(name)

    def backend(self, workspace: str) -> SecretsBackend:
        return self._workspace(workspace).secrets

    def files(self, workspace: str) -> WorkspaceFiles:
        return self._workspace(workspace).files

    def principals(self) -> tuple[Principal, ...]:
        """Every user and service principal of the directory."""
        return tuple(self._registry.directory.principals)

    def groups(self) -> frozenset[str]:
        return self._registry.directory.groups()

    def set_faults(self, workspace: str, faults: Faults) -> None:
        """Replace a workspace's faults now (one-shot counters and the bucket restart)."""
        self._workspace(workspace).set_faults(faults)

    def set_clock(self, workspace: str, clock: Callable[[], float]) -> None:
        """The wall clock (seconds) a workspace's Secrets service stamps writes with."""
        self._workspace(workspace).secrets.set_clock(clock)

    def call(self, workspace: str, endpoint: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a call to this workspace's backends) as the server serves a request to
        ``endpoint`` (``secrets/put``), with the workspace's faults: an injected error raises
        ``ApiError`` before ``fn`` runs, a dropped connection raises ``Dropped``, and an
        ``after_commit`` failure runs ``fn`` and then loses its answer the same way. Latency
        is not slept: a test that wants time to pass moves its clock."""
        decision = self._workspace(workspace).faults.decide(endpoint)
        if decision.drop:
            raise Dropped(endpoint)
        if decision.error is not None:
            raise decision.error
        result = fn()
        if decision.after_commit is not None:
            lost = after_commit_error(decision.after_commit)
            if lost.error is None:
                raise Dropped(endpoint)
            raise lost.error
        return result
