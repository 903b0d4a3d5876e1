"""Fixtures for loader tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.config.loading import WriteFile


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """``write(text)`` writes dedented YAML to ``tmp_path/pkgrepo.yaml`` and returns the path."""

    def _write(text: str | bytes, name: str = "pkgrepo.yaml") -> Path:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write
