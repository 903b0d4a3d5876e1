"""A workspace found by discovery that later leaves the account is reported, never deleted
by surprise. pkgrepo knows it managed it from the fleet record (``--fleet-record``, for
ledgers kept in each workspace) or from its ledger file (``--ledger DIR``); every plan format
and drift name it as orphaned, and the warning says what the account says about it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from reconciler import schemas
from reconciler.emulator import EmulatorHandle
from tests.support.cli import Pkgrepo
from tests.support.fleet_files import workspace

from .conftest import ACCOUNT_ID, NAMES, write_discovery

APPLY = ("apply", "--auto-approve", "-q")
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def writes(emu: EmulatorHandle, name: str) -> int:
    return sum(n for (method, _), n in emu.requests(name).items() if method in WRITES)


@pytest.mark.parametrize("memory", ["--fleet-record", "--ledger"])
def test_a_workspace_gone_from_the_account_is_reported_never_deleted(
    pkgrepo: Pkgrepo, emu: EmulatorHandle, discovery_file: str, tmp_path: Path, memory: str
) -> None:
    where = str(tmp_path / ("fleet.json" if memory == "--fleet-record" else "ledgers"))
    done = pkgrepo(*APPLY, discovery_file, memory, where)
    assert done.code == 0, done.err
    if memory == "--fleet-record":
        record = json.loads(Path(where).read_text())
        assert record["workspaces"] == sorted(NAMES)

    # ws-05 is deleted from the account; ws-06 is still listed but no longer RUNNING
    emu.set_account_workspaces(
        replace(ws, status="BANNED") if ws.name == "ws-06" else ws
        for ws in emu.account_workspaces()
        if ws.name != "ws-05"
    )
    emu.reset_counts()

    text = pkgrepo("plan", discovery_file, "-q", memory, where, "--detailed-exitcode")
    assert text.code == 0, text.err  # the other 48 have nothing to change
    assert "2 orphaned workspaces: ws-05, ws-06. pkgrepo managed them" in text.out
    assert "nothing is deleted because of this" in text.out
    assert f"ws-05: managed by pkgrepo, no longer listed by account {ACCOUNT_ID}" in text.err
    assert (
        f"ws-06: managed by pkgrepo, still listed by account {ACCOUNT_ID} but skipped "
        "(status 'BANNED', not RUNNING)" in text.err
    )
    markdown = pkgrepo("plan", discovery_file, "-q", memory, where, "--format", "markdown")
    assert "2 orphaned workspaces: ws-05, ws-06" in markdown.out
    junit = pkgrepo("plan", discovery_file, "-q", memory, where, "--format", "junit")
    assert "2 orphaned workspaces: ws-05, ws-06" in junit.out
    doc = pkgrepo("plan", discovery_file, "-q", memory, where, "--format", "json")
    jsonschema.validate(doc.document(), schemas.load(schemas.PLAN))
    assert doc.document()["orphaned"] == ["ws-05", "ws-06"]
    assert doc.planned() == set(NAMES) - {"ws-05", "ws-06"}

    drift = pkgrepo("drift", discovery_file, "-q", memory, where, "--format", "json")
    assert drift.code == 2
    assert json.loads(drift.out)["orphaned"] == ["ws-05", "ws-06"]

    # an apply of the fleet still names them, and touches neither
    again = pkgrepo(*APPLY, discovery_file, memory, where)
    assert again.code == 0, again.err
    assert "2 orphaned workspaces: ws-05, ws-06" in again.out
    assert writes(emu, "ws-05") == writes(emu, "ws-06") == 0
    assert emu.requests("ws-05") == emu.requests("ws-06") == {}
    if memory == "--fleet-record":  # still remembered until someone handles them
        assert json.loads(Path(where).read_text())["workspaces"] == sorted(NAMES)

    # a shard matrix names each once
    shards = [
        pkgrepo("plan", discovery_file, "-q", memory, where, "--format", "json", "--shard", s)
        for s in ("1/3", "2/3", "3/3")
    ]
    assert sorted(n for s in shards for n in s.document()["orphaned"]) == ["ws-05", "ws-06"]


def test_a_retired_workspace_leaves_the_record_once_applied_absent(
    pkgrepo: Pkgrepo, emu: EmulatorHandle, discovery_file: str, tmp_path: Path
) -> None:
    record = tmp_path / "fleet.json"
    assert pkgrepo(*APPLY, discovery_file, "--fleet-record", str(record)).code == 0
    # still listed but banned: the team declares it absent (with its host) and applies
    emu.set_account_workspaces(
        replace(ws, status="BANNED") if ws.name == "ws-06" else ws
        for ws in emu.account_workspaces()
    )
    path = Path(discovery_file)
    gone = {"ws-06": workspace(emu.host("ws-06"), ensure="absent")}
    write_discovery(path, emu, workspaces=gone)
    done = pkgrepo(*APPLY, str(path), "--fleet-record", str(record), "--allow-destroy")
    assert done.code == 0, done.err
    assert "ws-06" not in json.loads(record.read_text())["workspaces"]
    write_discovery(path, emu)
    plan = pkgrepo("plan", str(path), "-q", "--fleet-record", str(record))
    assert plan.code == 0, plan.err
    assert "orphaned" not in plan.out


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"kind": "pkgrepo-fleet-record", "version": 1, "workspaces": ["../../etc"]}',
        b'{"kind": "pkgrepo-fleet-record", "version": 1, "workspaces": [1]}',
        b'{"kind": "something-else", "version": 1, "workspaces": []}',
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_a_damaged_fleet_record_is_one_clear_error(
    pkgrepo: Pkgrepo, emu: EmulatorHandle, discovery_file: str, tmp_path: Path, content: bytes
) -> None:
    record = tmp_path / "fleet.json"
    record.write_bytes(content)
    done = pkgrepo(*APPLY, discovery_file, "--fleet-record", str(record))
    assert done.code == 1
    assert "Traceback" not in done.err
    assert f"{record} is not a pkgrepo fleet record" in done.err
    assert record.read_bytes() == content  # left as it was
    assert sum(emu.requests(n)[("POST", "/oidc/v1/token")] for n in NAMES) == 0
