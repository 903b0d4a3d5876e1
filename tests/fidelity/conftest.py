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

import pytest

from reconciler.emulator import (
    ADMIN_TOKEN,
    EmulatorConfig,
    EmulatorHandle,
    WorkspaceSettings,
)
from tests.support.emulator import StartEmulator

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


def desired_text(
    emu: EmulatorHandle,
    names: tuple[str, ...],
    *,
    extra: Mapping[str, str] | None = None,
    acls: str = "{admins: MANAGE, users: READ}",
) -> str:
    lines = [
        "version: 1",
        "safety: {max_update_share: 1.0, max_delete_workspaces: 100}",
        "defaults:",
        "  auth: {token: {env: DATABRICKS_TOKEN}}",
        "  repositories:",
        f'    index_url: "{INDEX}"',
        f"    extra_index_urls: [{EXTRA}]",
        f"  acls: {acls}",
        "workspaces:",
    ]
    for name in names:
        lines += [f"  {name}:", f"    host: {emu.host(name)}"]
        for line in (extra or {}).get(name, "").splitlines():
            lines.append(f"    {line}")
    return "\n".join(lines) + "\n"


Desired = Callable[..., str]


@pytest.fixture
def desired(tmp_path: Path) -> Desired:
    def write(emu: EmulatorHandle, *names: str, **kwargs: object) -> str:
        path = tmp_path / "pkgrepo.yaml"
        path.write_text(desired_text(emu, names, **kwargs))  # type: ignore[arg-type]
        return str(path)

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
