"""Desired-state files for the tests: the one writer every folder uses.

A file is a document of ``version``, optional ``verify``, ``safety``, ``defaults`` and
``discover`` blocks, and ``workspaces`` (name -> mapping). ``write_desired`` writes one as
YAML the way a person would (keys in the order given, short mappings and lists inline, no
line wrapped) or as JSON; the parts are built with ``defaults_block``, ``workspace`` and
``token_auth``. A folder keeps only its own values (tokens, planted secrets, waves, labels)
and, if it likes, a thin fixture that calls this writer.

``workspace_yaml`` describes one complete workspace of ``emu`` (its token taken from the
environment) and ``env`` puts the tokens, index credentials and ledger key in the
environment: the drift and export tests use them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
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
STANDARD_ACLS: Mapping[str, str] = {"admins": "MANAGE", "users": "READ"}
"""The grants most files ask for: admins manage, every user reads."""


# -- the writer ----------------------------------------------------------------------------------


def token_auth(env: str) -> dict[str, Any]:
    """``auth`` by a token read from the environment variable ``env``."""
    return {"token": {"env": env}}


def repositories_block(
    index_url: Any = None, extra_index_urls: Sequence[Any] | None = None, cert: Any = None
) -> dict[str, Any]:
    """A ``repositories`` mapping with the fields given (``None`` leaves a field out)."""
    repositories: dict[str, Any] = {}
    if index_url is not None:
        repositories["index_url"] = index_url
    if extra_index_urls is not None:
        repositories["extra_index_urls"] = list(extra_index_urls)
    if cert is not None:
        repositories["cert"] = cert
    return repositories


def defaults_block(
    token_env: str,
    *,
    index_url: Any = None,
    extra_index_urls: Sequence[Any] | None = None,
    cert: Any = None,
    acls: Mapping[str, str] | None = STANDARD_ACLS,
    **more: Any,
) -> dict[str, Any]:
    """A ``defaults`` block: auth by ``token_env``, the repositories given (a value may be a
    string, ``{env: ...}`` or ``{file: ...}``), ``acls``, then any other field."""
    repositories = repositories_block(index_url, extra_index_urls, cert)
    block: dict[str, Any] = {"auth": token_auth(token_env)}
    if repositories:
        block["repositories"] = repositories
    if acls is not None:
        block["acls"] = dict(acls)
    block.update(more)
    return block


def workspace(
    host: str,
    *,
    labels: Mapping[str, str] | None = None,
    wave: int | None = None,
    **more: Any,
) -> dict[str, Any]:
    """One workspace entry: its host, then labels, wave and any other field given."""
    entry: dict[str, Any] = {"host": host}
    if labels is not None:
        entry["labels"] = dict(labels)
    if wave is not None:
        entry["wave"] = wave
    entry.update(more)
    return entry


def desired_document(
    workspaces: Mapping[str, Mapping[str, Any]] | None,
    *,
    defaults: Mapping[str, Any] | None = None,
    safety: Mapping[str, Any] | None = None,
    verify: Mapping[str, Any] | None = None,
    discover: Mapping[str, Any] | None = None,
    version: int = 1,
) -> dict[str, Any]:
    """The document, blocks in the order a person writes them; ``workspaces=None`` leaves
    them out (a fleet found by ``discover`` alone)."""
    document: dict[str, Any] = {"version": version}
    blocks = (
        ("verify", verify),
        ("safety", safety),
        ("defaults", defaults),
        ("discover", discover),
    )
    for key, block in blocks:
        if block is not None:
            document[key] = dict(block)
    if workspaces is not None:
        document["workspaces"] = {name: dict(entry) for name, entry in workspaces.items()}
    return document


def write_desired(
    path: Path,
    workspaces: Mapping[str, Mapping[str, Any]] | None,
    *,
    defaults: Mapping[str, Any] | None = None,
    safety: Mapping[str, Any] | None = None,
    verify: Mapping[str, Any] | None = None,
    discover: Mapping[str, Any] | None = None,
    as_json: bool = False,
) -> Path:
    """Write a desired-state file with these workspaces (and blocks) to ``path``."""
    document = desired_document(
        workspaces, defaults=defaults, safety=safety, verify=verify, discover=discover
    )
    return write_document(path, document, as_json=as_json)


def write_document(path: Path, document: Mapping[str, Any], *, as_json: bool = False) -> Path:
    """Write a whole document (``desired_document``'s) to ``path``, as YAML or JSON."""
    text = json.dumps(document, indent=2) + "\n" if as_json else desired_yaml(document)
    path.write_text(text, encoding="utf-8")
    return path


def desired_yaml(document: Mapping[str, Any]) -> str:
    """The document as a person writes it: the document, ``defaults``, ``discover``,
    ``workspaces`` and each workspace one key a line; anything deeper inline when it holds
    only plain values (``acls: {admins: MANAGE, users: READ}``); keys in the order given;
    no line wrapped."""
    shaped = _Block(document)
    for key in ("defaults", "discover"):
        if isinstance(shaped.get(key), Mapping):
            shaped[key] = _Block(shaped[key])
    if "workspaces" in shaped:
        shaped["workspaces"] = _Block(
            {
                name: _Block(entry) if isinstance(entry, Mapping) else entry
                for name, entry in shaped["workspaces"].items()
            }
        )
    return yaml.dump(
        shaped,
        Dumper=_Dumper,
        default_flow_style=None,
        sort_keys=False,
        width=1 << 20,
        allow_unicode=True,
    )


class _Block(dict[str, Any]):
    """A mapping written one key a line, however plain its values."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_block(dumper: yaml.SafeDumper, data: _Block) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=False)


_Dumper.add_representer(_Block, _represent_block)


# -- the drift and export tests' workspaces --------------------------------------------------------


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
    return {
        "host": emu.host(name),
        "auth": token_auth(token_env),
        "repositories": repositories_block(index, extra),
        "acls": dict(acls if acls is not None else STANDARD_ACLS),
    }


def apply(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> None:
    code, out, err = run_cli(capsys, "apply", str(path), "--auto-approve", "--quiet", *extra)
    assert code == 0, out + err


def client(emu: EmulatorHandle, workspace: str) -> WorkspaceClient:
    return WorkspaceClient(host=emu.host(workspace), token=ADMIN_TOKEN)
