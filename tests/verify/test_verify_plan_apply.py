"""The verify step of `plan` and `apply`: on by default for the repository values that change,
probing each distinct combination once, refusing to roll out an index that does not answer."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler import schemas
from reconciler.commands import verify as verify_cmd
from reconciler.core.model import SCOPE
from reconciler.edges.probe import Prober, observe
from reconciler.emulator import ADMIN_TOKEN, EmulatorHandle
from reconciler.emulator.private_index import IndexHandle, running_index
from tests.support.cli import run_cli
from tests.verify.conftest import INDEX_PASSWORD, WRONG_PASSWORD, WriteFile

pytestmark = pytest.mark.verify
LEDGER_KEY = "planted-Ledger-Key-0b7e21"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", LEDGER_KEY)


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[Prober]:
    """Every prober the commands make, to count what they probed."""
    made: list[Prober] = []

    def factory(project: str, timeout: float) -> Prober:
        made.append(Prober(project=project, timeout=timeout))
        return made[-1]

    monkeypatch.setattr(verify_cmd, "new_prober", factory)
    return made


def scope_exists(emu: EmulatorHandle, workspace: str) -> bool:
    from databricks.sdk import WorkspaceClient

    client = WorkspaceClient(host=emu.host(workspace), token=ADMIN_TOKEN)
    return any(s.name == SCOPE for s in client.secrets.list_scopes())


def test_a_failing_index_stops_the_apply_and_the_fix_goes_through(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    index: IndexHandle,
    write_file: WriteFile,
    probes: list[Prober],
) -> None:
    hosts = {"dev": emu.host("dev"), "prod": emu.host("prod")}
    wrong = write_file(index.url_with(password=WRONG_PASSWORD), ca_pem=index.ca_pem, hosts=hosts)

    code, out, err = run_cli(capsys, "plan", str(wrong), "--out", str(wrong.parent / "plan.json"))
    assert code == 1
    assert "credentials refused" in out
    assert "apply would refuse it" in err
    assert not (wrong.parent / "plan.json").exists()

    code, out, err = run_cli(capsys, "apply", str(wrong), "--auto-approve")
    assert code == 1
    assert "package index check failed for 2 workspace(s) (dev, prod); nothing was applied" in err
    assert not scope_exists(emu, "dev")
    assert [p.probes for p in probes] == [1, 1]  # two workspaces, one combination

    good = write_file(index.url, ca_pem=index.ca_pem, hosts=hosts)
    code, out, err = run_cli(capsys, "apply", str(good), "--auto-approve")
    assert code == 0, out + err
    assert "[ok] #1" in out
    assert scope_exists(emu, "dev")

    made = len(probes)
    code, out, err = run_cli(capsys, "plan", str(good))
    assert code == 0
    assert "Package index verification" not in out  # nothing changes, nothing to probe
    assert len(probes) == made
    for planted in (INDEX_PASSWORD, WRONG_PASSWORD, LEDGER_KEY):
        assert planted not in out + err


def test_skip_verify_applies_with_a_warning(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    index: IndexHandle,
    write_file: WriteFile,
) -> None:
    wrong = write_file(
        index.url_with(password=WRONG_PASSWORD), ca_pem=index.ca_pem, hosts={"dev": emu.host("dev")}
    )
    code, out, err = run_cli(capsys, "apply", str(wrong), "--auto-approve", "--skip-verify")
    assert code == 0, out + err
    assert "warning: --skip-verify: the package indexes were not probed" in err
    assert scope_exists(emu, "dev")


def test_a_saved_plan_is_verified_again_when_applied(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    tmp_path: Path,
    ca: Any,
    write_file: WriteFile,
) -> None:
    with running_index(tmp_path / "index", password=INDEX_PASSWORD, ca=ca) as index:
        path = write_file(index.url, ca_pem=index.ca_pem, hosts={"dev": emu.host("dev")})
        code, out, err = run_cli(capsys, "plan", str(path), "--out", str(tmp_path / "plan.json"))
        assert code == 0, out + err
    # The index went away between review and apply.
    code, out, err = run_cli(capsys, "apply", str(tmp_path / "plan.json"))
    assert code == 1
    assert "cannot connect: connection refused" in out
    assert "nothing was applied" in err
    assert not scope_exists(emu, "dev")


def test_plan_json_carries_the_verification_document(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    index: IndexHandle,
    write_file: WriteFile,
) -> None:
    path = write_file(index.url, ca_pem=index.ca_pem, hosts={"dev": emu.host("dev")})
    code, out, _ = run_cli(capsys, "plan", str(path), "--format", "json")
    assert code == 0
    document = json.loads(out)
    jsonschema.validate(document, schemas.load(schemas.PLAN))
    jsonschema.validate(document["verification"], schemas.load(schemas.VERIFY))
    assert document["verification"]["ok"] is True
    code, out, _ = run_cli(capsys, "plan", str(path), "--format", "markdown")
    assert "### Package index verification" in out
    assert "✅ ok" in out


def test_a_thousand_workspaces_sharing_three_combinations_make_three_probes(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    tmp_path: Path,
    ca: Any,
    write_file: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
    probes: list[Prober],
) -> None:
    from contextlib import ExitStack

    with ExitStack() as stack:
        indexes = [
            stack.enter_context(running_index(tmp_path / f"i{n}", password=f"pw-{n}-x7", ca=ca))
            for n in range(3)
        ]
        for n, handle in enumerate(indexes):
            monkeypatch.setenv(f"INDEX_URL_{n}", handle.url)
        path = write_file(
            indexes[0].url,
            ca_pem=ca.cert_pem.bytes().decode(),
            hosts={f"ws-{i:04d}": emu.host(f"ws-{i:04d}") for i in range(1000)},
            extra={
                f"ws-{i:04d}": {"repositories": {"index_url": {"env": f"INDEX_URL_{i % 3}"}}}
                for i in range(1000)
            },
        )
        observed: list[str] = []

        def counting(url: str, **kwargs: Any) -> Any:
            observed.append(url)
            return observe(url, **kwargs)

        def factory(project: str, timeout: float) -> Prober:
            probes.append(Prober(project=project, timeout=timeout, observe=counting))
            return probes[-1]

        monkeypatch.setattr(verify_cmd, "new_prober", factory)
        code, out, err = run_cli(capsys, "plan", str(path), "--quiet", "-p", "64")
    assert code == 0, err[-2000:]
    assert probes[-1].probes == 3
    assert len(observed) == 3
    assert "verify: 3 combination(s) probed, 3 ok, 0 failed" in out


def test_plan_junit_fails_the_workspaces_whose_index_is_refused(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    index: IndexHandle,
    write_file: WriteFile,
    tmp_path: Path,
) -> None:
    from tests.support.leaks import Scanner

    hosts = {"dev": emu.host("dev"), "prod": emu.host("prod")}
    wrong = write_file(index.url_with(password=WRONG_PASSWORD), ca_pem=index.ca_pem, hosts=hosts)
    code, out, err = run_cli(capsys, "plan", str(wrong), "--format", "junit")
    assert code == 1
    assert "apply would refuse it" in err
    root = ET.fromstring(out)
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"pkgrepo plan", "pkgrepo verify"}
    plan_cases = {c.get("name"): c for c in suites["pkgrepo plan"].iter("testcase")}
    for name in ("dev", "prod"):
        failed = plan_cases[name].find("failure")
        assert failed is not None and failed.get("type") == "credentials"
        assert "credentials refused (HTTP 403)" in (failed.get("message") or "")
        assert f"+ {name}/secret/pip-index-url" in (failed.text or "")
    (verify_case,) = suites["pkgrepo verify"].iter("testcase")
    assert verify_case.find("failure") is not None
    assert root.get("failures") == "3"
    scanner = Scanner({"index password": INDEX_PASSWORD, "wrong password": WRONG_PASSWORD})
    assert scanner.scan("plan --format junit", out + err) == []
    assert "****@127.0.0.1" in out

    good = write_file(index.url, ca_pem=index.ca_pem, hosts=hosts)
    code, out, err = run_cli(capsys, "plan", str(good), "--format", "junit")
    assert code == 0, err
    root = ET.fromstring(out)
    assert root.get("failures") == "0"
    dev = next(c for c in root.iter("testcase") if c.get("name") == "dev")
    assert "+ dev/secret/pip-index-url: https://****@127.0.0.1" in (
        dev.findtext("system-out") or ""
    )
    assert scanner.scan("plan --format junit", out + err) == []

    code, out, err = run_cli(
        capsys, "plan", str(good), "--out", str(tmp_path / "plan.json"), "--quiet"
    )
    assert code == 0, err
    code, out, err = run_cli(
        capsys,
        "show",
        str(tmp_path / "plan.json"),
        str(tmp_path / "plan.json"),
        "--format",
        "junit",
    )
    assert code == 0, err
    root = ET.fromstring(out)
    assert [s.get("name") for s in root.iter("testsuite")] == [
        f"pkgrepo plan {tmp_path / 'plan.json'}"
    ] * 2
    assert root.get("tests") == "6"


def test_plan_junit_masks_tokens_in_the_path_and_query(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorHandle,
    write_file: WriteFile,
) -> None:
    from tests.support.leaks import Scanner

    path_token = "AKCplantedPathToken7d3f9a1b2c"
    query_token = "plantedQueryToken4e8c0b6a"
    extra_password = "planted-Extra-Pw-55e1"
    # Nothing listens on 127.0.0.1:9: the check fails, and every URL is shown in the report.
    path = write_file(
        f"https://127.0.0.1:9/api/pypi/{path_token}/simple?token={query_token}",
        hosts={"dev": emu.host("dev")},
        extras=(f"https://reader:{extra_password}@127.0.0.1:9/simple/",),
    )
    code, out, err = run_cli(capsys, "plan", str(path), "--format", "junit")
    assert code == 1
    assert "cannot connect" in out
    cases = [c.get("name", "") for c in ET.fromstring(out).iter("testcase")]
    assert "#1 index_url https://127.0.0.1:9/api/pypi/****/simple?****" in cases
    scanner = Scanner(
        {"path token": path_token, "query token": query_token, "extra password": extra_password}
    )
    assert scanner.scan("plan --format junit", out + err) == []
