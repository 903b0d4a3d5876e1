"""``pkgrepo validate`` with no credentials at hand (a laptop, a fork's pull request, the
pre-commit hook): missing environment variables are notes, not errors, and everything that
does not need their values is still checked. ``--resolve`` requires every value."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from reconciler.cli import main

FILE = """
version: 1
defaults:
  auth: {token: {env: OFFLINE_DATABRICKS_TOKEN}}
  repositories:
    index_url: "https://${env:OFFLINE_USER}:${env:OFFLINE_TOKEN}@artifactory.example.com/simple"
    extra_index_urls: [{env: OFFLINE_MIRROR}]
  acls: {admins: MANAGE, users: READ}
workspaces:
  a: {host: https://a.example.com}
  b: {host: https://b.example.com}
"""
VARIABLES = ("OFFLINE_DATABRICKS_TOKEN", "OFFLINE_USER", "OFFLINE_TOKEN", "OFFLINE_MIRROR")


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def write(here: Path, text: str) -> str:
    (here / "pkgrepo.yaml").write_text(textwrap.dedent(text).lstrip())
    return "pkgrepo.yaml"


def test_unset_variables_are_notes(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", write(here, FILE)]) == 0
    out, err = capsys.readouterr()
    for name in VARIABLES:
        assert name in out
    notes = out.splitlines()
    assert all(" note [unresolved] " in line for line in notes), out
    # inherited values are reported once, at the defaults, naming who needs them
    assert len(notes) == 3
    assert "(needed by workspaces a, b)" in notes[0]
    assert "valid, 2 workspaces, 3 value(s) checked without" in err


def test_empty_variables_count_as_unset(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork's pull request in GitHub Actions sees secrets as empty strings, not unset."""
    for name in VARIABLES:
        monkeypatch.setenv(name, "")
    assert main(["validate", write(here, FILE)]) == 0
    assert "OFFLINE_TOKEN is empty" in capsys.readouterr().out


def test_resolve_requires_every_value(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--resolve", write(here, FILE)]) == 1
    out, _ = capsys.readouterr()
    for name in VARIABLES:
        assert name in out
    assert "note" not in out


def test_resolve_passes_with_every_value(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in VARIABLES:
        monkeypatch.setenv(name, f"value-of-{name.lower()}")
    monkeypatch.setenv("OFFLINE_MIRROR", "https://mirror.example.com/simple")
    assert main(["validate", "--resolve", write(here, FILE)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "value-of" not in err


def test_shape_around_a_placeholder_is_still_checked(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline, the scheme, host and literal credentials around ``${env:...}`` are checked."""
    text = FILE.replace("https://", "http://").replace("${env:OFFLINE_TOKEN}", "hunter22")
    assert main(["validate", write(here, text)]) == 1
    out, err = capsys.readouterr()
    assert "[https-only]" in out
    assert "[no-literal-credentials]" in out
    assert "hunter22" not in out + err


def test_an_env_sourced_token_is_not_taken_for_a_literal(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", write(here, FILE)]) == 0
    assert "no-literal-credentials" not in capsys.readouterr().out


def test_json_lists_notes(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--format", "json", write(here, FILE)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is True
    notes = [f for f in document["findings"] if f["severity"] == "note"]
    assert {n["check"] for n in notes} == {"unresolved"}
    assert len(notes) == 3


def test_notes_shown_beside_errors(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = FILE.replace("  b: {host: https://b.example.com}", "  b: {host: 12}")
    assert main(["validate", write(here, text)]) == 1
    out, _ = capsys.readouterr()
    assert "workspaces.b.host" in out
    assert "note [unresolved]" in out


def test_plan_still_requires_every_value(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", write(here, FILE)]) == 1
    _, err = capsys.readouterr()
    assert "OFFLINE_TOKEN is not set" in err or "OFFLINE_TOKEN are not set" in err


def _one_workspace(index_url: str = "", extra: str = "", cert: str = "") -> str:
    lines = ["version: 1", "workspaces:", "  a:", "    host: https://a.example.com"]
    lines += ["    acls: {admins: MANAGE, users: READ}", "    repositories:"]
    if index_url:
        lines.append(f"      index_url: {index_url}")
    if extra:
        lines.append(f"      extra_index_urls: {extra}")
    if cert:
        lines.append(f"      cert: {cert}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "url",
    [
        '"https://index\\u200b.example.com/${env:OFFLINE_TOKEN}/simple"',
        '"https:///${env:OFFLINE_TOKEN}"',
        '"https://index.example.com:99999/${env:OFFLINE_TOKEN}"',
    ],
    ids=["control-character", "no-host", "bad-port"],
)
def test_offline_never_passes_what_resolve_rejects(
    url: str, here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is wrong around a placeholder is the file's own problem, offline as online."""
    write(here, _one_workspace(index_url=url))
    assert main(["validate", "pkgrepo.yaml"]) == 1
    monkeypatch.setenv("OFFLINE_TOKEN", "abcdefgh")
    assert main(["validate", "--resolve", "pkgrepo.yaml"]) == 1


def test_a_set_variable_is_checked_when_its_neighbour_is_missing(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFLINE_USER", "ci-bot\n")
    url = '"https://${env:OFFLINE_USER}:${env:OFFLINE_TOKEN}@index.example.com/simple"'
    assert main(["validate", write(here, _one_workspace(index_url=url))]) == 1
    out, err = capsys.readouterr()
    assert "ci-bot" not in out + err


def test_a_certificate_from_a_missing_variable_is_not_checked(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No stand-in is ever handed to the certificate checks: a fork's PR stays green."""
    text = _one_workspace(cert='"${env:OFFLINE_CA_PEM}"')
    assert main(["validate", write(here, text)]) == 0
    out, _ = capsys.readouterr()
    assert "cert-valid" not in out and "OFFLINE_CA_PEM" in out


def test_stand_ins_never_collide(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = (
        '["https://${env:MIRROR_A}.example.com/simple", '
        '"https://${env:MIRRORA}.example.com/simple", "https://${env:mirror_a}.example.com/s"]'
    )
    assert main(["validate", write(here, _one_workspace(extra=extra))]) == 0
    assert "extra-urls-unique" not in capsys.readouterr().out


def test_a_token_with_a_blank_is_masked_in_every_piece(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message that quotes a URL up to its first blank shows no part of the token."""
    monkeypatch.setenv("OFFLINE_TOKEN", "q7Zr2Lm9Px4 ")
    url = '"https://pypi.example.com/${env:OFFLINE_TOKEN}/acme/"'
    assert main(["validate", "--resolve", write(here, _one_workspace(index_url=url))]) == 1
    out, err = capsys.readouterr()
    assert "q7Zr2Lm9Px4" not in out + err
