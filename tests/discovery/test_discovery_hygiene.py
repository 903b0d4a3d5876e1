"""What a reviewer would try against discovery: leak the principal's client secret or the
workspace tokens it gets through any output, and split the discovered fleet for a CI
matrix."""

from __future__ import annotations

import logging
from pathlib import Path

from reconciler.emulator import EmulatorHandle
from tests.support.cli import Pkgrepo
from tests.support.leaks import Scanner

from .conftest import CLIENT_SECRET, NAMES

APPLY = ("apply", "--auto-approve")


def test_no_client_secret_or_token_reaches_any_output(
    pkgrepo: Pkgrepo,
    emu: EmulatorHandle,
    discovery_file: str,
    tmp_path: Path,
) -> None:
    out = tmp_path / "plan.json"
    record = tmp_path / "fleet.json"
    runs = [
        pkgrepo("--debug", "plan", discovery_file, "--format", "markdown"),
        pkgrepo("plan", discovery_file, "--format", "json", "--out", str(out)),
        pkgrepo("--debug", *APPLY, discovery_file, "--fleet-record", str(record)),
        pkgrepo("drift", discovery_file, "--format", "junit"),
        pkgrepo("plan", discovery_file, "-w", "ws-0*"),
    ]
    logging.getLogger().handlers.clear()
    issued_tokens = emu.account_tokens()  # every OAuth access token handed out, still live
    assert [r.code for r in runs] == [0, 0, 0, 0, 0], [r.err[-300:] for r in runs]
    assert issued_tokens, "no token was issued: the test proved nothing"
    planted = {"client secret": CLIENT_SECRET}
    planted.update({f"access token {i}": t for i, t in enumerate(issued_tokens[:20])})
    scanner = Scanner(planted)
    findings = []
    for i, run in enumerate(runs):
        findings += scanner.scan(f"run {i} stdout", run.out)
        findings += scanner.scan(f"run {i} stderr", run.err)
    findings += scanner.scan("plan file", out.read_text())
    findings += scanner.scan("fleet record", record.read_text())
    assert findings == []


def test_shards_split_the_discovered_fleet_exactly_once(
    pkgrepo: Pkgrepo, discovery_file: str
) -> None:
    shards = []
    for index in range(1, 5):
        run = pkgrepo("plan", discovery_file, "-q", "--format", "json", "--shard", f"{index}/4")
        assert run.code == 0, run.err
        shards.append(run.planned())
    assert set().union(*shards) == set(NAMES)
    assert sum(len(s) for s in shards) == len(NAMES)
    assert all(shards)
    # the same split on a second run: a matrix job always gets the same workspaces
    again = pkgrepo("plan", discovery_file, "-q", "--format", "json", "--shard", "2/4")
    assert again.planned() == shards[1]
