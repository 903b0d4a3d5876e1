"""Fidelity tests: each row of FIDELITY.md, through the real databricks-sdk and the command
line, against an emulator configured the way the real service behaves.

- ``world(**settings)``: an emulator whose workspaces have the given ``WorkspaceSettings``.
- ``desired(...)``: writes a desired-state file for some of its workspaces.
- ``pkgrepo(...)``: one command-line run (exit code, stdout, stderr), scanned for planted
  secrets (``LEAKS``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import (
    ADMIN_TOKEN,
    EmulatorConfig,
    EmulatorHandle,
    WorkspaceSettings,
)
from tests.support.emulator import StartEmulator
from tests.support.fleet_files import STANDARD_ACLS, defaults_block, workspace, write_desired

SCOPE = "databricks-package-management"
INDEX_TOKEN = "planted-Fidelity-Token-31c7"
LEDGER_KEY = "planted-Fidelity-Ledger-Key-9d02"
VAULT_SECRET = "planted-Vault-Password-6be1"
INDEX = "https://ci:${env:INDEX_TOKEN}@artifactory.example.com/api/pypi/remote/simple"
EXTRA = "https://download.pytorch.org/whl/cpu"
LEAKS = (INDEX_TOKEN, LEDGER_KEY, VAULT_SECRET)
GROUPS = ("data-eng", "contractors")


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, no_ambient_databricks: None) -> None:
    monkeypatch.setenv("DATABRICKS_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("INDEX_TOKEN", INDEX_TOKEN)
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", LEDGER_KEY)


World = Callable[..., EmulatorHandle]


@pytest.fixture
def world(start_emulator: StartEmulator) -> World:
    """``world(ws1=WorkspaceSettings(...), ...)``: start an emulator whose workspaces behave
    as given (the harness's ``start_emulator``: stopped at the end of the test)."""

    def start(**settings: WorkspaceSettings) -> EmulatorHandle:
        return start_emulator(EmulatorConfig(groups=GROUPS, workspaces=settings))

    return start


Desired = Callable[..., str]


@pytest.fixture
def desired(tmp_path: Path) -> Desired:
    """``desired(emu, *names, extra={name: {...}}, acls={...})``: ``pkgrepo.yaml`` for these
    workspaces of ``emu``, with generous safety limits; ``extra`` adds fields to a workspace."""

    def write(
        emu: EmulatorHandle,
        *names: str,
        extra: Mapping[str, Mapping[str, Any]] | None = None,
        acls: Mapping[str, str] = STANDARD_ACLS,
    ) -> str:
        members = {name: workspace(emu.host(name), **(extra or {}).get(name, {})) for name in names}
        block = defaults_block(
            "DATABRICKS_TOKEN", index_url=INDEX, extra_index_urls=[EXTRA], acls=acls
        )
        safety = {"max_update_share": 1.0, "max_delete_workspaces": 100}
        return str(write_desired(tmp_path / "pkgrepo.yaml", members, defaults=block, safety=safety))

    return write


@pytest.fixture
def planted() -> tuple[str, ...]:
    return LEAKS


def writes(emu: EmulatorHandle, workspace: str, endpoint: str) -> int:
    """How many ``POST /api/2.0/secrets/<endpoint>`` requests a workspace received."""
    path = f"/api/2.0/secrets/{endpoint}"
    return sum(
        n for (method, p), n in emu.requests(workspace).items() if (method, p) == ("POST", path)
    )
