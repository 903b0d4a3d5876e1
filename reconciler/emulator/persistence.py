"""The emulator's state file: every workspace's scopes, secrets, ACLs, timestamps and files.

This file is the *fake service's storage*, so it holds secret values (base64, not encrypted).
It is for the emulator only: never point it at real credentials you care about. It is written
with mode 0600, atomically (temporary file, fsync, ``os.replace``, fsync of the folder), after
every request that changed something, so even a SIGKILL leaves the last acknowledged state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.edges.private_file import write_private

FORMAT = "pkgrepo-emulator-state"
VERSION = 1
NOTE = (
    "Storage of the pkgrepo Databricks emulator. Holds secret values in clear (base64): "
    "for local testing only."
)


class StateFileError(Exception):
    """The state file exists but cannot be used (wrong format, corrupt)."""


def load(path: Path) -> dict[str, dict[str, Any]]:
    """Workspace name -> saved workspace data; an absent file is an empty state."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateFileError(f"{path}: not a pkgrepo emulator state file")
    if data.get("version") != VERSION:
        raise StateFileError(f"{path}: unsupported state version {data.get('version')!r}")
    workspaces = data.get("workspaces", {})
    if not isinstance(workspaces, dict):
        raise StateFileError(f"{path}: 'workspaces' must be an object")
    return workspaces


def save(path: Path, workspaces: dict[str, dict[str, Any]]) -> None:
    """Write atomically with mode 0600; a reader sees the old file or the new, never half."""
    document = {"format": FORMAT, "version": VERSION, "note": NOTE, "workspaces": workspaces}
    write_private(path, json.dumps(document, indent=1, sort_keys=True).encode())
