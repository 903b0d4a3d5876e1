"""A pip-cert that does not validate its index (check ``cert-validates-index``) is an error
at verify time that a workspace, or the defaults, may waive with a reason, like the policy
checks: the waived failure is shown in every plan format and no longer stops the apply.
Other failures (credentials refused, an index that does not answer) are never waived."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from databricks.sdk import WorkspaceClient

from reconciler import schemas
from reconciler.core.model import SCOPE
from reconciler.emulator import ADMIN_TOKEN, EmulatorHandle
from reconciler.emulator.private_index import IndexHandle, make_ca
from tests.support.cli import run_cli
from tests.support.leaks import Scanner
from tests.verify.conftest import INDEX_PASSWORD, WRONG_PASSWORD, WriteFile

pytestmark = pytest.mark.verify
REASON = "the corporate proxy re-signs this index; pip runs behind it on the clusters"
WAIVE = [{"check": "cert-validates-index", "reason": REASON}]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", "planted-Ledger-Key-77c1d0")


@pytest.fixture
def other_ca_pem() -> str:
    """A CA that did not sign the index's certificate."""
    pem: str = make_ca().cert_pem.bytes().decode()
    return pem


def scope_exists(emu: EmulatorHandle, workspace: str) -> bool:
    client = WorkspaceClient(host=emu.host(workspace), token=ADMIN_TOKEN)
    return any(s.name == SCOPE for s in client.secrets.list_scopes())


def test_a_workspace_that_waives_it_goes_through_and_one_that_does_not_is_refused(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    index: IndexHandle,
    write_file: WriteFile,
    other_ca_pem: str,
) -> None:
    hosts = {"dev": emu.host("dev"), "prod": emu.host("prod")}
    path = write_file(index.url, ca_pem=other_ca_pem, hosts=hosts, waivers={"dev": WAIVE})

    code, out, err = run_cli(capsys, "plan", str(path))
    assert code == 1
    assert "[failed] #1" in out
    assert f"waived cert-validates-index for dev: {REASON}" in out
    assert "package index check failed for 1 workspace(s) (prod)" in err
    assert "waive it per workspace: `waivers: [{check: cert-validates-index, reason: ...}]`" in err
    assert "package index check #1 failed and is waived cert-validates-index for dev" in err

    code, out, err = run_cli(capsys, "apply", str(path), "--auto-approve")
    assert code == 1
    assert not scope_exists(emu, "dev") and not scope_exists(emu, "prod")

    code, out, err = run_cli(capsys, "plan", str(path), "--format", "junit")
    assert code == 1
    cases = {c.get("name"): c for c in ET.fromstring(out).iter("testcase")}
    assert cases["dev"].find("failure") is None
    assert f"waived cert-validates-index for dev: {REASON}" in (
        cases["dev"].findtext("system-out") or ""
    )
    prod = cases["prod"].find("failure")
    assert prod is not None and prod.get("type") == "cert-validates-index"

    code, out, err = run_cli(capsys, "verify", str(path), "--format", "json")
    assert code == 1
    document = json.loads(out)
    jsonschema.validate(document, schemas.load(schemas.VERIFY))
    assert document["failed_workspaces"] == ["prod"]
    (result,) = document["results"]
    assert result["outcome"] == "failed"
    assert result["waived"] == [
        {"workspace": "dev", "check": "cert-validates-index", "reason": REASON}
    ]


def test_a_waiver_in_the_defaults_lets_the_apply_through_and_shows_in_every_format(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    index: IndexHandle,
    write_file: WriteFile,
    other_ca_pem: str,
) -> None:
    hosts = {"dev": emu.host("dev"), "prod": emu.host("prod")}
    path = write_file(index.url, ca_pem=other_ca_pem, hosts=hosts, default_waivers=WAIVE)
    assert run_cli(capsys, "validate", str(path))[0] == 0

    code, out, err = run_cli(capsys, "plan", str(path))
    assert code == 0, out + err
    assert "[waived] #1" in out
    assert f"waived cert-validates-index for dev, prod: {REASON}" in out
    assert "1 waived" in out

    code, out, err = run_cli(capsys, "plan", str(path), "--format", "markdown")
    assert code == 0
    assert "⚠️ waived" in out and "waived cert-validates-index for dev, prod" in out

    code, out, err = run_cli(capsys, "plan", str(path), "--format", "json")
    assert code == 0
    verification = json.loads(out)["verification"]
    jsonschema.validate(verification, schemas.load(schemas.VERIFY))
    assert verification["ok"] is True
    assert verification["results"][0]["outcome"] == "waived"
    assert {w["workspace"] for w in verification["results"][0]["waived"]} == {"dev", "prod"}

    code, out, err = run_cli(capsys, "plan", str(path), "--format", "junit")
    assert code == 0
    root = ET.fromstring(out)
    assert root.get("failures") == "0"
    (url_case,) = [c for c in root.iter("testcase") if c.get("classname") == "pkgrepo.verify"]
    assert "waived cert-validates-index" in (url_case.findtext("system-out") or "")

    code, out, err = run_cli(capsys, "apply", str(path), "--auto-approve")
    assert code == 0, out + err
    assert "failed and is waived cert-validates-index for dev, prod" in err
    assert scope_exists(emu, "dev") and scope_exists(emu, "prod")
    scanner = Scanner({"index password": INDEX_PASSWORD})
    assert scanner.scan("plan/apply", out + err) == []


def test_a_waiver_does_not_excuse_refused_credentials(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    index: IndexHandle,
    write_file: WriteFile,
) -> None:
    path = write_file(
        index.url_with(password=WRONG_PASSWORD),
        ca_pem=index.ca_pem,
        hosts={"dev": emu.host("dev")},
        default_waivers=WAIVE,
    )
    code, out, err = run_cli(capsys, "plan", str(path))
    assert code == 1
    assert "credentials refused" in out
    assert "waived" not in out and "waive it" not in err
    assert not scope_exists(emu, "dev")


def test_a_hostile_waiver_reason_stays_text_in_every_format(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    index: IndexHandle,
    write_file: WriteFile,
    other_ca_pem: str,
) -> None:
    control = [{"check": "cert-validates-index", "reason": "ok\u001b[2J"}]
    path = write_file(
        index.url, ca_pem=other_ca_pem, hosts={"dev": emu.host("dev")}, waivers={"dev": control}
    )
    code, out, err = run_cli(capsys, "plan", str(path), "--format", "junit")
    assert code == 1 and out == ""
    assert "pkgrepo.yaml:" in err and "control character U+001B" in err
    assert "Traceback" not in err and "\x1b" not in err

    hostile = "]]></system-out><failure/> | <img src=x> `code` *b* [l](http://x) " * 500
    waive = [{"check": "cert-validates-index", "reason": hostile}]
    path = write_file(
        index.url, ca_pem=other_ca_pem, hosts={"dev": emu.host("dev")}, waivers={"dev": waive}
    )
    for fmt in ("text", "markdown", "json", "junit"):
        code, out, err = run_cli(capsys, "plan", str(path), "--format", fmt)
        assert code == 0, err[-2000:]
        if fmt == "junit":
            root = ET.fromstring(out)
            assert root.get("failures") == "0"
            assert hostile.strip() in ET.tostring(root, encoding="unicode", method="text")
        if fmt == "markdown":
            assert "<img" not in out and "<failure" not in out
            assert "&lt;img src=x&gt;" in out
        if fmt == "json":
            waived = json.loads(out)["verification"]["results"][0]["waived"]
            assert waived == [
                {"workspace": "dev", "check": "cert-validates-index", "reason": hostile}
            ]


def test_a_waiver_of_the_check_is_known_to_validate(
    capsys: pytest.CaptureFixture[str], write_file: WriteFile, index: IndexHandle
) -> None:
    path = write_file(index.url, ca_pem=index.ca_pem, waivers={"dev": WAIVE})
    code, out, err = run_cli(capsys, "validate", str(path))
    assert code == 0, out + err
    path.write_text(path.read_text().replace("cert-validates-index", "cert-validates-indexes"))
    code, out, err = run_cli(capsys, "validate", str(path))
    assert code == 1
    assert "cert-validates-index" in out + err
