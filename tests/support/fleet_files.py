"""Desired-state files for the emulator's workspaces, and the environment they read.

``workspace_yaml`` describes one workspace of ``emu`` (its token taken from the
environment), ``write_desired`` writes a file of them; ``env`` puts the tokens, index
credentials and ledger key in the environment. Used by the drift and export tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient

from reconciler.emulator import ADMIN_TOKEN, EmulatorHandle
from tests.support.cli import run_cli

GROUPS = ("data-eng", "contractors", "team")
TOKEN_ENV = "PKGREPO_TEST_TOKEN"
BAD_TOKEN_ENV = "PKGREPO_TEST_BAD_TOKEN"
LEDGER_KEY = "test-ledger-key-5b0c8e1f9d2a4c6e"
PLANTED_USER = "ci-bot-7d1e"
PLANTED = "planted-Secret-9f8e7d6c"
"""A credential inside the index URL: it must never show up in any output."""
INDEX_TEMPLATE = (
    "https://${env:TEST_INDEX_USER}:${env:TEST_INDEX_TOKEN}"
    "@artifactory.example.com/api/pypi/remote/simple"
)
INDEX = f"https://{PLANTED_USER}:{PLANTED}@artifactory.example.com/api/pypi/remote/simple"
EXTRA = "https://download.pytorch.org/whl/cpu"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tokens, index credentials and the ledger key in the environment; not in a notebook."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(TOKEN_ENV, ADMIN_TOKEN)
    monkeypatch.setenv(BAD_TOKEN_ENV, "dapi-not-a-valid-token")
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", LEDGER_KEY)
    monkeypatch.setenv("TEST_INDEX_USER", PLANTED_USER)
    monkeypatch.setenv("TEST_INDEX_TOKEN", PLANTED)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def workspace_yaml(
    emu: EmulatorHandle,
    name: str,
    *,
    index: str | None = INDEX_TEMPLATE,
    extra: Sequence[str] = (EXTRA,),
    acls: Mapping[str, str] | None = None,
    token_env: str = TOKEN_ENV,
) -> dict[str, Any]:
    repositories: dict[str, Any] = {"extra_index_urls": list(extra)}
    if index is not None:
        repositories["index_url"] = index
    return {
        "host": emu.host(name),
        "auth": {"token": {"env": token_env}},
        "repositories": repositories,
        "acls": dict(acls if acls is not None else {"admins": "MANAGE", "users": "READ"}),
    }


def write_desired(path: Path, workspaces: Mapping[str, Mapping[str, Any]]) -> Path:
    """A desired-state file (JSON is YAML) with these workspaces."""
    document = {"version": 1, "workspaces": dict(workspaces)}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def apply(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> None:
    code, out, err = run_cli(capsys, "apply", str(path), "--auto-approve", "--quiet", *extra)
    assert code == 0, out + err


def client(emu: EmulatorHandle, workspace: str) -> WorkspaceClient:
    return WorkspaceClient(host=emu.host(workspace), token=ADMIN_TOKEN)
