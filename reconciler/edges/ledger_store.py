"""Where ledgers live: in the workspace itself (default: the next CI run finds it with no
extra infrastructure) or in a local directory given by ``--ledger``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from reconciler.core.errors import UserError
from reconciler.edges.private_file import write_private
from reconciler.engine.port import Snapshot, WorkspacePort


class LedgerStore(Protocol):
    in_workspace: bool

    def load(self, workspace: str, snapshot: Snapshot) -> bytes | None: ...

    def save(self, workspace: str, document: bytes, port: WorkspacePort) -> None: ...

    def known(self) -> tuple[str, ...]:
        """Workspaces this store holds a ledger for, where it can tell (a local directory
        can; ledgers kept in each workspace cannot be listed from here)."""
        ...


class WorkspaceLedgerStore:
    """The ledger is a workspace file, read with the rest of the live state."""

    in_workspace = True

    def load(self, workspace: str, snapshot: Snapshot) -> bytes | None:
        return snapshot.ledger

    def save(self, workspace: str, document: bytes, port: WorkspacePort) -> None:
        port.write_ledger(document)

    def known(self) -> tuple[str, ...]:
        return ()


_SUFFIX = ".ledger.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class LocalLedgerStore:
    """One file per workspace under a local directory (mode 0600)."""

    in_workspace = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, workspace: str) -> Path:
        if not _SAFE_NAME.match(workspace):
            raise UserError(f"workspace name {workspace!r} cannot name a ledger file")
        return self.directory / f"{workspace}.ledger.json"

    def known(self) -> tuple[str, ...]:
        try:
            files = sorted(self.directory.glob(f"*{_SUFFIX}"))
        except OSError:
            return ()
        names = (f.name[: -len(_SUFFIX)] for f in files if f.is_file())
        return tuple(name for name in names if _SAFE_NAME.match(name))

    def load(self, workspace: str, snapshot: Snapshot) -> bytes | None:
        path = self._path(workspace)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UserError(f"cannot read ledger {path}: {exc.strerror}") from None

    def save(self, workspace: str, document: bytes, port: WorkspacePort) -> None:
        path = self._path(workspace)
        try:
            write_private(path, document)
        except OSError as exc:
            raise UserError(f"cannot write ledger {path}: {exc.strerror}") from None
