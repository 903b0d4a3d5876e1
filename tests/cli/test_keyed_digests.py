"""Digests a plan shows are keyed with a secret, and literal tokens in a URL path are caught.

Before: a value that is not a certificate (a waived ``cert-valid``) was shown as an HMAC
keyed with the plan's public salt, and ``hunter2`` was recovered from it offline; and
``no-literal-credentials`` missed a token typed into an Artifactory path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.core.redact import HIDDEN
from reconciler.emulator import EmulatorHandle
from tests.cli.conftest import WriteDesired

GUESSES = ("password", "123456", "hunter2", "letmein", "changeme")
WAIVED = {"waivers": [{"check": "cert-valid", "reason": "a test of what is shown"}]}


def plan_json(capsys: pytest.CaptureFixture[str], path: Path) -> dict[str, object]:
    assert main(["plan", str(path), "--format", "json", "-q"]) == 0
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err
    document: dict[str, object] = json.loads(out)
    return document


def cert_after(document: dict[str, object]) -> str:
    workspaces = document["workspaces"]
    assert isinstance(workspaces, list)
    for change in workspaces[0]["changes"]:
        if change["address"].endswith("/secret/pip-cert"):
            return str(change["after"])
    raise AssertionError("no pip-cert change")


def test_a_shown_digest_cannot_be_reversed_with_the_plans_salt(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    monkeypatch: pytest.MonkeyPatch,
    emu: EmulatorHandle,
) -> None:
    monkeypatch.setenv("CERT_VALUE", "hunter2")
    path = write_desired(names=("dev",), extra=WAIVED, repositories={"cert": {"env": "CERT_VALUE"}})
    document = plan_json(capsys, path)
    shown = cert_after(document)
    assert shown.startswith("(not a certificate) hmac-sha256:"), shown
    salt = str(document["salt"])
    for guess in GUESSES:  # the offline attack: every guess under the public salt
        mac = hmac.new(salt.encode(), guess.encode(), hashlib.sha256).hexdigest()
        assert ("hmac-sha256:" + mac)[:24] not in shown, guess
    monkeypatch.delenv("PKGREPO_LEDGER_KEY")
    shown = cert_after(plan_json(capsys, path))
    assert shown == f"(not a certificate) {HIDDEN}"


def test_a_literal_token_in_the_path_is_refused(
    capsys: pytest.CaptureFixture[str], write_desired: WriteDesired, emu: EmulatorHandle
) -> None:
    token = "AKCp8jQ3vRt6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0"
    path = write_desired(names=("dev",))
    text = path.read_text()
    literal = text.replace(
        "https://ci:${env:INDEX_TOKEN}@artifactory.example.com/api/pypi/remote/simple",
        f"https://artifactory.example.com/api/pypi/{token}/simple",
    )
    assert literal != text
    path.write_text(literal)
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "no-literal-credentials" in out + err and token not in out + err
    assert "artifactory.example.com/api/pypi/****/simple" in out + err
    path.write_text(literal.replace(token, "${env:INDEX_TOKEN}"))
    assert main(["validate", str(path)]) == 0, capsys.readouterr()
