"""Loading helpers shared by the loader tests: what a user sees, minus the temp directory."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from reconciler import config

WriteFile = Callable[..., Path]

HEADER = "version: 1\nworkspaces:\n"


def problems(path: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """The problem lines for ``path``, with its directory left out (``pkgrepo.yaml:L:C: ...``)."""
    with pytest.raises(config.InvalidConfig) as caught:
        config.load(path, env or {})
    prefix = f"{path.parent}/"
    return [line.replace(prefix, "") for line in caught.value.problems]


def load(path: Path, env: Mapping[str, str] | None = None) -> config.LoadResult:
    return config.load(path, env or {})
