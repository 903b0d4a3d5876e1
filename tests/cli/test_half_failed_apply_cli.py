"""A half-failed apply, through the real SDK and the emulator: the ledger records the grants
actually written, so the next plan never calls a grant pkgrepo never wrote "removed outside
pkgrepo" (and drift has no HIGH item for it)."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import WriteDesired
from tests.support.cli import run_cli


def test_a_plan_after_a_half_failed_apply_reports_no_unwritten_grant_as_removed(
    write_desired: WriteDesired, capsys: pytest.CaptureFixture[str]
) -> None:
    # ``ghost-team`` is no principal of the workspace: the service refuses its grant, after
    # ``admins`` was written and before ``users`` was (grants are written in name order).
    ghost = {"acls": {"admins": "MANAGE", "ghost-team": "READ", "users": "READ"}}
    path = write_desired(("dev",), extra=ghost)
    code, out, _ = run_cli(capsys, "apply", str(path), "--auto-approve", "-q")
    assert code == 1
    assert "ghost-team" in out and "FAILED" in out
    fixed = write_desired(("dev",))  # the operator drops the typo
    code, out, _ = run_cli(capsys, "plan", str(fixed), "--format", "json", "-q")
    assert code == 0, out
    changes = {c["address"]: c for w in json.loads(out)["workspaces"] for c in w["changes"]}
    users = changes["dev/acl/users"]
    assert (users["actions"], users["drift"], users["reason"]) == (["create"], "new", "new grant")
    assert "dev/acl/admins" not in changes  # written, and recorded as written
    code, out, _ = run_cli(capsys, "drift", str(fixed), "--format", "json", "-q")
    items = [i for w in json.loads(out)["workspaces"] for i in w["items"]]
    assert [i for i in items if i["kind"] == "acl-removed"] == [], items
    assert [i for i in items if i["severity"] == "high"] == [], items
    assert run_cli(capsys, "apply", str(fixed), "--auto-approve", "-q")[0] == 0
    assert run_cli(capsys, "plan", str(fixed), "--detailed-exitcode", "-q")[0] == 0
