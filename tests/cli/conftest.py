"""CLI fixtures: an emulator, a desired-state file pointing at it, and the env it needs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import ADMIN_TOKEN, EmulatorHandle
from tests.support import fleet_files
from tests.support.fleet_files import defaults_block, workspace

INDEX_TOKEN = "planted-Index-Token-7c1d"
LEDGER_KEY = "planted-Ledger-Key-55aa"

INDEX_URL = "https://ci:${env:INDEX_TOKEN}@artifactory.example.com/api/pypi/remote/simple"
EXTRA = "https://download.pytorch.org/whl/cpu"


@pytest.fixture
def planted() -> tuple[str, ...]:
    return (INDEX_TOKEN, LEDGER_KEY)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKGREPO_TEST_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("INDEX_TOKEN", INDEX_TOKEN)
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", LEDGER_KEY)


WriteDesired = Callable[..., Path]


@pytest.fixture
def write_desired(tmp_path: Path, emu: EmulatorHandle, cli_env: None) -> WriteDesired:
    """``write_desired(names, extra={...}, repositories={...})``: ``pkgrepo.yaml`` for these
    workspaces of ``emu``, one wave each in order; ``extra`` is added to every workspace,
    ``repositories`` to the defaults' repositories."""

    def write(
        names: tuple[str, ...] = ("dev", "prod"),
        extra: Mapping[str, Any] | None = None,
        repositories: Mapping[str, Any] | None = None,
    ) -> Path:
        members = {
            name: workspace(emu.host(name), wave=wave, **(extra or {}))
            for wave, name in enumerate(names)
        }
        block = defaults_block(
            "PKGREPO_TEST_TOKEN",
            index_url=INDEX_URL,
            extra_index_urls=[EXTRA],
            **(repositories or {}),
        )
        return fleet_files.write_desired(tmp_path / "pkgrepo.yaml", members, defaults=block)

    return write
