"""Safety you see before you say yes (issue 14, item 8; the `yes` prompt of item 10).

Every plan format and the saved plan carry the safety verdict and the counts behind it; an
apply past a limit is refused before the prompt, never after; rotating one credential
across the fleet is recognised as a rotation and held to its own limit; the delete limit
counts deleted scopes, as its documentation says.
"""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest

from reconciler.core.model import SCOPE, Permission
from reconciler.emulator import EmulatorHandle
from tests.operator.conftest import Fleet, Terminal
from tests.support.cli import Pkgrepo

THIRTY = tuple(f"ws-{i:02d}" for i in range(30))
THREE = ("ws-a", "ws-b", "ws-c")


def writes(emu: EmulatorHandle, names: tuple[str, ...]) -> int:
    return sum(
        n
        for name in names
        for (method, path), n in emu.requests(name).items()
        if method == "POST" and "/secrets/" in path
    )


def converge(pkgrepo: Pkgrepo, path: str) -> None:
    done = pkgrepo("apply", path, "--auto-approve", "-q")
    assert done.code == 0, done.err
    assert pkgrepo("plan", path, "-q", "--detailed-exitcode").code == 0


@pytest.fixture
def rotated(pkgrepo: Pkgrepo, fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> str:
    """30 converged workspaces, then the index credential rotated in Git (its env)."""
    path = fleet.write(THIRTY)
    converge(pkgrepo, path)
    monkeypatch.setenv("INDEX_TOKEN", "planted-Index-Token-rotated-9q")
    fleet.emu.reset_counts()
    return path


def test_rotating_one_credential_across_30_workspaces_needs_no_force(
    pkgrepo: Pkgrepo, fleet: Fleet, rotated: str, tmp_path: Path
) -> None:
    text = pkgrepo("plan", rotated, "-q")
    assert "Plan: 0 to create, 30 to update, 0 to delete across 30 workspaces." in text.out
    assert (
        "Safety: within limits. Rotation of one pip-index-url value in 30 of 30 workspaces "
        "(rotation limit 100% of workspaces)" in text.out
    )
    doc = pkgrepo("plan", rotated, "-q", "--format", "json").json()
    assert doc["safety"]["within_limits"] is True
    assert doc["safety"]["rotation"] == {"key": "pip-index-url", "workspaces": 30}
    assert doc["safety"]["keys_changed"] == 30 and doc["safety"]["managed_keys"] == 60

    done = pkgrepo("apply", rotated, "--auto-approve", "-q")  # no --force
    assert done.code == 0, done.err
    assert "30 applied" in done.out
    assert pkgrepo("plan", rotated, "-q", "--detailed-exitcode").code == 0


def test_a_rotation_has_its_own_documented_limit(
    pkgrepo: Pkgrepo, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fleet.write(THIRTY, safety={"max_rotation_share": 0.5})
    converge(pkgrepo, path)
    monkeypatch.setenv("INDEX_TOKEN", "planted-Index-Token-rotated-9q")
    fleet.emu.reset_counts()
    refused = pkgrepo("apply", path, "--auto-approve", "-q")
    assert refused.code == 1
    assert (
        "it rotates pip-index-url in 30 of 30 workspaces (100%), more than the rotation "
        "limit of 50%; review the plan and rerun with --force" in refused.err
    )
    assert writes(fleet.emu, THIRTY) == 0
    assert pkgrepo("apply", path, "--auto-approve", "-q", "--force").code == 0


def test_the_verdict_is_in_every_format_and_the_saved_plan(
    pkgrepo: Pkgrepo, fleet: Fleet, tmp_path: Path
) -> None:
    """Moving the index to another host is no rotation (it redirects every install): 30 of
    60 keys change, past the 30% share, and every format says so before anyone applies."""
    path = fleet.write(THIRTY)
    converge(pkgrepo, path)
    moved = fleet.write(index_host="nexus.example.com")
    reason = "it changes 30 of 60 managed keys (50%), more than the safety limit of 30%"

    text = pkgrepo("plan", moved, "-q")
    assert f"Safety: needs --force ({reason})." in text.out
    assert "30 of 60 managed keys change (50%, limit 30%); 0 scope(s) deleted (limit 1)." in (
        text.out
    )
    markdown = pkgrepo("plan", moved, "-q", "--format", "markdown")
    assert f"**Safety: needs --force ({reason}).**" in markdown.out
    doc = pkgrepo("plan", moved, "-q", "--format", "json").json()
    assert doc["safety"]["within_limits"] is False
    assert doc["safety"]["needs"] == ["--force"] and doc["safety"]["reasons"] == [reason]
    assert doc["safety"]["rotation"] is None

    saved = tmp_path / "plan.json"
    assert pkgrepo("plan", moved, "-q", "--out", str(saved)).code == 0
    stored = json.loads(saved.read_text())["plan"]["safety"]
    assert stored["needs"] == ["--force"] and stored["reasons"] == [reason]
    refused = pkgrepo("apply", str(saved), "-q")
    assert refused.code == 1 and reason in refused.err
    assert pkgrepo("plan", moved, "-q", "--detailed-exitcode").code == 2  # nothing applied
    assert pkgrepo("apply", str(saved), "-q", "--force").code == 0


def test_a_saved_plan_whose_verdict_was_edited_is_refused(
    pkgrepo: Pkgrepo, fleet: Fleet, tmp_path: Path
) -> None:
    path = fleet.write(THIRTY)
    converge(pkgrepo, path)
    moved = fleet.write(index_host="nexus.example.com")
    saved = tmp_path / "plan.json"
    assert pkgrepo("plan", moved, "-q", "--out", str(saved)).code == 0
    document = json.loads(saved.read_text())
    safety = document["plan"]["safety"]
    safety.update(within_limits=True, needs=[], reasons=[])
    saved.write_text(json.dumps(document))
    refused = pkgrepo("apply", str(saved), "-q", "--force")
    assert refused.code == 1
    # The signature covers the verdict: the edit is refused before the verdict is read.
    assert "the plan file was altered after it was signed: edited in the changes" in refused.err


def test_reverting_stray_grants_needs_no_force(pkgrepo: Pkgrepo, fleet: Fleet) -> None:
    path = fleet.write(THREE)
    converge(pkgrepo, path)
    emu = fleet.emu
    for name in ("ws-a", "ws-b"):
        emu.backend(name).put_acl(emu.admin, SCOPE, "contractors", Permission.WRITE)
    plan = pkgrepo("plan", path, "-q")
    assert "Safety: within limits." in plan.out
    done = pkgrepo("apply", path, "--auto-approve", "-q")
    assert done.code == 0, done.err
    assert pkgrepo("plan", path, "-q", "--detailed-exitcode").code == 0


def test_the_delete_limit_counts_deleted_scopes(pkgrepo: Pkgrepo, fleet: Fleet) -> None:
    path = fleet.write(THREE)
    converge(pkgrepo, path)
    gone = fleet.write(workspace_extra=lambda name: {"ensure": "absent"})
    fleet.emu.reset_counts()
    plan = pkgrepo("plan", gone, "-q")
    assert "it deletes the scope of 3 workspaces, more than the safety limit of 1" in plan.out
    assert "Safety: needs --allow-destroy (ws-a (deletes the scope" in plan.out
    assert "3 scope(s) deleted (limit 1)" in plan.out
    only_destroy = pkgrepo("apply", gone, "--auto-approve", "-q", "--allow-destroy")
    assert only_destroy.code == 1
    assert "it deletes the scope of 3 workspaces" in only_destroy.err
    assert writes(fleet.emu, THREE) == 0
    done = pkgrepo("apply", gone, "--auto-approve", "-q", "--allow-destroy", "--force")
    assert done.code == 0, done.err


# -- at a terminal ----------------------------------------------------------------------------


def test_at_a_terminal_the_verdict_comes_before_the_prompt_and_only_yes_applies(
    terminal: Terminal, fleet: Fleet, rotated: str
) -> None:
    child = terminal("apply", rotated, "-q")
    child.expect("Safety: within limits. Rotation of one pip-index-url value in 30 of 30")
    child.expect("Only 'yes' will be accepted")
    child.expect("Enter a value: ")
    child.sendline("y")
    child.expect("apply cancelled; nothing was changed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert writes(fleet.emu, THIRTY) == 0

    child = terminal("apply", rotated, "-q")
    child.expect("Enter a value: ")
    child.sendline("yes")
    child.expect("30 workspace\\(s\\): 30 applied")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_at_a_terminal_an_unsafe_apply_is_refused_before_any_prompt(
    terminal: Terminal, pkgrepo: Pkgrepo, fleet: Fleet
) -> None:
    path = fleet.write(THIRTY)
    converge(pkgrepo, path)
    moved = fleet.write(index_host="nexus.example.com")
    fleet.emu.reset_counts()
    child = terminal("apply", moved, "-q")
    index = child.expect(["Enter a value", "rerun with --force"])
    assert index == 1, "asked to confirm an apply that would be refused"
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert writes(fleet.emu, THIRTY) == 0


# -- every refusal, for a file and a saved plan alike (one decision: plan.Safety.enforce) ----

FIVE = tuple(f"ws-{i}" for i in range(5))
"""Ten managed keys: the share limit applies from ten."""


def _destroy_one(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> tuple[str, tuple[str, ...]]:
    path = fleet.write(FIVE, workspace_extra=lambda n: {"ensure": "absent"} if n == "ws-0" else {})
    return path, ("--allow-destroy",)


def _destroy_past_the_limit(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, tuple[str, ...]]:
    path = fleet.write(
        FIVE, workspace_extra=lambda n: {"ensure": "absent"} if n in ("ws-0", "ws-1") else {}
    )
    return path, ("--allow-destroy", "--force")


def _past_the_update_share(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, tuple[str, ...]]:
    return fleet.write(FIVE, index_host="nexus.example.com"), ("--force",)


def _past_the_rotation_limit(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, tuple[str, ...]]:
    monkeypatch.setenv("INDEX_TOKEN", "planted-Index-Token-rotated-9q")
    return fleet.write(FIVE, safety={"max_rotation_share": 0.5}), ("--force",)


REFUSALS = {
    "destroys a scope": (_destroy_one, "this plan is destructive", "--allow-destroy"),
    "deletes more scopes than the limit": (
        _destroy_past_the_limit,
        "it deletes the scope of 2 workspaces, more than the safety limit of 1",
        "--force",
    ),
    "changes more than the update share": (
        _past_the_update_share,
        "it changes 5 of 10 managed keys (50%), more than the safety limit of 30%",
        "--force",
    ),
    "rotates past the rotation limit": (
        _past_the_rotation_limit,
        "it rotates pip-index-url in 5 of 5 workspaces (100%), more than the rotation limit",
        "--force",
    ),
}


@pytest.mark.parametrize("saved", [False, True], ids=["file", "saved-plan"])
@pytest.mark.parametrize("case", list(REFUSALS))
def test_every_refusal_for_files_and_saved_plans_alike(
    pkgrepo: Pkgrepo,
    fleet: Fleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    saved: bool,
) -> None:
    converge(pkgrepo, fleet.write(FIVE))
    make, said, needed = REFUSALS[case]
    path, flags = make(fleet, monkeypatch)
    target = path
    if saved:
        target = str(tmp_path / "plan.json")
        assert pkgrepo("plan", path, "-q", "--out", target).code == 0
    fleet.emu.reset_counts()
    missing = [f for f in flags if f != needed]
    refused = pkgrepo("apply", target, "--auto-approve", "-q", *missing)
    assert refused.code == 1, refused.text
    assert said in refused.err and f"rerun with {needed}" in refused.err
    assert writes(fleet.emu, FIVE) == 0
    done = pkgrepo("apply", target, "--auto-approve", "-q", *flags)
    assert done.code == 0, done.err
