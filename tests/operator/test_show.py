"""``pkgrepo show`` renders saved plans without applying them (issue 14, item 10; the
merged shard report of item 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.operator.conftest import Fleet
from tests.support.cli import Pkgrepo

FOUR = ("dev-a", "dev-b", "prd-a", "prd-b")


def test_show_renders_a_saved_plan_and_applies_nothing(
    pkgrepo: Pkgrepo, fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fleet.write(FOUR)
    saved = tmp_path / "plan.json"
    planned = pkgrepo("plan", path, "-q", "--out", str(saved))
    assert planned.code == 0
    fleet.emu.reset_counts()
    monkeypatch.delenv("PKGREPO_LEDGER_KEY")  # show needs no key and no workspace
    shown = pkgrepo("show", str(saved))
    assert shown.code == 0
    assert shown.out == planned.out  # the plan as it was reviewed
    assert f"apply it with: pkgrepo apply {saved}" in shown.err
    for name in FOUR:
        assert fleet.emu.requests(name) == {}
    doc = pkgrepo("show", str(saved), "--format", "json").json()
    assert doc == json.loads(saved.read_text())["plan"]


def test_show_merges_shard_plans_into_one_report_with_a_total(
    pkgrepo: Pkgrepo, fleet: Fleet, tmp_path: Path
) -> None:
    path = fleet.write(FOUR)
    files = []
    for i in (1, 2):
        out = tmp_path / f"plan-{i}.json"
        assert pkgrepo("plan", path, "-q", "--shard", f"{i}/2", "--out", str(out)).code == 0
        files.append(str(out))
    merged = pkgrepo("show", *files, "--format", "markdown")
    assert merged.code == 0
    first = merged.out.splitlines()[0]
    assert first == (
        "## pkgrepo plan: 20 to create, 0 to update, 0 to delete across 4 of 4 workspaces "
        "in 2 plan files"
    )
    assert "Safety: every plan file is within limits." in merged.out
    for name in files:
        assert f"### Plan file {name}".replace("_", "\\_") in merged.out
    for ws in FOUR:
        assert f"#### {ws} (" in merged.out
    text = pkgrepo("show", *files)
    assert "Total: 20 to create, 0 to update, 0 to delete across 4 of 4 workspaces" in text.out
    doc = pkgrepo("show", *files, "--format", "json").json()
    assert doc["summary"]["create"] == 20 and doc["summary"]["plan_files"] == 2


def test_show_refuses_what_is_not_a_plan_file(pkgrepo: Pkgrepo, fleet: Fleet) -> None:
    path = fleet.write(("dev-a",))
    done = pkgrepo("show", path)
    assert done.code == 1 and "plan file is not valid JSON" in done.err
    assert pkgrepo("show", "missing.json").code == 1
