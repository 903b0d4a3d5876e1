"""Removing a workspace from the file is never silent (issue 14, item 4).

With ledgers in a local directory (``--ledger``), pkgrepo knows every workspace it managed:
one the file no longer names is reported as orphaned by ``plan`` (every format) and by
``drift`` (as drift, exit 2), so its old credential is not forgotten.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema

from reconciler import schemas
from tests.operator.conftest import Fleet
from tests.support.cli import Pkgrepo


def test_a_workspace_removed_from_the_file_is_reported_as_orphaned(
    pkgrepo: Pkgrepo, fleet: Fleet, tmp_path: Path
) -> None:
    ledgers = str(tmp_path / "ledgers")
    path = fleet.write(("dev-a", "dev-b", "old-ws"))
    assert pkgrepo("apply", path, "--auto-approve", "-q", "--ledger", ledgers).code == 0
    fleet.write(("dev-a", "dev-b"))

    text = pkgrepo("plan", path, "-q", "--ledger", ledgers, "--detailed-exitcode")
    assert text.code == 0  # nothing to change in the file's workspaces
    assert "1 orphaned workspace: old-ws. pkgrepo managed it" in text.out
    assert "ensure: absent" in text.out
    markdown = pkgrepo("plan", path, "-q", "--ledger", ledgers, "--format", "markdown")
    assert "1 orphaned workspace: old-ws" in markdown.out
    doc = pkgrepo("plan", path, "-q", "--ledger", ledgers, "--format", "json").json()
    jsonschema.validate(doc, schemas.load(schemas.PLAN))
    assert doc["orphaned"] == ["old-ws"]

    drift = pkgrepo("drift", path, "-q", "--ledger", ledgers)
    assert drift.code == 2
    assert "1 orphaned workspace: old-ws" in drift.out
    report = pkgrepo("drift", path, "-q", "--ledger", ledgers, "--format", "json")
    assert report.code == 2 and report.json()["orphaned"] == ["old-ws"]
    jsonschema.validate(report.json(), schemas.load(schemas.DRIFT))
    junit = tmp_path / "drift.xml"
    pkgrepo("drift", path, "-q", "--ledger", ledgers, "--format", "junit", "-o", str(junit))
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    failure = cases["old-ws"].find("failure")
    assert failure is not None and failure.get("type") == "orphaned"

    # a narrower selection is about the workspaces it names; shards report each orphan once
    assert "orphaned" not in pkgrepo("plan", path, "-q", "--ledger", ledgers, "-w", "dev-a").out
    shards = [
        pkgrepo("plan", path, "-q", "--ledger", ledgers, "--format", "json", "--shard", f"{i}/3")
        for i in (1, 2, 3)
    ]
    assert sorted(n for s in shards for n in s.json()["orphaned"]) == ["old-ws"]

    # declared again with ensure: absent, it is handled: the scope goes, and so does the alarm
    fleet.write(
        ("dev-a", "dev-b", "old-ws"),
        workspace_extra=lambda n: {"ensure": "absent"} if n == "old-ws" else {},
    )
    done = pkgrepo("apply", path, "--auto-approve", "-q", "--ledger", ledgers, "--allow-destroy")
    assert done.code == 0, done.err
    assert "orphaned" not in pkgrepo("plan", path, "-q", "--ledger", ledgers).out
