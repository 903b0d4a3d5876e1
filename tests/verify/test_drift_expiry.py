"""A pip-cert that expires within the warning window is reported per workspace in drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorHandle
from tests.pem import make_cert
from tests.support.cli import run_cli
from tests.support.fleet_files import defaults_block, workspace, write_desired


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", "planted-Ledger-Key-0b7e21")
    monkeypatch.setenv("PKGREPO_TEST_TOKEN", "dapi-emulator-admin")


def test_drift_names_each_workspace_whose_pip_cert_expires_soon(
    capsys: pytest.CaptureFixture[str], emu: EmulatorHandle, tmp_path: Path
) -> None:
    (tmp_path / "soon.pem").write_text(make_cert("Soon CA", days=12))
    (tmp_path / "later.pem").write_text(make_cert("Later CA", days=400))
    members = {
        name: workspace(emu.host(name), repositories={"cert": {"file": f"{name}.pem"}})
        for name in ("soon", "later")
    }
    path = write_desired(
        tmp_path / "pkgrepo.yaml", members, defaults=defaults_block("PKGREPO_TEST_TOKEN")
    )
    assert run_cli(capsys, "apply", str(path), "--auto-approve", "--skip-verify")[0] == 0
    code, out, _ = run_cli(capsys, "drift", str(path), "--format", "json")
    assert code == 0
    rows = {ws["workspace"]: ws for ws in json.loads(out)["workspaces"]}
    (warning,) = rows["soon"]["warnings"]
    assert warning.startswith("pip-cert: certificate 1 (CN=Soon CA) expires on")
    assert "in 11 days" in warning or "in 12 days" in warning
    assert rows["later"]["warnings"] == []
    for fmt in ("text", "markdown", "junit"):
        code, out, _ = run_cli(capsys, "drift", str(path), "--format", fmt)
        assert code == 0
        assert "CN=Soon CA" in out and "(soon)" in out, fmt
        assert "Later CA" not in out, fmt
