"""Sealing: planted secrets through the new paths (seal read back, its debug line, the
memoised describe), with --debug, in text, JSON, plan files and logs."""

from __future__ import annotations

import base64
from pathlib import Path

from reconciler.emulator import Faults, OneShotFailure, WorkspaceSettings
from tests.fidelity.conftest import INDEX_TOKEN, LEDGER_KEY, Desired, World
from tests.support.cli import Pkgrepo


def test_a_failed_seal_read_back_echoing_the_value_leaks_nothing_with_debug(
    world: World, desired: Desired, pkgrepo: Pkgrepo, tmp_path: Path
) -> None:
    emu = world(ws=WorkspaceSettings())
    # On a first apply the plan reads no value: the first secrets/get is the seal's read
    # back. The service answers it with a 409 whose message echoes the value.
    emu.set_faults(
        "ws",
        Faults(
            one_shot=(
                OneShotFailure(
                    "secrets/get",
                    nth=1,
                    status=409,
                    error_code="RESOURCE_CONFLICT",
                    message=f"conflict on https://ci:{INDEX_TOKEN}@x",
                ),
            )
        ),
    )
    path = desired(emu, "ws")
    run = pkgrepo("--debug", "apply", path, "--auto-approve")
    assert run.code == 0, run.text
    assert "values not sealed" in run.text  # the new debug line was reached
    for encoded in (base64.b64encode(INDEX_TOKEN.encode()).decode(), INDEX_TOKEN.lower()):
        assert encoded not in run.text
    out = tmp_path / "plan.json"
    run = pkgrepo("--debug", "plan", path, "--out", str(out))
    assert run.code in (0, 2), run.text
    run = pkgrepo("--debug", "drift", path, "--format", "json")
    text = run.text + out.read_text()
    for planted in (INDEX_TOKEN, LEDGER_KEY, base64.b64encode(INDEX_TOKEN.encode()).decode()):
        assert planted not in text
    ledger = emu.files("ws")
    assert INDEX_TOKEN not in repr(ledger.__dict__)
