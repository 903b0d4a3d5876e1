"""What ``export`` writes from live values: tokens in a URL's path, host or fragment become
``${env:...}`` placeholders like user info, and only certificates go to certificate files.

Before: a path token was written into the YAML as is, and a ``pip-cert`` holding a private key
was copied verbatim to ``certs/<ws>-pip-cert.pem`` (mode 0644) with a ``cert-valid`` waiver.
"""

from __future__ import annotations

import datetime as dt
import re
import stat
from pathlib import Path

import pytest
import yaml

from reconciler.core.model import SCOPE
from reconciler.edges import export
from reconciler.emulator import EmulatorHandle
from tests.export.test_export_build import expand, live, load, target
from tests.pem import make_cert
from tests.support.cli import run_cli
from tests.support.fleet_files import TOKEN_ENV, client

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
PATH_TOKEN = "AKCp8jQ3vRt6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0"
HOST_TOKEN = "Tok3nAbcDef9Ghi2Jkl5"
PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPlantedPrivateKeyBody\n"
    "-----END PRIVATE KEY-----\n"
)


def test_tokens_in_path_host_and_fragment_become_placeholders() -> None:
    names = export._Names()
    url = f"https://{HOST_TOKEN}.mirror.example.com:8443/api/pypi/{PATH_TOKEN}/simple#FragTok5Hj8Kw3Nv1x"
    template = export.url_template(url, names, "ws", "WS_INDEX", "ws's pip-index-url")
    assert template is not None
    assert template == (
        "https://${env:WS_INDEX_HOST_TOKEN}.mirror.example.com:8443/api/pypi/"
        "${env:WS_INDEX_PATH_TOKEN}/simple#${env:WS_INDEX_FRAGMENT}"
    )
    env = {v.name: v.value for v in names.variables.values() if v.value}
    assert expand(template, env) == url
    plain = "https://nexus.example.com/repository/pypi-proxy/simple"
    assert export.url_template(plain, names, "ws", "P", "x") == plain


def test_a_live_path_token_is_exported_as_a_placeholder_and_validates(tmp_path: Path) -> None:
    secrets: dict[str, str | None] = {
        "pip-index-url": f"https://artifactory.example.com/api/pypi/{PATH_TOKEN}/simple"
    }
    built = export.build([(target("prod"), live(secrets))], now=NOW)
    assert PATH_TOKEN not in built.text
    loaded = load(tmp_path, built)
    (ws,) = loaded.desired.workspaces
    assert ws.secrets["pip-index-url"].plaintext == secrets["pip-index-url"]


@pytest.mark.parametrize("bundle", ["key-only", "cert-and-key", "junk"])
def test_only_certificates_are_exported(tmp_path: Path, bundle: str) -> None:
    cert = make_cert("Export Root")
    value = {
        "key-only": PRIVATE_KEY,
        "cert-and-key": cert + PRIVATE_KEY,
        "junk": "hunter2-not-a-cert",
    }[bundle]
    built = export.build([(target("ws"), live({"pip-cert": value}))], now=NOW)
    written = built.text + "".join(built.files.values())
    assert "PlantedPrivateKeyBody" not in written and "hunter2" not in written
    data = yaml.safe_load(built.text)["workspaces"]["ws"]
    assert "waivers" not in data
    if bundle == "cert-and-key":
        assert built.files == {"certs/ws-pip-cert.pem": cert}
        assert any("only its certificates were exported" in note for note in built.notes)
    else:
        assert built.files == {}
        assert data["ignore"] == ["pip-cert"]
        assert any("holds no valid certificate and was left out" in note for note in built.notes)
    load(tmp_path, built)


@pytest.mark.usefixtures("env")
def test_export_cli_writes_certificates_owner_only(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = make_cert("CLI Root")
    ws = client(emu, "a")
    ws.secrets.create_scope(SCOPE)
    ws.secrets.put_secret(SCOPE, "pip-cert", string_value=cert + PRIVATE_KEY)
    emu.set_notebook_context("a", True)
    out = tmp_path / "exported" / "pkgrepo.yaml"
    code, stdout, stderr = run_cli(
        capsys, "export", "--host", emu.host("a"), "--token-env", TOKEN_ENV, "--output", str(out)
    )
    assert code == 0, stdout + stderr
    pem = out.parent / "certs" / "a-pip-cert.pem"
    assert pem.read_text() == cert
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert "only its certificates were exported" in stderr
    assert not re.search("PlantedPrivateKeyBody", stdout + stderr + out.read_text())
