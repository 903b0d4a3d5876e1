"""Errors about the desired-state file name fields and types, never values or what a file
holds: ``validate`` runs in CI logs anyone on the team can read.

Before: the "quote it if it is text" hint echoed ``auth: {token: 123456789012345678}``, an
unknown-field error repeated a URL with credentials pasted as a key, ``{file: ...}`` read
``/proc/self/environ`` and ``../git-credentials`` through a symlink, and described the
file's content ("contains a control character at character 16").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler import config
from reconciler.cli import main
from tests.config.loading import WriteFile, problems

HEAD = "version: 1\nworkspaces:\n  dev:\n    host: https://dev.example.com\n"
NUMERIC_TOKEN = "123456789012345678"
PASTED_PASSWORD = "PastedPw-9c2Xq7"
CREDENTIALS = "https://git:GitCred-Planted-77a1@github.com\n"


def test_a_numeric_token_is_not_echoed(write: WriteFile) -> None:
    path = write(HEAD + f"    auth: {{token: {NUMERIC_TOKEN}}}\n")
    found = problems(path)
    assert found and all(NUMERIC_TOKEN not in line for line in found), found
    assert any("quote it if it is text" in line for line in found), found


def test_a_url_pasted_as_a_key_is_not_echoed(write: WriteFile) -> None:
    path = write(
        HEAD + f'    "https://ci:{PASTED_PASSWORD}@idx.example.com/simple": 1\n'
        f'    repositories: {{"AKCp8jQ3vRt6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0": x}}\n'
        f"    acls: {{AKCp8jQ3vRt6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0: READ, alice@example.com: READX}}\n"
    )
    found = problems(path)
    text = "\n".join(found)
    assert PASTED_PASSWORD not in text and 'AKCp8jQ3vRt6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0"]' not in text
    assert "AKCp8jQ3vRt6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0:" not in text
    assert 'workspaces.dev["****"]: unknown field (its name is not shown' in text, text
    # principal names and permissions are not secrets: they are shown
    assert "'READX'" in text and "alice@example.com" in text


def test_a_duplicate_key_that_looks_like_a_token_is_not_echoed(write: WriteFile) -> None:
    key = "Tok3nAbcDef9Ghi2Jkl5Mno8"
    path = write(HEAD + f"    labels: {{{key}: a, {key}: b}}\n")
    text = "\n".join(problems(path))
    assert key not in text and "duplicate key '****'" in text, text


def test_validate_cli_echoes_no_value(write: WriteFile, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        HEAD
        + f"    auth: {{token: {NUMERIC_TOKEN}}}\n"
        + f'    "https://ci:{PASTED_PASSWORD}@idx.example.com/simple": 1\n'
    )
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert NUMERIC_TOKEN not in out + err and PASTED_PASSWORD not in out + err
    assert "Traceback" not in out + err


def test_files_outside_the_folder_are_refused_after_links(write: WriteFile, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "git-credentials").write_text(CREDENTIALS)
    (repo / "index.txt").symlink_to("../git-credentials")
    (repo / "certs").mkdir()
    (repo / "certs" / "ca.pem").write_text("not a certificate")
    (repo / "inside.txt").symlink_to("certs/ca.pem")  # a link within the folder is fine
    desired = repo / "pkgrepo.yaml"
    desired.write_text(
        HEAD
        + "    repositories:\n"
        + "      index_url: {file: index.txt}\n"
        + "      extra_index_urls: [{file: ../git-credentials}, {file: /proc/self/environ}]\n"
        + "      cert: {file: inside.txt}\n"
    )
    found = problems(desired)
    text = "\n".join(found)
    assert "GitCred-Planted" not in text and "control character" not in text
    assert "at character" not in text
    for name in ("index.txt", "../git-credentials", "/proc/self/environ"):
        assert f"file {name} is outside {repo}, the desired-state file's folder" in text, text
    assert "inside.txt" not in text  # read; its content is the cert check's business
    # the explicit way to allow another folder
    desired.write_text(HEAD + "    repositories:\n      index_url: {file: index.txt}\n")
    result = config.load(desired, {"PKGREPO_FILE_ROOTS": f"/nonexistent{os.pathsep}{tmp_path}"})
    assert result.desired.workspaces[0].secrets["pip-index-url"].plaintext == CREDENTIALS.strip()
    assert "GitCred-Planted-77a1" in "".join(result.secrets)  # registered as a secret


def test_a_file_content_problem_does_not_describe_the_content(
    write: WriteFile, tmp_path: Path
) -> None:
    (tmp_path / "index.txt").write_bytes(b"https://x.example.com/\x00GitCred-Planted\n")
    (tmp_path / "bin.pem").write_bytes(b"\xff\xfeSecretBytes")
    path = write(
        HEAD + "    repositories:\n      index_url: {file: index.txt}\n"
        "      cert: {file: bin.pem}\n"
    )
    assert problems(path) == [
        "pkgrepo.yaml:6:18: workspaces.dev.repositories.index_url: file index.txt does not "
        "hold a valid URL (its content is not shown)",
        "pkgrepo.yaml:7:13: workspaces.dev.repositories.cert: file bin.pem does not hold a "
        "valid PEM text (its content is not shown)",
    ]
