"""``pkgrepo validate`` and ``pkgrepo schema`` as a user runs them, through ``cli.main``."""

from __future__ import annotations

import base64
import datetime as dt
import json
import textwrap
import urllib.parse
from pathlib import Path

import pytest

from reconciler import config, schemas
from reconciler.cli import main
from tests.pem import make_pem

CLEAN = """
version: 1
workspaces:
  dev:
    host: http://127.0.0.1:8020/dev
    auth: {token: {env: VALIDATE_TOKEN}}
    repositories:
      index_url: https://pypi.example.com/simple
    acls: {admins: MANAGE, users: READ}
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a temp directory, so output names ``pkgrepo.yaml`` as a user would see it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VALIDATE_TOKEN", "dapi-validate-cli")
    return tmp_path


def write(here: Path, text: str) -> str:
    (here / "pkgrepo.yaml").write_text(textwrap.dedent(text).lstrip())
    return "pkgrepo.yaml"


def test_clean_file(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", write(here, CLEAN)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "pkgrepo.yaml: valid, 1 workspace\n"


def test_warnings_do_not_fail(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    (here / "ca.pem").write_text(make_pem("Soon CA", soon))
    write(
        here,
        CLEAN + "    ignore: []\n" + "  other:\n    host: https://o.example.com\n"
        "    acls: {admins: MANAGE}\n    repositories: {cert: {file: ca.pem}}\n",
    )
    assert main(["validate", "pkgrepo.yaml"]) == 0
    out, err = capsys.readouterr()
    (line,) = out.splitlines()
    assert line.startswith(
        "pkgrepo.yaml:13:26: warning [cert-expiring] other: certificate 1 (CN=Soon CA) expires on "
    )
    assert err == "pkgrepo.yaml: valid, 2 workspaces, 0 error(s), 1 warning(s)\n"


def test_policy_errors_fail(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        here,
        """
        version: 1
        workspaces:
          dev:
            host: https://dev.example.com
            repositories:
              index_url: http://pypi.example.com/simple
            acls: {admins: MANAGE, users: WRITE}
        """,
    )
    assert main(["validate", "pkgrepo.yaml"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "pkgrepo.yaml:6:18: error [https-only] dev: http://pypi.example.com/simple does not use "
        "https, so packages (and any credentials) travel in clear text; use https, or waive "
        "with `waivers: [{check: https-only, reason: ...}]`",
        "pkgrepo.yaml:7:35: error [users-read-only] dev: `users` gets WRITE, so every user of "
        "the workspace could change where packages come from; set `users: READ`",
    ]
    assert err == "pkgrepo.yaml: invalid, 1 workspace, 2 error(s), 0 warning(s)\n"


def test_json_document(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, CLEAN.replace("users: READ", "users: MANAGE"))
    assert main(["validate", "pkgrepo.yaml", "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "valid": False,
        "workspaces": 1,
        "findings": [
            {
                "file": "pkgrepo.yaml",
                "line": 8,
                "column": 35,
                "severity": "error",
                "check": "users-read-only",
                "workspace": "dev",
                "path": "workspaces.dev.acls.users",
                "message": "`users` gets MANAGE, so every user of the workspace could change "
                "where packages come from; set `users: READ`",
            }
        ],
    }
    write(here, CLEAN)
    assert main(["validate", "pkgrepo.yaml", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"valid": True, "workspaces": 1, "findings": []}


def test_invalid_file_prints_each_problem_on_its_own_line(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(here, "version: 1\nworkspaces:\n  dev:\n    hots: x\n    wave: -1\n")
    assert main(["validate", "pkgrepo.yaml"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "pkgrepo.yaml:4:5: workspaces.dev: missing required field 'host'",
        "pkgrepo.yaml:4:5: workspaces.dev.hots: unknown field 'hots'; did you mean 'host'?",
        "pkgrepo.yaml:5:11: workspaces.dev.wave: must be at least 0 (got -1)",
    ]
    assert err == "pkgrepo.yaml: invalid, 3 problems\n"
    assert main(["validate", "pkgrepo.yaml", "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is False and document["workspaces"] is None
    assert document["findings"][1] == {
        "file": "pkgrepo.yaml",
        "line": 4,
        "column": 5,
        "severity": "error",
        "check": "config",
        "workspace": "dev",
        "path": "workspaces.dev.hots",
        "message": "unknown field 'hots'; did you mean 'host'?",
    }


def test_missing_file(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "nope.yaml"]) == 1
    assert capsys.readouterr().out == (
        "nope.yaml:1:1: (file): cannot read the file: No such file or directory\n"
    )


PLANTED = {
    "PLANT_ENV_PASSWORD": "envPW-q8Zr2x",
    "PLANT_TOKEN": "dapi-planted-77Kd",
    "PLANT_BAD_URL": "https://bot:badurlPW-4Hs9@bad.example.com/sim ple",
}
FILE_PASSWORD = "filePW-x3Lp0m"


def _planted_file(here: Path, *, broken: bool) -> str:
    (here / "index-url").write_text(f"https://bot:{FILE_PASSWORD}@files.example.com/simple\n")
    tail = "{extra_index_urls: [{env: PLANT_BAD_URL}]}" if broken else "{}"
    return write(
        here,
        """
        version: 1
        workspaces:
          dev:
            host: https://dev.example.com
            auth: {token: {env: PLANT_TOKEN}}
            repositories:
              index_url: {file: index-url}
              extra_index_urls:
                - "http://bot:${env:PLANT_ENV_PASSWORD}@env.example.com/simple"
            acls: {users: WRITE}
          second:
            host: https://second.example.com
            repositories: TAIL
        """.replace("TAIL", tail),
    )


def _forms(value: str) -> set[str]:
    return {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        base64.b64encode(value.encode()).decode(),
        base64.urlsafe_b64encode(value.encode()).decode(),
    }


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("broken", [False, True])
def test_no_planted_secret_reaches_the_output(
    here: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    broken: bool,
) -> None:
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    path = _planted_file(here, broken=broken)
    # broken: a config error; else policy errors (https-only, users-read-only)
    assert main(["validate", path, "--format", fmt]) == 1
    out, err = capsys.readouterr()
    assert out  # something was reported
    shown = out + err
    secrets = [*PLANTED.values(), FILE_PASSWORD, "badurlPW-4Hs9"]
    for secret in secrets:
        for form in _forms(secret):
            assert form not in shown, (secret, form)
    if broken:
        assert "environment variable PLANT_BAD_URL contains white space (U+0020)" in out


def test_planted_secrets_are_absent_from_the_error_itself(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only scrubbed on output: the messages never held them."""
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(config.InvalidConfig) as caught:
        config.load(Path(_planted_file(here, broken=True)))
    text = str(caught.value)
    assert "PLANT_BAD_URL" in text
    for secret in [*PLANTED.values(), FILE_PASSWORD, "badurlPW-4Hs9"]:
        for form in _forms(secret):
            assert form not in text


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == schemas.load(schemas.DESIRED_STATE)


@pytest.mark.parametrize("name", schemas.NAMES)
def test_editor_schemas_match_the_shipped_ones(name: str) -> None:
    """``schemas/`` (what editors point at) holds exactly what the package ships."""
    editor_copy = Path(__file__).resolve().parents[2] / "schemas" / name
    assert editor_copy.read_text(encoding="utf-8") == schemas.text(name), (
        f"schemas/{name} differs from reconciler/schemas/{name}: copy the package's file over"
    )


def test_every_editor_schema_is_shipped() -> None:
    editor_dir = Path(__file__).resolve().parents[2] / "schemas"
    assert sorted(p.name for p in editor_dir.glob("*.json")) == sorted(schemas.NAMES)


@pytest.mark.parametrize("command", ["validate", "schema"])
def test_help_teaches_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "Examples:" in text
    assert f"pkgrepo {command}" in text
