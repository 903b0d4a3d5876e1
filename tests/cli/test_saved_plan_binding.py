"""A saved plan binds what ``apply`` does: exactly its workspaces, every field of every
reviewed change, the very desired-state file, and only when signed with the ledger key.

Each test is a hostile or careless case from review: an empty shard's plan, an ACL raised in
Git after review, a hand-edited plan file, a wrong key in CI, applying from another folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.core.model import SecretValue
from reconciler.core.plan import Plan
from reconciler.edges import planfile
from reconciler.emulator import EmulatorHandle
from tests.cli.conftest import LEDGER_KEY, WriteDesired
from tests.support.cli import run_cli

ACLS = {"acls": {"admins": "MANAGE", "users": "READ", "data-eng": "READ"}}


def requests(emu: EmulatorHandle, *names: str) -> int:
    return sum(n for name in names for n in emu.requests(name).values())


def writes(emu: EmulatorHandle, *names: str) -> int:
    return sum(
        n
        for name in names
        for (method, path), n in emu.requests(name).items()
        if method == "POST" and "/secrets/" in path
    )


def saved(
    capsys: pytest.CaptureFixture[str], desired: Path, plan_file: Path, *extra: str
) -> dict[str, object]:
    code, _, err = run_cli(capsys, "plan", str(desired), "--out", str(plan_file), "-q", *extra)
    assert code == 0, err
    document: dict[str, object] = json.loads(plan_file.read_text())
    return document


def test_an_empty_saved_plan_applies_nothing(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    """An empty shard's plan (or a selection that matched nothing) used to apply the whole
    fleet unreviewed, since an empty selection meant "all"."""
    desired = write_desired()
    plan_file = tmp_path / "empty.json"
    loaded = json.loads(json.dumps(saved(capsys, desired, tmp_path / "full.json")))
    planfile.write(
        plan_file,
        Plan(workspaces=(), salt="0" * 32),
        source=desired,
        source_sha256=loaded["source"]["sha256"],
        mask=lambda text: text,
        ledger_key=SecretValue(LEDGER_KEY),
    )
    emu.reset_counts()
    code, _, err = run_cli(capsys, "apply", str(plan_file), "--auto-approve")
    assert code == 0, err
    assert "lists no workspace: nothing to apply" in err
    assert requests(emu, "dev", "prod") == 0


def test_an_empty_shard_saved_by_plan_applies_nothing(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    from reconciler.commands.selection import shard_of

    desired = write_desired()
    taken = {shard_of("dev", 12), shard_of("prod", 12)}
    empty = next(i for i in range(1, 13) if i not in taken)
    plan_file = tmp_path / "shard.json"
    code, _, err = run_cli(
        capsys, "plan", str(desired), "--shard", f"{empty}/12", "--out", str(plan_file), "-q"
    )
    if code != 0:
        # A selection that matches nothing may be an error of its own; then there is no
        # plan file to apply, which is just as safe.
        assert not plan_file.exists(), err
        return
    emu.reset_counts()
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 0 and "nothing to apply" in err
    assert requests(emu, "dev", "prod") == 0


def test_an_acl_raised_in_git_after_review_is_refused(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    """Reviewed `+ dev/acl/data-eng: READ`, then the file said MANAGE: the ACL was not in
    any digest, so data-eng got MANAGE."""
    desired = write_desired(names=("dev",), extra=ACLS)
    plan_file = tmp_path / "plan.json"
    saved(capsys, desired, plan_file)
    desired.write_text(desired.read_text().replace("data-eng: READ", "data-eng: MANAGE"))
    emu.reset_counts()
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 1, err
    assert "dev: dev/acl/data-eng: reviewed create READ, now create MANAGE" in err
    assert "is not the file the plan was made from: its content changed" in err
    assert writes(emu, "dev") == 0


def test_a_plan_with_an_edited_change_is_refused(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    desired = write_desired(names=("dev",), extra=ACLS)
    plan_file = tmp_path / "plan.json"
    document = saved(capsys, desired, plan_file)
    text = json.dumps(document)
    assert '"after": "READ"' in text
    plan_file.write_text(text.replace('"after": "READ"', '"after": "MANAGE"', 1))
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 1
    assert "the plan file was altered after it was signed: edited in the changes" in err
    assert writes(emu, "dev") == 0


@pytest.mark.parametrize(
    "edit",
    ["source", "source-digest", "signature", "unsigned", "removed-workspace", "signed_by"],
)
def test_a_hand_edited_plan_file_is_refused(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
    edit: str,
) -> None:
    desired = write_desired()
    other = tmp_path / "other.yaml"
    other.write_text(desired.read_text().replace("users: READ", "users: MANAGE"))
    plan_file = tmp_path / "plan.json"
    document = saved(capsys, desired, plan_file)
    source = document["source"]
    plan = document["plan"]
    assert isinstance(source, dict) and isinstance(plan, dict)
    if edit == "source":
        source["path"] = "other.yaml"
    elif edit == "source-digest":
        source["sha256"] = "0" * 64
    elif edit == "signature":
        document["signature"] = "hmac-sha256:" + "0" * 64
    elif edit == "unsigned":
        del document["signature"]
    elif edit == "removed-workspace":
        plan["workspaces"] = plan["workspaces"][:1]
    elif edit == "signed_by":
        document["signed_by"] = "key:0000000000000000"
    plan_file.write_text(json.dumps(document, indent=2))
    emu.reset_counts()
    code, _, err = run_cli(capsys, "apply", str(plan_file), "--auto-approve")
    assert code == 1, err
    expected = {
        "unsigned": "the plan file is not signed",
        "signed_by": "the plan was signed with ledger key key:0000000000000000",
        "source": "altered after it was signed: edited in the source (the desired-state",
        "source-digest": "altered after it was signed: edited in the source (the desired-state",
        "signature": "altered after it was signed: its signature, or a field beside",
        "removed-workspace": "altered after it was signed: edited in the changes",
    }[edit]
    assert expected in err
    assert requests(emu, "dev", "prod") == 0


def test_a_wrong_ledger_key_is_named_and_the_plan_not_blamed(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """#14: a wrong PKGREPO_LEDGER_KEY in the apply job used to read as "desired values
    differ", which sends people to re-plan instead of fixing the secret."""
    desired = write_desired()
    plan_file = tmp_path / "plan.json"
    document = saved(capsys, desired, plan_file)
    signer = document["signed_by"]
    assert isinstance(signer, str) and signer.startswith("key:")
    assert LEDGER_KEY not in plan_file.read_text()
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", "another-Ledger-Key-0f0f")
    emu.reset_counts()
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 1
    assert f"the plan was signed with ledger key {signer}, but PKGREPO_LEDGER_KEY here is " in err
    assert "differ from the reviewed plan" not in err and "altered" not in err
    assert "another-Ledger-Key-0f0f" not in err
    monkeypatch.delenv("PKGREPO_LEDGER_KEY")
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 1 and f"needs PKGREPO_LEDGER_KEY, the key it was signed with ({signer})" in err
    assert requests(emu, "dev", "prod") == 0


def test_a_different_file_at_the_planned_path_is_refused(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    desired = write_desired()
    plan_file = tmp_path / "plan.json"
    saved(capsys, desired, plan_file)
    desired.write_text(desired.read_text() + "# edited after review\n")
    emu.reset_counts()
    code, _, err = run_cli(capsys, "apply", str(plan_file))
    assert code == 1
    assert f"{desired} is not the file the plan was made from" in err
    assert writes(emu, "dev", "prod") == 0


def test_a_saved_plan_applies_from_another_folder(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Planned in the repository with relative paths, applied from elsewhere (and with the
    repository moved): the source is recorded relative to the plan file."""
    desired = write_desired()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    code, _, err = run_cli(capsys, "plan", desired.name, "--out", "out/plan.json", "-q")
    assert code == 0, err
    document = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert document["source"]["path"] == "../pkgrepo.yaml"
    moved = tmp_path.parent / f"{tmp_path.name}-moved"
    os.rename(tmp_path, moved)
    try:
        elsewhere = moved / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        code, out, err = run_cli(capsys, "apply", "../out/plan.json")
        assert code == 0, err
        assert "2 applied" in out
    finally:
        monkeypatch.chdir(moved.parent)
        os.rename(moved, tmp_path)


def test_selection_flags_do_not_go_with_a_saved_plan(
    capsys: pytest.CaptureFixture[str],
    write_desired: WriteDesired,
    tmp_path: Path,
    emu: EmulatorHandle,
) -> None:
    plan_file = tmp_path / "plan.json"
    saved(capsys, write_desired(), plan_file)
    emu.reset_counts()
    for flags in (["--shard", "1/2"], ["-w", "dev"], ["--select", "env=dev"]):
        code, _, err = run_cli(capsys, "apply", str(plan_file), *flags)
        assert code == 1 and "applies to exactly the workspaces it lists" in err
    assert requests(emu, "dev", "prod") == 0
