"""Issue 13's reproductions, one test each, through the CLI, the real databricks-sdk and the
emulator over HTTP (the truth table in ``test_drift_truth`` covers the rest)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.workspace import AclPermission

from reconciler import schemas
from reconciler.core.model import MARKER_KEY, SCOPE
from reconciler.emulator import (
    ADMIN_TOKEN,
    EmulatorConfig,
    EmulatorHandle,
    Principal,
    ServiceModes,
    WorkspaceSettings,
)
from tests.pem import make_cert
from tests.support.cli import run_cli
from tests.support.fleet_files import (
    EXTRA,
    GROUPS,
    PLANTED,
    PLANTED_USER,
    TOKEN_ENV,
    apply,
    client,
    workspace_yaml,
    write_desired,
)

pytestmark = pytest.mark.usefixtures("env")

CI_TOKEN = "dapi-ci-bot-token"
CI_APP_ID = "6d3c6a4e-0000-4000-8000-c1b0t"
CI_TOKEN_ENV = "PKGREPO_TEST_CI_TOKEN"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Workspace ``nb`` answers ``secrets/get`` as inside a notebook; a CI service principal
    (workspace admin) beside the default admin, who plays the person that set things up."""
    return EmulatorConfig(
        groups=GROUPS,
        principals=(
            Principal(
                CI_APP_ID,
                groups=frozenset({"admins"}),
                tokens=(CI_TOKEN,),
                kind="service_principal",
                display_name="ci-bot",
            ),
        ),
        workspaces={"nb": WorkspaceSettings(notebook_context=True)},
        # Elsewhere secrets/get is refused: the ledger is what these tests exercise.
        workspace_defaults=WorkspaceSettings(modes=ServiceModes(rest_get="refused")),
    )


def _drift(
    capsys: pytest.CaptureFixture[str], path: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    code, out, err = run_cli(capsys, "drift", str(path), "--format", "json", "--quiet", *extra)
    assert PLANTED not in out + err
    return code, json.loads(out)


def _items(document: dict[str, Any], workspace: str) -> dict[str, dict[str, Any]]:
    (ws,) = [w for w in document["workspaces"] if w["workspace"] == workspace]
    return {item["address"]: item for item in ws["items"]}


def _stamps(emu: EmulatorHandle, workspace: str) -> dict[str, int]:
    listed = client(emu, workspace).secrets.list_secrets(SCOPE)
    return {str(s.key): int(s.last_updated_timestamp or 0) for s in listed}


# -- item 6: URLs compared by meaning -------------------------------------------------------


INDEX_FORMS = [
    "https://${env:TEST_INDEX_USER}:${env:TEST_INDEX_TOKEN}@ARTIFACTORY.Example.COM/api/pypi/remote/simple",
    "https://${env:TEST_INDEX_USER}:${env:TEST_INDEX_TOKEN}@artifactory.example.com:443/api/pypi/remote/simple",
    "https://${env:TEST_INDEX_USER}:${env:TEST_INDEX_TOKEN}@artifactory.example.com/api/pypi/remote/simple/",
    # the same credentials, percent-encoded: pip decodes them before sending
    "https://ci-bot%2D7d1e:${env:TEST_INDEX_TOKEN}@artifactory.example.com/api/pypi/remote/simple",
]


@pytest.mark.parametrize("index", INDEX_FORMS, ids=["host-case", "port-443", "slash", "pct"])
def test_index_urls_that_pip_treats_alike_are_not_an_update(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str], index: str
) -> None:
    path = tmp_path / "pkgrepo.yaml"
    write_desired(path, {"a": workspace_yaml(emu, "a")})
    apply(capsys, path)
    write_desired(path, {"a": workspace_yaml(emu, "a", index=index)})
    code, out, err = run_cli(capsys, "plan", str(path), "--detailed-exitcode")
    assert code == 0, out + err
    assert "credentials changed" not in out and "index host changes" not in out


def test_index_urls_that_pip_treats_differently_are_an_update(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "pkgrepo.yaml"
    write_desired(path, {"a": workspace_yaml(emu, "a")})
    apply(capsys, path)
    base = "https://${env:TEST_INDEX_USER}:${env:TEST_INDEX_TOKEN}@artifactory.example.com"
    for index, reason in [
        (f"{base}/api/pypi/remote/simple//", "changed in the desired state"),  # another URL
        (f"{base}/api/pypi/REMOTE/simple", "changed in the desired state"),  # path case counts
        (f"{base}:8443/api/pypi/remote/simple", "index host changes"),
    ]:
        write_desired(path, {"a": workspace_yaml(emu, "a", index=index)})
        code, out, _ = run_cli(capsys, "plan", str(path), "--detailed-exitcode")
        assert code == 2, index
        assert reason in out, (index, out)
    write_desired(path, {"a": workspace_yaml(emu, "a")})
    monkeypatch.setenv("TEST_INDEX_TOKEN", "another-token-31c5")
    code, out, _ = run_cli(capsys, "plan", str(path), "--detailed-exitcode")
    assert code == 2 and "credentials changed" in out


def test_in_a_notebook_order_duplicates_and_spelling_are_not_drift(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 6 and 12: read back, values are compared by meaning too: extra-URL order and
    repeats, certificate bundle order, host case and default port."""
    one, two = make_cert("one"), make_cert("two")
    cert_file = tmp_path / "bundle.pem"
    cert_file.write_text(one + two)
    second = "https://pypi.example.org/simple"
    ws = workspace_yaml(emu, "nb", extra=(EXTRA, second))
    ws["repositories"]["cert"] = {"file": str(cert_file)}
    path = write_desired(tmp_path / "pkgrepo.yaml", {"nb": ws})
    apply(capsys, path)
    secrets = client(emu, "nb").secrets
    secrets.put_secret(SCOPE, "pip-extra-index-urls", string_value=f"{second} {EXTRA}  {second}/")
    secrets.put_secret(SCOPE, "pip-cert", string_value=two + "\n" + one)
    secrets.put_secret(
        SCOPE,
        "pip-index-url",
        string_value=f"https://{PLANTED_USER}:{PLANTED}@Artifactory.example.com:443/api/pypi/remote/simple/",
    )
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    code, document = _drift(capsys, path)
    assert code == 0, _items(document, "nb")


def test_hosts_distinct_catches_the_default_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_desired(
        tmp_path / "pkgrepo.yaml",
        {
            "one": {"host": "https://adb-1.azuredatabricks.net", "ensure": "absent"},
            "two": {"host": "https://ADB-1.azuredatabricks.net:443/", "ensure": "absent"},
        },
    )
    code, out, err = run_cli(capsys, "validate", str(path))
    assert code == 1
    assert "hosts-distinct" in out + err


# -- item 7: ledger key rotation ------------------------------------------------------------


def test_rotating_the_ledger_key_converges_without_force_or_rewriting_values(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"w{i}" for i in range(4)]  # 4 workspaces x 3 keys: the share limit applies
    cert = tmp_path / "ca.pem"
    cert.write_text(make_cert("ca"))
    spaces = {}
    for name in names:
        spaces[name] = workspace_yaml(emu, name)
        spaces[name]["repositories"]["cert"] = {"file": str(cert)}
    path = write_desired(tmp_path / "pkgrepo.yaml", spaces)
    apply(capsys, path)
    before = {name: _stamps(emu, name) for name in names}
    old_key = "test-ledger-key-5b0c8e1f9d2a4c6e"
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", "the-new-ledger-key-77aa1c")
    monkeypatch.setenv("PKGREPO_LEDGER_KEY_PREVIOUS", old_key)
    code, out, err = run_cli(capsys, "plan", str(path), "--detailed-exitcode")
    assert code == 0, out + err  # no value changes
    assert "apply records the ledger" in out and "PKGREPO_LEDGER_KEY_PREVIOUS" in out
    emu.reset_counts()
    apply(capsys, path)  # no --force
    for name in names:
        assert ("POST", "/api/2.0/secrets/acls/put") not in emu.requests(name)
        assert _stamps(emu, name) == before[name]  # not a single value written again
    monkeypatch.delenv("PKGREPO_LEDGER_KEY_PREVIOUS")
    code, document = _drift(capsys, path)
    assert code == 0, document
    code, out, _ = run_cli(capsys, "plan", str(path), "--detailed-exitcode")
    assert code == 0 and "apply records the ledger" not in out


def test_previous_key_without_a_new_key_is_a_clear_error(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_desired(tmp_path / "pkgrepo.yaml", {"a": workspace_yaml(emu, "a")})
    monkeypatch.delenv("PKGREPO_LEDGER_KEY")
    monkeypatch.setenv("PKGREPO_LEDGER_KEY_PREVIOUS", "old-key-value-123456")
    code, out, err = run_cli(capsys, "plan", str(path))
    assert code == 1
    assert "PKGREPO_LEDGER_KEY_PREVIOUS is set without PKGREPO_LEDGER_KEY" in err
    assert "old-key-value-123456" not in out + err and "Traceback" not in err


def test_unverifiable_rewrites_do_not_count_toward_the_safety_share(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key changed without the documented rotation: every value is rewritten to record it,
    reported loudly (the ledger cannot vouch), and apply does not need --force for it."""
    cert = tmp_path / "ca.pem"
    cert.write_text(make_cert("ca"))
    spaces = {}
    for name in ("w0", "w1", "w2", "w3"):
        spaces[name] = workspace_yaml(emu, name)
        spaces[name]["repositories"]["cert"] = {"file": str(cert)}
    path = write_desired(tmp_path / "pkgrepo.yaml", spaces)
    apply(capsys, path)
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", "an-unrelated-new-key-0099")
    code, document = _drift(capsys, path)
    assert code == 2
    assert {i["kind"] for i in _items(document, "w0").values()} == {
        "ledger-missing",
        "unverifiable",
    }
    apply(capsys, path)  # no --force
    assert _drift(capsys, path)[0] == 0


# -- item 10: the bootstrapper's own grant --------------------------------------------------


def _as_ci(ws: dict[str, Any]) -> dict[str, Any]:
    return ws | {"auth": {"token": {"env": CI_TOKEN_ENV}}}


def test_the_creators_grant_is_known_not_high_when_ci_runs_as_another_identity(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CI_TOKEN_ENV, CI_TOKEN)
    person = emu.admin.name
    path = write_desired(tmp_path / "pkgrepo.yaml", {"a": workspace_yaml(emu, "a")})
    apply(capsys, path)  # a person bootstraps: the service gives them MANAGE on the scope
    ci = write_desired(tmp_path / "ci.yaml", {"a": _as_ci(workspace_yaml(emu, "a"))})
    _, document = _drift(capsys, ci)
    item = _items(document, "a")[f"a/acl/{person}"]
    assert (item["kind"], item["severity"]) == ("creator-grant", "low")
    assert "scope's creator" in item["message"]
    assert "under acls" in item["settle"]["git"] and item["settle"]["apply"]
    assert _drift(capsys, ci, "--fail-on", "high")[0] == 0  # no wolf cried at night


def test_a_scope_created_by_hand_before_pkgrepo_names_the_creator(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CI_TOKEN_ENV, CI_TOKEN)
    person = emu.admin.name
    client(emu, "a").secrets.create_scope(SCOPE)  # by hand, before pkgrepo
    ws = _as_ci(workspace_yaml(emu, "a")) | {"acls_mode": "additive"}
    path = write_desired(tmp_path / "ci.yaml", {"a": ws})
    code, document = _drift(capsys, path)
    # Adopted in additive mode: named once as the creator, low, until apply records it.
    item = _items(document, "a")[f"a/acl/{person}"]
    assert (item["kind"], item["severity"], item["action"]) == ("creator-grant", "low", "no-op")
    apply(capsys, path)
    code, document = _drift(capsys, path)
    assert code == 0, _items(document, "a")
    # In exact mode the creator is named, low, with the two ways to settle it.
    path = write_desired(tmp_path / "ci.yaml", {"a": _as_ci(workspace_yaml(emu, "a"))})
    code, document = _drift(capsys, path)
    item = _items(document, "a")[f"a/acl/{person}"]
    assert (item["kind"], item["severity"]) == ("creator-grant", "low")
    apply(capsys, path)  # one apply removes it
    assert _drift(capsys, path)[0] == 0


# -- item 3: read back, attribution still from the ledger -----------------------------------


def test_in_a_notebook_git_changes_and_hand_edits_are_told_apart(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_desired(tmp_path / "pkgrepo.yaml", {"nb": workspace_yaml(emu, "nb")})
    apply(capsys, path)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    # A credential rotated through the environment the file reads:
    monkeypatch.setenv("TEST_INDEX_TOKEN", "rotated-token-4e5f6a")
    _, document = _drift(capsys, path)
    item = _items(document, "nb")["nb/secret/pip-index-url"]
    assert (item["kind"], item["severity"]) == ("changed-in-git", "low")
    assert item["message"] == "changed in the desired state: credentials changed"
    assert item["attributed_to"].startswith("the desired state")
    # A hand edit of the credentials (same host) is not "changed in Git":
    monkeypatch.setenv("TEST_INDEX_TOKEN", PLANTED)
    client(emu, "nb").secrets.put_secret(
        SCOPE,
        "pip-index-url",
        string_value=f"https://{PLANTED_USER}:stolen@artifactory.example.com/api/pypi/remote/simple",
    )
    _, document = _drift(capsys, path)
    item = _items(document, "nb")["nb/secret/pip-index-url"]
    assert (item["kind"], item["severity"]) == ("modified-outside", "high")
    assert item["attributed_to"] == "outside pkgrepo"


# -- item 11: --fail-on ------------------------------------------------------------------------


def test_fail_on_high_reports_low_drift_and_passes(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_desired(tmp_path / "pkgrepo.yaml", {"a": workspace_yaml(emu, "a")})
    apply(capsys, path)
    client(emu, "a").secrets.put_acl(SCOPE, "team", AclPermission.READ)
    code, out, _ = run_cli(
        capsys, "drift", str(path), "--quiet", "--format", "junit", "--fail-on", "high"
    )
    assert code == 0
    root = ET.fromstring(out)
    assert root.get("failures") == "0"
    case = next(root.iter("testcase"))
    assert case.find("failure") is None
    assert "a/acl/team: granted outside pkgrepo" in (case.findtext("system-out") or "")
    assert run_cli(capsys, "drift", str(path), "--quiet")[0] == 2  # default: any drift fails
    code, document = _drift(capsys, path, "--fail-on", "high")
    assert (document["fail_on"], document["failing"], document["exit_code"]) == ("high", False, 0)
    client(emu, "a").secrets.put_acl(SCOPE, "contractors", AclPermission.MANAGE)
    assert run_cli(capsys, "drift", str(path), "--quiet", "--fail-on", "high")[0] == 2


# -- item 12: a scope re-created under ensure: absent ----------------------------------------


def test_a_scope_recreated_out_of_band_under_ensure_absent_is_not_changed_in_git(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_desired(tmp_path / "pkgrepo.yaml", {"a": workspace_yaml(emu, "a")})
    apply(capsys, path)
    gone = {"host": emu.host("a"), "auth": {"token": {"env": TOKEN_ENV}}, "ensure": "absent"}
    write_desired(path, {"a": gone})
    _, document = _drift(capsys, path)
    assert _items(document, "a")["a/scope"]["kind"] == "changed-in-git"
    apply(capsys, path, "--allow-destroy")
    assert _drift(capsys, path)[0] == 0
    secrets = client(emu, "a").secrets
    secrets.create_scope(SCOPE)
    secrets.put_secret(SCOPE, "pip-index-url", string_value="https://evil.example.com/simple")
    _, document = _drift(capsys, path)
    item = _items(document, "a")["a/scope"]
    assert (item["kind"], item["severity"], item["attributed_to"]) == (
        "added-out-of-band",
        "high",
        "outside pkgrepo",
    )
    assert "created again outside pkgrepo" in item["message"]


# -- item 1: the marker survives the ledger ---------------------------------------------------


def test_a_deleted_ledger_is_high_and_the_marker_is_not_an_unmanaged_key(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_desired(tmp_path / "pkgrepo.yaml", {"a": workspace_yaml(emu, "a")})
    apply(capsys, path)
    assert MARKER_KEY in _stamps(emu, "a")
    client(emu, "a").secrets.put_secret(
        SCOPE, "pip-index-url", string_value="https://evil.example.com/simple"
    )
    ws: WorkspaceClient = client(emu, "a")
    ws.workspace.delete("/pkgrepo/ledger-databricks-package-management.json")
    code, out, _ = run_cli(capsys, "drift", str(path), "--quiet")
    assert code == 2
    assert "[HIGH] a/ledger: ledger missing: values cannot be verified" in out
    assert "no ledger entry yet" not in out
    assert f"secret/{MARKER_KEY}" not in out
    apply(capsys, path)  # rewrites the values from Git and records a new ledger
    assert _drift(capsys, path)[0] == 0
    assert ADMIN_TOKEN not in out


def test_the_saved_plan_is_a_documented_wrapper_around_the_plan_document(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 12: the plan schema says what `plan --out` writes, and that holds."""
    path = write_desired(tmp_path / "pkgrepo.yaml", {"a": workspace_yaml(emu, "a")})
    saved = tmp_path / "plan.json"
    code, out, err = run_cli(capsys, "plan", str(path), "--out", str(saved), "-q")
    assert code == 0, out + err
    document = json.loads(saved.read_text())
    schema = schemas.load(schemas.PLAN)
    assert document["kind"] == "pkgrepo-planfile"
    assert "pkgrepo-planfile" in schema["description"] and "wrapper" in schema["description"]
    jsonschema.validate(document["plan"], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)  # the wrapper itself is not the plan document
