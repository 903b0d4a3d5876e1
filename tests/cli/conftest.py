"""CLI fixtures: an emulator, a desired-state file pointing at it, and the env it needs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.emulator import ADMIN_TOKEN, EmulatorHandle

INDEX_TOKEN = "planted-Index-Token-7c1d"
LEDGER_KEY = "planted-Ledger-Key-55aa"

TEMPLATE = """\
version: 1
defaults:
  auth: {{token: {{env: PKGREPO_TEST_TOKEN}}}}
  repositories:
    index_url: "https://ci:${{env:INDEX_TOKEN}}@artifactory.example.com/api/pypi/remote/simple"
    extra_index_urls: [{extras}]
  acls: {{admins: MANAGE, users: READ}}
workspaces:
{workspaces}
"""


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
    def write(
        names: tuple[str, ...] = ("dev", "prod"),
        extras: str = "https://download.pytorch.org/whl/cpu",
        extra: str = "",
    ) -> Path:
        lines = []
        for wave, name in enumerate(names):
            lines.append(f"  {name}:\n    host: {emu.host(name)}\n    wave: {wave}\n{extra}")
        path = tmp_path / "pkgrepo.yaml"
        path.write_text(TEMPLATE.format(extras=extras, workspaces="".join(lines)))
        return path

    return write
