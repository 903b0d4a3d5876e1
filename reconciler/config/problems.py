"""Problems found in a desired-state file, each located by line, column and JSON path.

Every stage of loading (reading, schema, resolving) adds ``Problem``s instead of raising on
the first, so one run reports everything wrong with a file, sorted by position.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.errors import ConfigError
from reconciler.core.redact import MASK, looks_secret

JsonPath = tuple[str | int, ...]
"""A path into the document: mapping keys and list indexes."""

FILE_PATH = "(file)"
"""The path shown for problems with the file itself (size, encoding, YAML syntax)."""

_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_-]+\Z")


def shown_key(key: str, parent: str | int | None = None) -> str:
    """A mapping key as safe to print: as written when it looks like a name (or is a
    principal under ``acls``), else ``****``: a URL with credentials or a token pasted
    where a field name belongs must not be echoed back."""
    if parent == "acls" and key.isprintable() and len(key) <= 256:
        return key
    return MASK if looks_secret(key) else key


def format_path(path: Sequence[str | int]) -> str:
    """``workspaces.prod-eu.repositories.extra_index_urls[1]``; keys that are not plain
    words are quoted: ``workspaces["analytics.eu"].host``. The root is ``(root)``. A key
    that looks like a secret is shown as ``["****"]``."""
    text = ""
    for index, segment in enumerate(path):
        if isinstance(segment, int):
            text += f"[{segment}]"
            continue
        shown = shown_key(segment, path[index - 1] if index else None)
        if _PLAIN_SEGMENT.match(shown):
            text += f".{shown}" if text else shown
        else:
            text += f"[{json.dumps(shown)}]"
    return text or "(root)"


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    """1-based, counted in characters."""
    path: str
    message: str
    json_path: JsonPath = field(default=(), compare=False, repr=False)
    """The path as keys and indexes, to tell which workspace a problem belongs to."""

    @classmethod
    def at(cls, file: str, position: tuple[int, int], path: JsonPath, message: str) -> Problem:
        return cls(file, position[0], position[1], format_path(path), message, path)

    @property
    def sort_key(self) -> tuple[int, int, str, str]:
        return (self.line, self.column, self.path, self.message)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.path}: {self.message}"


class InvalidConfig(ConfigError):
    """A ``ConfigError`` that also keeps the located problems, for JSON output."""

    def __init__(
        self,
        problems: Iterable[Problem],
        secrets: Iterable[str] = (),
        notes: Iterable[Problem] = (),
    ) -> None:
        self.details = tuple(sorted(set(problems), key=lambda p: p.sort_key))
        self.notes = tuple(sorted(set(notes), key=lambda p: p.sort_key))
        """Values left unresolved in offline validation, shown beside the problems."""
        self.secrets = frozenset(secrets)
        """Values resolved before the problems were found: register them before printing."""
        self.partial: Any = None
        """The ``LoadResult`` of the workspaces that built despite the problems (None when
        none did), so policy problems can be reported in the same run."""
        super().__init__([str(p) for p in self.details])
