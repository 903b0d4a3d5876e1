"""``pkgrepo plan`` and ``pkgrepo apply`` as a user runs them, against the emulator."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient

from reconciler.emulator import ADMIN_TOKEN, EmulatorHandle
from tests.cli.conftest import INDEX_TOKEN, LEDGER_KEY, WriteDesired
from tests.support.cli import run_cli

SCOPE = "databricks-package-management"


def writes(emu: EmulatorHandle, ws: str) -> int:
    return sum(
        n
        for (method, path), n in emu.requests(ws).items()
        if method == "POST" and "/secrets/" in path
    )


def test_plan_exit_codes_follow_terraform(
    capsys: pytest.CaptureFixture[str], write_desired: WriteDesired
) -> None:
    path = write_desired()
    code, out, _ = run_cli(capsys, "plan", str(path), "--detailed-exitcode")
    assert code == 2
    assert "Plan: 10 to create, 0 to update, 0 to delete across 2 workspaces." in out
    assert "https://****@artifactory.example.com/api/pypi/remote/simple" in out
    assert run_cli(capsys, "plan", str(path))[0] == 0  # without the flag, changes are success
    assert run_cli(capsys, "apply", str(path), "--auto-approve")[0] == 0
    code, out, _ = run_cli(capsys, "plan", str(path), "--detailed-exitcode")
    assert code == 0 and "No changes." in out


def test_apply_off_a_terminal_needs_auto_approve(
    capsys: pytest.CaptureFixture[str], write_desired: WriteDesired, emu: EmulatorHandle
) -> None:
    code, _, err = run_cli(capsys, "apply", str(write_desired()))
    assert code == 1
    assert "--auto-approve" in err
    assert writes(emu, "dev") == 0 and writes(emu, "prod") == 0


def test_saved_plan_applies_as_reviewed_and_holds_no_secret(
    capsys: pytest.CaptureFixture[str], write_desired: WriteDesired, tmp_path: Path
) -> None:
    path = write_desired()
    plan_file = tmp_path / "plan.json"
    assert run_cli(capsys, "plan", str(path), "--out", str(plan_file))[0] == 0
    text = plan_file.read_text()
    assert INDEX_TOKEN not in text and LEDGER_KEY not in text
    assert stat.S_IMODE(plan_file.stat().st_mode) == 0o600
    code, out, _ = run_cli(capsys, "apply", str(plan_file))
    assert code == 0, out
    assert "2 applied" in out
    assert run_cli(capsys, "plan", str(path), "--detailed-exitcode")[0] == 0


def test_stale_plan_is_refused(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    path = write_desired()
    plan_file = tmp_path / "plan.json"
    run_cli(capsys, "plan", str(path), "--out", str(plan_file))
    WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN).secrets.create_scope(SCOPE)
    emu.reset_counts()
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 1
    assert "dev: the workspace changed since the plan was made (stale plan)" in err
    assert writes(emu, "dev") == 0 and writes(emu, "prod") == 0


def test_plan_whose_desired_values_changed_is_refused(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    emu: EmulatorHandle,
) -> None:
    path = write_desired()
    plan_file = tmp_path / "plan.json"
    run_cli(capsys, "plan", str(path), "--out", str(plan_file))
    monkeypatch.setenv("INDEX_TOKEN", "rotated-after-review")
    emu.reset_counts()
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 1
    assert "desired values differ from the reviewed plan: pip-index-url" in err
    assert "rotated-after-review" not in err
    assert writes(emu, "dev") == 0


def test_tampered_plan_file_is_refused(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    path = write_desired()
    plan_file = tmp_path / "plan.json"
    run_cli(capsys, "plan", str(path), "--out", str(plan_file))
    document = json.loads(plan_file.read_text())
    digests = document["plan"]["workspaces"][0]["desired_digests"]
    digests["pip-index-url"] = "hmac-sha256:" + "0" * 64
    plan_file.write_text(json.dumps(document))
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 1 and "the plan file was altered after it was signed" in err
    plan_file.write_text('{"kind": "pkgrepo-planfile", "plan": [1, 2]}')
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 1 and "the plan file is not signed" in err
    assert writes(emu, "dev") == 0


def test_destroying_a_scope_needs_allow_destroy(
    capsys: pytest.CaptureFixture[str], write_desired: WriteDesired, emu: EmulatorHandle
) -> None:
    path = write_desired(names=("dev",))
    assert run_cli(capsys, "apply", str(path), "--auto-approve")[0] == 0
    path.write_text(path.read_text() + "    ensure: absent\n")
    code, _, err = run_cli(capsys, "apply", str(path), "--auto-approve")
    assert code == 1 and "--allow-destroy" in err
    code, _, _ = run_cli(capsys, "apply", str(path), "--auto-approve", "--allow-destroy")
    assert code == 0
    client = WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN)
    assert SCOPE not in {s.name for s in client.secrets.list_scopes()}


def test_apply_json_results_and_plan_formats(
    capsys: pytest.CaptureFixture[str], write_desired: WriteDesired
) -> None:
    path = write_desired()
    code, out, _ = run_cli(capsys, "plan", str(path), "--format", "json", "--quiet")
    assert code == 0 and json.loads(out)["summary"]["create"] == 10
    code, out, _ = run_cli(capsys, "plan", str(path), "--format", "markdown", "--quiet")
    assert code == 0 and "|" in out
    code, out, _ = run_cli(
        capsys, "apply", str(path), "--auto-approve", "--format", "json", "--quiet"
    )
    assert code == 0
    results = json.loads(out)  # stdout holds only the document; the plan went to stderr
    assert [w["result"] for w in results["workspaces"]] == ["applied", "applied"]


def test_a_workspace_that_cannot_be_planned_fails_alone(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    path = write_desired(names=("dev", "prod"))
    text = path.read_text().replace(emu.host("prod"), "http://127.0.0.1:9/prod")
    path.write_text(text.replace("    wave: 1\n", "    wave: 0\n"))
    code, out, _ = run_cli(capsys, "apply", str(path), "--auto-approve", "--timeout", "1")
    assert code == 1
    assert "! could not be read: its changes are unknown: list secrets: no answer" in out
    assert out.count("list secrets: no answer from http://127.0.0.1:9/prod") == 1
    assert "prod: could not be read (see the plan above)" in out
    assert "dev        0     applied" in out  # the other workspace of the wave went ahead
    assert writes(emu, "dev") > 0


def test_unreachable_workspace_is_one_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cli_env: None
) -> None:
    path = tmp_path / "pkgrepo.yaml"
    path.write_text(
        "version: 1\nworkspaces:\n  gone:\n    host: http://127.0.0.1:9/gone\n"
        "    auth: {token: {env: PKGREPO_TEST_TOKEN}}\n    acls: {admins: MANAGE}\n"
    )
    code, out, err = run_cli(capsys, "plan", str(path), "--quiet", "--timeout", "1")
    assert code == 1
    assert "workspace gone (http://127.0.0.1:9/gone)" in out
    assert "list secrets: no answer from http://127.0.0.1:9/gone within 1s" in out
    assert out.count("no answer from") == 1 and "no answer from" not in err
    assert "error: 1 of 1 workspace(s) could not be planned" in err


def test_a_plan_reviewed_for_another_host_is_refused(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    path = write_desired(names=("prod",))
    plan_file = tmp_path / "plan.json"
    run_cli(capsys, "plan", str(path), "--out", str(plan_file))
    path.write_text(path.read_text().replace(emu.host("prod"), emu.host("prod-b")))
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 1
    assert f"prod: the workspace host changed from {emu.host('prod')} to " in err
    assert writes(emu, "prod-b") == 0


def test_plan_files_need_the_ledger_key(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_desired()
    monkeypatch.delenv("PKGREPO_LEDGER_KEY")
    code, _, err = run_cli(capsys, "plan", str(path), "--out", str(tmp_path / "plan.json"))
    assert code == 1 and "--out needs PKGREPO_LEDGER_KEY" in err
    assert not (tmp_path / "plan.json").exists()


def test_a_token_in_the_index_url_path_stays_out_of_plan_files_and_ledgers(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    path = write_desired(names=("dev",))
    path.write_text(
        path.read_text().replace(
            "https://ci:${env:INDEX_TOKEN}@artifactory.example.com/api/pypi/remote/simple",
            "https://pypi.fury.io/${env:INDEX_TOKEN}/acme/",
        )
    )
    plan_file = tmp_path / "plan.json"
    assert run_cli(capsys, "plan", str(path), "--out", str(plan_file))[0] == 0
    assert INDEX_TOKEN not in plan_file.read_text()
    assert run_cli(capsys, "apply", str(plan_file))[0] == 0
    ledger = emu.files("dev")
    stored = WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN).workspace.export(
        "/pkgrepo/ledger-databricks-package-management.json"
    )
    import base64

    assert INDEX_TOKEN not in base64.b64decode(stored.content or "").decode()
    assert ledger is not None


def test_plan_runs_the_policy_checks_validate_runs(
    capsys: pytest.CaptureFixture[str], write_desired: WriteDesired, emu: EmulatorHandle
) -> None:
    path = write_desired(names=("dev",))
    path.write_text(path.read_text().replace("users: READ", "users: MANAGE"))
    code, _, err = run_cli(capsys, "plan", str(path))
    assert code == 1
    assert "error [users-read-only] dev:" in err
    assert sum(emu.requests("dev").values()) == 0  # refused before reaching the workspace
