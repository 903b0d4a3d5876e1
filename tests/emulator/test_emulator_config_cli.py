"""Configuration files and the ``pkgrepo emulator serve`` command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest

from reconciler.cli import main
from reconciler.emulator import CONFIG_EXAMPLE, EmulatorConfigError, OneShotFailure, load_config


def test_the_documented_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text(CONFIG_EXAMPLE)
    config = load_config(path)
    directory = config.directory()
    alice = directory.authenticate("dapi-alice")
    assert alice is not None and alice.groups == {"data-eng", "users"} and not alice.is_admin
    bot = directory.authenticate("dapi-ci-bot")
    assert bot is not None and bot.kind == "service_principal" and bot.is_admin
    admin = directory.authenticate("dapi-emulator-admin")
    assert admin is not None and admin.is_admin
    assert directory.knows("data-scientists") and not directory.knows("nobody")
    prod = config.settings("prod-eu")
    assert prod.workspace_id == "1234567890123456"
    assert prod.faults.rate_limit_rps == 10 and prod.faults.late_acl_seconds == 2
    assert prod.faults.one_shot == (OneShotFailure("secrets/acls/put", nth=2, status=503),)
    assert config.settings("elsewhere") == config.workspace_defaults


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("principals: [{name: a, tokenz: [x]}]", "unknown field"),
        ("workspaces: {w: {faults: {error_rate: 2}}}", "error_rate"),
        ("principals: [{name: a, tokens: [t]}, {name: b, tokens: [t]}]", "also given"),
        ("principals: [{name: a, type: robot}]", "type must be"),
        ("workspaces: [1, 2", "not valid YAML"),
        ("colour: blue", "unknown field"),
    ],
)
def test_invalid_config_files_are_explained(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(EmulatorConfigError, match=problem):
        load_config(path)


def test_default_tokens_can_be_switched_off(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"default_tokens": false, "principals": [{"name": "x", "tokens": ["t"]}]}')
    directory = load_config(path).directory()
    assert directory.authenticate("dapi-emulator-admin") is None
    assert directory.authenticate("t") is not None


def test_help_teaches_hosts_tokens_and_the_config_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["emulator", "serve", "--help"]) == 0
    text = capsys.readouterr().out
    for expected in (
        "/<workspace-name>",
        "dapi-emulator-admin",
        "dapi-emulator-user",
        "notebook_context",
        "rate_limit_rps",
        "principals:",
    ):
        assert expected in text


def test_serve_runs_logs_persists_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text(
        "workspace_defaults: {rest_get: refused}\nworkspaces: {nb: {notebook_context: true}}\n"
    )
    state = tmp_path / "state.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "emulator",
            "serve",
            "--port",
            "0",
            "--config",
            str(config),
            "--state",
            str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        assert "dapi-emulator-admin" in line
        client = WorkspaceClient(host=match.group(1) + "/nb", token="dapi-emulator-admin")
        client.secrets.create_scope("s")
        client.secrets.put_secret("s", "k", string_value="top-secret-value")
        assert client.secrets.get_secret("s", "k").value == "dG9wLXNlY3JldC12YWx1ZQ=="
        root = WorkspaceClient(host=match.group(1), token="dapi-emulator-admin")
        root.secrets.create_scope("s")
        root.secrets.put_secret("s", "k", string_value="top-secret-value")
        with pytest.raises(BadRequest):
            root.secrets.get_secret("s", "k")
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "POST /nb/api/2.0/secrets/put 200" in err
    assert "top-secret-value" not in err and "dG9wLXNlY3JldC12YWx1ZQ" not in err
    saved = json.loads(state.read_text())["workspaces"]["nb"]["secrets"]["scopes"]
    assert [scope["name"] for scope in saved] == ["s"]
