"""A tiny Workspace file store: the few Workspace API calls a ledger file needs.

Pure: no HTTP. Paths are absolute. ``/Users/<name>/...`` belongs to that principal (and
workspace admins); everything else is for admins only. The root, ``/Users``, ``/Shared`` and
every known principal's home folder exist from the start, as in a real workspace.
References: the Workspace API pages (https://docs.databricks.com/api/workspace-files/v1/
import.md, export, get-status, mkdirs, delete; the same text is in the ``WorkspaceAPI``
docstrings of databricks-sdk), quoted beside each rule.
"""

from __future__ import annotations

import base64
import posixpath
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.emulator import errors
from reconciler.emulator.identity import Principal, stable_id

DIRECTORY = "DIRECTORY"
FILE = "FILE"
NOTEBOOK = "NOTEBOOK"
NOTEBOOK_HEADER = b"# Databricks notebook source"
IMPORT_FORMATS = ("AUTO", "RAW", "SOURCE")
EXPORT_FORMATS = ("AUTO", "RAW", "SOURCE")
# import: the Workspace API refuses content larger than 10 MB.
MAX_CONTENT_BYTES = 10 * 1024 * 1024


@dataclass
class WorkspaceObject:
    path: str
    object_type: str
    object_id: int
    created_at: int
    modified_at: int
    content: bytes = field(default=b"", repr=False)
    language: str | None = None

    def info(self) -> dict[str, Any]:
        """The ``ObjectInfo`` shape get-status answers with."""
        info: dict[str, Any] = {
            "path": self.path,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "created_at": self.created_at,
            "modified_at": self.modified_at,
            "resource_id": str(self.object_id),
        }
        if self.object_type != DIRECTORY:
            info["size"] = len(self.content)
        if self.language is not None:
            info["language"] = self.language
        return info


class WorkspaceFiles:
    """Files and folders of one workspace."""

    def __init__(
        self,
        *,
        home_owners: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._objects: dict[str, WorkspaceObject] = {}
        self._next_id = int(stable_id("workspace-files", 12))
        self._lock = threading.RLock()
        for path in ("/", "/Users", "/Shared", *(f"/Users/{name}" for name in home_owners)):
            self._ensure_directory(path)

    # -- API ----------------------------------------------------------------------------

    def get_status(self, caller: Principal, path: str) -> dict[str, Any]:
        path = _normalise(path)
        _authorise(caller, path)
        with self._lock:
            # get-status: "If path does not exist, this call returns an error
            # RESOURCE_DOES_NOT_EXIST."
            return self._existing(path).info()

    def import_file(
        self,
        caller: Principal,
        path: str,
        content: bytes,
        *,
        format: str = "SOURCE",
        language: str | None = None,
        overwrite: bool = False,
    ) -> None:
        path = _normalise(path)
        _authorise(caller, path)
        if format not in IMPORT_FORMATS:
            raise errors.invalid(
                f"Import format {format} is not supported by the emulator; use AUTO, RAW or SOURCE."
            )
        if format == "SOURCE" and language is None:
            # import: "To import a single file as SOURCE, you must set the language field."
            raise errors.invalid("The language field is required to import a file as SOURCE.")
        if len(content) > MAX_CONTENT_BYTES:
            raise errors.invalid(f"Content exceeds the limit of {MAX_CONTENT_BYTES} bytes.")
        object_type = FILE
        if format == "SOURCE" or (format == "AUTO" and content.startswith(NOTEBOOK_HEADER)):
            object_type = NOTEBOOK
        with self._lock:
            parent = self._objects.get(posixpath.dirname(path))
            if parent is None or parent.object_type != DIRECTORY:
                raise errors.not_found(
                    f"The parent folder ({posixpath.dirname(path)}) does not exist."
                )
            existing = self._objects.get(path)
            if existing is not None and (not overwrite or existing.object_type == DIRECTORY):
                # import: "If path already exists and overwrite is set to false, this call
                # returns an error RESOURCE_ALREADY_EXISTS."
                raise errors.already_exists(f"{path} already exists.")
            now = self._now_ms()
            if existing is None:
                self._objects[path] = WorkspaceObject(
                    path, object_type, self._new_id(), now, now, content, language
                )
            else:
                existing.content, existing.modified_at = content, now
                existing.object_type, existing.language = object_type, language

    def export_file(self, caller: Principal, path: str, *, format: str = "SOURCE") -> bytes:
        path = _normalise(path)
        _authorise(caller, path)
        if format not in EXPORT_FORMATS:
            raise errors.invalid(f"Export format {format} is not supported for files.")
        with self._lock:
            # export: "If path does not exist, this call returns an error
            # RESOURCE_DOES_NOT_EXIST."
            found = self._existing(path)
            if found.object_type == DIRECTORY:
                raise errors.invalid(f"{path} is a directory; the emulator exports files only.")
            return found.content

    def mkdirs(self, caller: Principal, path: str) -> None:
        path = _normalise(path)
        _authorise(caller, path)
        with self._lock:
            # mkdirs: "Creates the specified directory (and necessary parent directories if
            # they do not exist). If there is an object (not a directory) at any prefix of the
            # input path, this call returns an error RESOURCE_ALREADY_EXISTS."
            for prefix in _prefixes(path):
                found = self._objects.get(prefix)
                if found is not None and found.object_type != DIRECTORY:
                    raise errors.already_exists(f"{prefix} exists and is not a directory.")
            for prefix in _prefixes(path):
                self._ensure_directory(prefix)

    def delete(self, caller: Principal, path: str, *, recursive: bool = False) -> None:
        path = _normalise(path)
        _authorise(caller, path)
        if path in ("/", "/Users", "/Shared"):
            raise errors.denied(f"{path} cannot be deleted.")
        with self._lock:
            found = self._existing(path)
            children = [p for p in self._objects if p.startswith(path.rstrip("/") + "/")]
            if found.object_type == DIRECTORY and children and not recursive:
                # delete: "If path is a non-empty directory and recursive is set to false,
                # this call returns an error DIRECTORY_NOT_EMPTY."
                raise errors.ApiError("DIRECTORY_NOT_EMPTY", f"Folder {path} is not empty.")
            for child in children:
                del self._objects[child]
            del self._objects[path]

    # -- persistence --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "next_id": self._next_id,
                "objects": [
                    {
                        "path": o.path,
                        "object_type": o.object_type,
                        "object_id": o.object_id,
                        "created_at": o.created_at,
                        "modified_at": o.modified_at,
                        "content": base64.b64encode(o.content).decode(),
                        "language": o.language,
                    }
                    for o in sorted(self._objects.values(), key=lambda o: o.path)
                ],
            }

    def load_dict(self, data: dict[str, Any]) -> None:
        with self._lock:
            self._next_id = max(self._next_id, int(data.get("next_id", 0)))
            for item in data.get("objects", []):
                self._objects[str(item["path"])] = WorkspaceObject(
                    str(item["path"]),
                    str(item["object_type"]),
                    int(item["object_id"]),
                    int(item["created_at"]),
                    int(item["modified_at"]),
                    base64.b64decode(item.get("content", "")),
                    item.get("language"),
                )

    # -- internals ----------------------------------------------------------------------

    def _existing(self, path: str) -> WorkspaceObject:
        found = self._objects.get(path)
        if found is None:
            raise errors.not_found(f"Path ({path}) doesn't exist.")
        return found

    def _ensure_directory(self, path: str) -> None:
        if path not in self._objects:
            now = self._now_ms()
            self._objects[path] = WorkspaceObject(path, DIRECTORY, self._new_id(), now, now)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _normalise(path: str) -> str:
    if not path.startswith("/") or "\x00" in path:
        raise errors.invalid(f"Path ({path}) must be absolute.")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise errors.invalid(f"Path ({path}) must not contain '.' or '..' segments.")
    return "/" + "/".join(parts)


def _prefixes(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _authorise(caller: Principal, path: str) -> None:
    """``/Users/<name>/...``: that principal and admins; anywhere else: admins only."""
    if caller.is_admin:
        return
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "Users" and parts[1].lower() == caller.name.lower():
        return
    raise errors.denied(f"{caller.name} does not have permission to access {path}.")
