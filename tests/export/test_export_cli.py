"""``pkgrepo export`` end to end: configure workspaces with pkgrepo apply, export them through
the real databricks-sdk, and plan the exported file: nothing may be left to change, and no
planted credential may appear in any output or in the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from databricks.sdk.service.workspace import AclPermission

from reconciler.core.model import SCOPE
from reconciler.emulator import ADMIN_TOKEN, EmulatorHandle, ServiceModes
from tests.pem import make_cert
from tests.support.cli import run_cli
from tests.support.fleet_files import (
    BAD_TOKEN_ENV,
    INDEX_TEMPLATE,
    PLANTED,
    PLANTED_USER,
    TOKEN_ENV,
    apply,
    client,
    workspace_yaml,
    write_desired,
)

pytestmark = pytest.mark.usefixtures("env")
EXTRA_WITH_CREDS = (
    "https://${env:TEST_INDEX_USER}:${env:TEST_INDEX_TOKEN}"
    "@artifactory.example.com/api/pypi/extra/simple"
)


def configure(emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Two workspaces set up through pkgrepo apply: creds in URLs, a cert, custom ACLs."""
    (tmp_path / "ca.pem").write_text(make_cert("Export Test Root"))
    a = workspace_yaml(
        emu,
        "a",
        extra=("https://download.pytorch.org/whl/cpu", EXTRA_WITH_CREDS),
        acls={"admins": "MANAGE", "users": "READ", "data-eng": "WRITE"},
    )
    a["repositories"]["cert"] = {"file": "ca.pem"}
    b = workspace_yaml(emu, "b", extra=())
    path = write_desired(tmp_path / "source.yaml", {"a": a, "b": b})
    apply(capsys, path)
    return path


def variables(stdout: str) -> list[str]:
    return re.findall(r"^  ([A-Z][A-Z0-9_]*)  ", stdout, re.MULTILINE)


def export_hosts(
    emu: EmulatorHandle, capsys: pytest.CaptureFixture[str], out: Path, *extra: str
) -> tuple[int, str, str]:
    return run_cli(
        capsys,
        "export",
        "--host",
        f"a={emu.host('a')}",
        "--host",
        emu.host("b"),
        "--token-env",
        TOKEN_ENV,
        "--output",
        str(out),
        *extra,
    )


def test_round_trip_inside_a_notebook(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(emu, tmp_path, capsys)
    for ws in ("a", "b"):
        emu.set_notebook_context(ws, True)
    out = tmp_path / "exported" / "pkgrepo.yaml"
    code, stdout, stderr = export_hosts(emu, capsys, out)
    assert code == 0, stdout + stderr
    names = variables(stdout)
    assert names == ["A_INDEX_USER", "A_INDEX_TOKEN", "B_INDEX_USER", "B_INDEX_TOKEN"]
    text = out.read_text()
    cert_file = tmp_path / "exported" / "certs" / "a-pip-cert.pem"
    for where in (stdout, stderr, text, cert_file.read_text()):
        assert PLANTED not in where and PLANTED_USER not in where
    document = yaml.safe_load(text)
    a = document["workspaces"]["a"]
    assert a["host"] == emu.host("a") and a["auth"] == {"token": {"env": TOKEN_ENV}}
    assert a["repositories"]["index_url"] == INDEX_TEMPLATE.replace("TEST_", "A_")
    assert a["repositories"]["cert"] == {"file": "certs/a-pip-cert.pem"}
    assert a["acls"]["data-eng"] == "WRITE"
    assert "extra_index_urls" not in document["workspaces"]["b"]["repositories"]
    for name in names:
        monkeypatch.setenv(name, PLANTED_USER if name.endswith("_USER") else PLANTED)
    code, stdout, stderr = run_cli(capsys, "validate", str(out))
    assert code == 0, stdout + stderr
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")  # plan compares values directly
    code, stdout, stderr = run_cli(capsys, "plan", str(out), "--detailed-exitcode", "--quiet")
    assert code == 0, stdout + stderr
    assert "No changes." in stdout
    assert PLANTED not in stdout + stderr


def test_outside_a_notebook_values_come_from_env_and_the_ledger_agrees(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(emu, tmp_path, capsys)
    for name in ("a", "b"):  # where secrets/get is refused, as the REST reference says
        emu.set_modes(name, ServiceModes(rest_get="refused"))
    out = tmp_path / "pkgrepo.yaml"
    code, stdout, stderr = export_hosts(emu, capsys, out)
    assert code == 0, stdout + stderr
    assert variables(stdout) == ["A_PIP_INDEX_URL", "A_PIP_CERT", "B_PIP_INDEX_URL"]
    assert "warning: a: pip-index-url could not be read" in stderr
    text = out.read_text()
    assert (
        "# pip-index-url could not be read: `secrets/get` answers only inside a Databricks" in text
    )
    assert yaml.safe_load(text)["workspaces"]["a"]["repositories"]["index_url"] == {
        "env": "A_PIP_INDEX_URL"
    }
    # several extra URLs in one stored string: left alone (`ignore:`), not a variable
    assert yaml.safe_load(text)["workspaces"]["a"]["ignore"] == ["pip-extra-index-urls"]
    index = f"https://{PLANTED_USER}:{PLANTED}@artifactory.example.com/api/pypi/remote/simple"
    monkeypatch.setenv("A_PIP_INDEX_URL", index)
    monkeypatch.setenv("B_PIP_INDEX_URL", index)
    monkeypatch.setenv("A_PIP_CERT", (tmp_path / "ca.pem").read_text())
    # the ledger apply wrote vouches for the values taken from the environment
    code, stdout, stderr = run_cli(capsys, "plan", str(out), "--detailed-exitcode", "--quiet")
    assert code == 0, stdout + stderr
    assert "No changes." in stdout and "warning" not in stdout + stderr
    monkeypatch.setenv("B_PIP_INDEX_URL", index.replace(PLANTED, "another-token"))
    code, stdout, _ = run_cli(capsys, "plan", str(out), "--detailed-exitcode", "--quiet")
    assert code == 2 and "b/secret/pip-index-url" in stdout  # a wrong value does show


def test_from_a_desired_state_file_keeps_host_auth_and_labels(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = configure(emu, tmp_path, capsys)
    document = yaml.safe_load(source.read_text())
    document["workspaces"]["a"]["labels"] = {"env": "prod"}
    document["workspaces"]["a"]["wave"] = 2
    document["workspaces"]["b"]["auth"] = {"token": {"file": "token.txt"}}
    (tmp_path / "token.txt").write_text(ADMIN_TOKEN)
    source.write_text(yaml.safe_dump(document))
    client(emu, "a").secrets.put_acl(SCOPE, "contractors", AclPermission.MANAGE)
    out = tmp_path / "sub" / "found.yaml"
    code, stdout, stderr = run_cli(capsys, "export", "--from", str(source), "--output", str(out))
    assert code == 0, stdout + stderr
    exported = yaml.safe_load(out.read_text())["workspaces"]
    assert exported["a"]["labels"] == {"env": "prod"} and exported["a"]["wave"] == 2
    assert exported["a"]["auth"] == {"token": {"env": TOKEN_ENV}}
    assert exported["a"]["acls"]["contractors"] == "MANAGE"  # as found
    assert exported["b"]["auth"] == {"token": {"file": "../token.txt"}}
    code, stdout, stderr = run_cli(
        capsys, "export", "--from", str(source), "-w", "b", "--output", str(out), "--force"
    )
    assert code == 0, stdout + stderr
    assert list(yaml.safe_load(out.read_text())["workspaces"]) == ["b"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "nothing to export"),
        (("--host", "http://x/a", "--profile", "p", "--token-env", "T"), "not both"),
        (("--host", "http://x/a", "--token-env", "UNSET_VARIABLE_XYZ"), "is not set"),
        (("--host", "x.example.com"), "expected [NAME=]URL"),
        (("--host", "http://x/a", "--host", "http://y/a"), "is given twice"),
        (
            ("--host", "http://x/a", "--token-env", "A", "--token-env", "B", "--token-env", "C"),
            "once per --host",
        ),
        (("--workspace", "a", "--host", "http://x/a"), "choose workspaces of --from"),
    ],
)
def test_user_mistakes_are_short_messages(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: tuple[str, ...], message: str
) -> None:
    code, _, stderr = run_cli(capsys, "export", "--output", str(tmp_path / "o.yaml"), *argv)
    assert code == 1
    assert message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "o.yaml").exists()


def test_an_unreadable_workspace_writes_nothing(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.yaml"
    code, _, stderr = run_cli(
        capsys,
        "export",
        "--host",
        emu.host("a"),
        "--host",
        emu.host("b"),
        "--token-env",
        TOKEN_ENV,
        "--token-env",
        BAD_TOKEN_ENV,
        "--output",
        str(out),
    )
    assert code == 1
    assert "b: list secrets: authentication failed" in stderr  # a refused token
    assert not out.exists()


def test_an_existing_file_needs_force(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.yaml"
    out.write_text("keep me")
    code, _, stderr = run_cli(
        capsys, "export", "--host", emu.host("a"), "--token-env", TOKEN_ENV, "--output", str(out)
    )
    assert code == 1 and "--force" in stderr and out.read_text() == "keep me"
    code, _, _ = run_cli(
        capsys,
        "export",
        "--host",
        emu.host("a"),
        "--token-env",
        TOKEN_ENV,
        "--output",
        str(out),
        "--force",
    )
    assert code == 0
    assert yaml.safe_load(out.read_text())["workspaces"]["a"]["ensure"] == "absent"


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "export", "--help")
    assert code == 0
    for words in ("Examples:", "--token-env", "--from", "${env:NAME}", "certs/"):
        assert words in out
