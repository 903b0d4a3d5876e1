"""``pkgrepo drift`` end to end: the CLI, the real databricks-sdk, the emulator over HTTP.

Each kind of drift is made the way it happens in real life (a person with the SDK, or an
edit in Git) and must come back with the planner's kind and severity and the right exit code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from databricks.sdk.service.workspace import AclPermission

from reconciler import schemas
from reconciler.core.model import SCOPE
from reconciler.emulator import EmulatorHandle, ServiceModes
from tests.support.cli import run_cli
from tests.support.fleet_files import (
    BAD_TOKEN_ENV,
    EXTRA,
    INDEX_TEMPLATE,
    PLANTED,
    apply,
    client,
    workspace_yaml,
    write_desired,
)

pytestmark = pytest.mark.usefixtures("env")

Mutation = Callable[[EmulatorHandle], None]


def _put_index(emu: EmulatorHandle) -> None:
    client(emu, "a").secrets.put_secret(
        SCOPE, "pip-index-url", string_value="https://evil.example.com/simple"
    )


def _add_cert(emu: EmulatorHandle) -> None:
    client(emu, "a").secrets.put_secret(SCOPE, "pip-cert", string_value="not a cert")


def _add_unmanaged(emu: EmulatorHandle) -> None:
    client(emu, "a").secrets.put_secret(SCOPE, "note", string_value="hello")


def _delete_index(emu: EmulatorHandle) -> None:
    client(emu, "a").secrets.delete_secret(SCOPE, "pip-index-url")


def _delete_extra(emu: EmulatorHandle) -> None:
    client(emu, "a").secrets.delete_secret(SCOPE, "pip-extra-index-urls")


def _grant_manage(emu: EmulatorHandle) -> None:
    client(emu, "a").secrets.put_acl(SCOPE, "contractors", AclPermission.MANAGE)


def _grant_read(emu: EmulatorHandle) -> None:
    client(emu, "a").secrets.put_acl(SCOPE, "team", AclPermission.READ)


def _users_write(emu: EmulatorHandle) -> None:
    client(emu, "a").secrets.put_acl(SCOPE, "users", AclPermission.WRITE)


def _revoke_users(emu: EmulatorHandle) -> None:
    client(emu, "a").secrets.delete_acl(SCOPE, "users")


def _delete_scope(emu: EmulatorHandle) -> None:
    client(emu, "a").secrets.delete_scope(SCOPE)


CASES: list[tuple[str, Mutation, str, str, str, str]] = [
    # id, mutation, address, kind, severity, action
    ("value-modified", _put_index, "a/secret/pip-index-url", "modified-outside", "high", "update"),
    ("key-added", _add_cert, "a/secret/pip-cert", "added-out-of-band", "low", "delete"),
    ("unmanaged-key-added", _add_unmanaged, "a/secret/note", "added-out-of-band", "low", "delete"),
    (
        "index-deleted",
        _delete_index,
        "a/secret/pip-index-url",
        "removed-out-of-band",
        "high",
        "create",
    ),
    (
        "extra-deleted",
        _delete_extra,
        "a/secret/pip-extra-index-urls",
        "removed-out-of-band",
        "low",
        "create",
    ),
    ("manage-granted", _grant_manage, "a/acl/contractors", "acl-added", "high", "delete"),
    ("read-granted", _grant_read, "a/acl/team", "acl-added", "low", "delete"),
    ("users-write", _users_write, "a/acl/users", "acl-changed", "high", "update"),
    ("acl-removed", _revoke_users, "a/acl/users", "acl-removed", "low", "create"),
    ("scope-deleted", _delete_scope, "a/scope", "scope-missing", "high", "create"),
]


def _fleet(tmp_path: Path, emu: EmulatorHandle, **workspace: Any) -> Path:
    return write_desired(
        tmp_path / "pkgrepo.yaml",
        {
            "a": workspace_yaml(emu, "a", **workspace),
            "b": workspace_yaml(emu, "b"),
        },
    )


def _drift_json(
    capsys: pytest.CaptureFixture[str], path: Path, *extra: str
) -> tuple[int, dict[str, Any], str]:
    code, out, err = run_cli(capsys, "drift", str(path), "--format", "json", "--quiet", *extra)
    document = json.loads(out)
    jsonschema.validate(document, schemas.load(schemas.DRIFT))
    assert PLANTED not in out + err
    return code, document, err


def _items(document: dict[str, Any], workspace: str) -> dict[str, tuple[str, str, str]]:
    (ws,) = [w for w in document["workspaces"] if w["workspace"] == workspace]
    return {i["address"]: (i["kind"], i["severity"], i["action"]) for i in ws["items"]}


def test_in_sync_fleet_exits_0(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fleet(tmp_path, emu)
    apply(capsys, path)
    code, out, err = run_cli(capsys, "drift", str(path))
    assert code == 0, out + err
    assert "No drift" in out
    assert "2 workspaces are in sync: a, b" in out


@pytest.mark.parametrize(
    ("mutation", "address", "kind", "severity", "action"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_kind_of_out_of_band_drift(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mutation: Mutation,
    address: str,
    kind: str,
    severity: str,
    action: str,
) -> None:
    path = _fleet(tmp_path, emu)
    apply(capsys, path)
    mutation(emu)
    code, document, _ = _drift_json(capsys, path)
    assert code == 2
    assert _items(document, "a")[address] == (kind, severity, action)
    assert _items(document, "b") == {}
    assert document["summary"]["by_kind"][kind] >= 1
    assert document["workspaces"][1]["status"] == "in-sync"


def test_drift_changes_nothing(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fleet(tmp_path, emu)
    apply(capsys, path)
    _grant_manage(emu)
    emu.reset_counts("a")
    assert _drift_json(capsys, path)[0] == 2
    assert all(method == "GET" for method, _ in emu.requests("a")), emu.requests("a")
    assert _drift_json(capsys, path)[0] == 2  # still there: drift reports, apply repairs


def test_changed_in_git(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply(capsys, _fleet(tmp_path, emu))
    moved = INDEX_TEMPLATE.replace("artifactory.example.com", "nexus.example.com")
    path = _fleet(
        tmp_path,
        emu,
        index=moved,
        extra=(EXTRA, "https://pypi.org/simple"),
        acls={"admins": "MANAGE"},
    )
    code, document, _ = _drift_json(capsys, path)
    assert code == 2
    assert _items(document, "a") == {
        "a/secret/pip-index-url": ("changed-in-git", "high", "update"),
        "a/secret/pip-extra-index-urls": ("changed-in-git", "low", "update"),
        "a/acl/users": ("changed-in-git", "low", "delete"),
    }


def test_not_yet_applied_and_unverifiable(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _fleet(tmp_path, emu)
    monkeypatch.delenv("PKGREPO_LEDGER_KEY")
    apply(capsys, path, "--workspace", "a")  # no ledger key: nothing recorded
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", "another-key-entirely-1234")
    # Unverifiable exists only where secrets/get is refused: where it answers, values are
    # compared directly and a key is unchanged or changed.
    emu.set_modes("a", ServiceModes(rest_get="refused"))
    code, document, _ = _drift_json(capsys, path)
    assert code == 2
    assert set(_items(document, "a").values()) == {("unverifiable", "low", "update")}
    emu.set_modes("a", ServiceModes())
    code, document, _ = _drift_json(capsys, path)
    assert "a" not in {w["workspace"] for w in document["workspaces"] if w["items"]}
    assert set(_items(document, "b").values()) == {("new", "low", "create")}
    assert _items(document, "b")["b/scope"] == ("new", "low", "create")


def test_without_a_ledger_key_drift_refuses_unless_told_to_accept_unverified(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13 item 9: a CI job that lost its secret must not stay green while the index
    is hijacked."""
    path = _fleet(tmp_path, emu)
    emu.set_modes("a", ServiceModes(rest_get="refused"))  # only the ledger can tell
    apply(capsys, path)
    emu.backend("a").set_clock(lambda: time.time() + 2)  # a later second than the apply
    _put_index(emu)
    monkeypatch.delenv("PKGREPO_LEDGER_KEY")
    code, out, err = run_cli(capsys, "drift", str(path), "--quiet", "--format", "junit")
    assert code == 1
    assert out == ""
    assert "PKGREPO_LEDGER_KEY is not set" in err and "--accept-unverified" in err
    assert "Traceback" not in err
    # Told to accept unverified results: the ledger's timestamps still catch the redirect,
    # and the JUnit report fails and carries the warning.
    code, out, _ = run_cli(
        capsys, "drift", str(path), "--quiet", "--format", "junit", "--accept-unverified"
    )
    assert code == 2
    assert 'failures="1"' in out
    assert "a/secret/pip-index-url: modified outside pkgrepo" in out
    assert "ledger not verified" in out
    assert out.count("PKGREPO_LEDGER_KEY is not set") == 1  # said once for the fleet
    assert "(a, b)" in out
    code, out, _ = run_cli(capsys, "drift", str(path), "--quiet", "--accept-unverified")
    assert code == 2
    assert "[HIGH] a/secret/pip-index-url" in out


def test_an_unreadable_workspace_exits_1_and_the_others_are_reported(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _fleet(tmp_path, emu)
    apply(capsys, path)
    _grant_manage(emu)
    broken = workspace_yaml(emu, "c", token_env=BAD_TOKEN_ENV)
    path = write_desired(
        tmp_path / "pkgrepo.yaml",
        {
            "a": workspace_yaml(emu, "a"),
            "b": workspace_yaml(emu, "b"),
            "c": broken,
        },
    )
    code, document, err = _drift_json(capsys, path)
    assert code == 1
    statuses = {w["workspace"]: w["status"] for w in document["workspaces"]}
    assert statuses == {"a": "drift", "b": "in-sync", "c": "error"}
    (c,) = [w for w in document["workspaces"] if w["workspace"] == "c"]
    assert "authentication failed" in c["error"] and not c["error"].startswith("c:")
    assert "error: c: " in err
    code, out, _ = run_cli(capsys, "drift", str(path), "--quiet")
    assert code == 1
    assert "workspace c (" in out and "could not be read" in out
    assert "[HIGH] a/acl/contractors: granted outside pkgrepo (acl-added)" in out


def test_selection_flags_work_like_plan(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fleet(tmp_path, emu)
    apply(capsys, path)
    _grant_manage(emu)
    code, document, _ = _drift_json(capsys, path, "--workspace", "b")
    assert code == 0
    assert [w["workspace"] for w in document["workspaces"]] == ["b"]
    shards = [_drift_json(capsys, path, "--shard", f"{i}/2")[1] for i in (1, 2)]
    seen = sorted(w["workspace"] for doc in shards for w in doc["workspaces"])
    assert seen == ["a", "b"]


def test_every_format_to_a_file(
    emu: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import xml.etree.ElementTree as ET

    path = _fleet(tmp_path, emu)
    apply(capsys, path)
    _grant_manage(emu)
    _users_write(emu)
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    for fmt in ("text", "json", "markdown", "junit"):
        target = tmp_path / f"drift.{fmt}"
        code, out, err = run_cli(
            capsys,
            "drift",
            str(path),
            "--format",
            fmt,
            "--output",
            str(target),
            "--summary",
            str(summary),
            "--quiet",
        )
        assert code == 2
        assert out == ""
        assert f"Wrote the drift report ({fmt})" in err
        assert "drift: 2 differences (2 high severity) in 1 of 2 workspaces" in err
        assert PLANTED not in target.read_text() + err
    text = (tmp_path / "drift.text").read_text()
    assert "\x1b[" not in text  # no colour in a file
    assert text.index("[HIGH] a/acl/contractors") < text.index("[HIGH] a/acl/users")
    suites = ET.parse(tmp_path / "drift.junit").getroot()
    assert (suites.get("tests"), suites.get("failures"), suites.get("errors")) == ("2", "1", "0")
    cases = {c.get("name"): c for c in suites.iter("testcase")}
    failure = cases["a"].find("failure")
    assert failure is not None and "a/acl/contractors" in (failure.text or "")
    assert list(cases["b"]) == []
    markdown = (tmp_path / "drift.markdown").read_text()
    assert markdown.startswith("## pkgrepo drift: drift")
    assert summary.read_text().startswith("# earlier step\n## pkgrepo drift: drift")
    assert summary.read_text().count("## pkgrepo drift") == 4


def test_output_to_a_missing_directory_is_a_user_error(
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _fleet(tmp_path, emu)
    code, _, err = run_cli(
        capsys, "drift", str(path), "--output", str(tmp_path / "no" / "x.xml"), "--quiet"
    )
    assert code == 1
    assert "cannot write" in err and "Traceback" not in err


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "drift", "--help")
    assert code == 0
    for words in (
        "Exit codes: 0 no drift (or only below --fail-on), 2 drift, 1",
        "--fail-on",
        "--accept-unverified",
        "--format",
        "junit",
        "--shard",
        "Examples:",
        "PKGREPO_LEDGER_KEY",
    ):
        assert words in out
