"""Hostile and broken plan files through ``pkgrepo apply FILE``: random JSON, and valid (signed)
plan files mutated at the JSON level and at the byte level: any change that survives JSON
parsing is refused, as the signature covers the whole document. Each is refused with exit 1 and a
message, never a trace, and never one write reaches a workspace (the emulator counts every
request: no POST at all, not even for the lock)."""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli import main
from reconciler.edges.planfile import KIND
from reconciler.emulator import EmulatorHandle, running_emulator
from tests.reliability.harness import (
    PLANTED,
    Fleet,
    Result,
    deployer_config,
    quiet_logging,
    seed,
    write_fleet,
)
from tests.support.cli import run_cli

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def small() -> Iterator[tuple[EmulatorHandle, Fleet, dict[str, Any]]]:
    """Four workspaces (the plan-file reader is what is fuzzed, not the fleet) and a valid
    plan file made against them; shared by the module's examples."""
    with pytest.MonkeyPatch.context() as patch, quiet_logging():
        for name, value in PLANTED.env().items():
            patch.setenv(name, value)
        with (
            tempfile.TemporaryDirectory(prefix="pkgrepo-planfuzz-") as tmp,
            running_emulator(deployer_config()) as emu,
        ):
            fleet = write_fleet(Path(tmp), emu.url, 4, bystanders=0)
            seed(fleet)
            plan = Path(tmp) / "plan.json"
            assert main(["plan", str(fleet.file), "--out", str(plan), "-q"]) == 0
            yield emu, fleet, json.loads(plan.read_text())


def apply_file(
    small: tuple[EmulatorHandle, Fleet, dict[str, Any]],
    data: bytes,
    capsys: pytest.CaptureFixture[str],
) -> Result:
    emu, fleet, _ = small
    path = fleet.directory / "tampered.json"
    path.write_bytes(data)
    emu.reset_counts()
    run = run_cli(capsys, *["apply", str(path), "--auto-approve", "-q"])
    posts = {n: [k for k in emu.requests(n) if k[0] != "GET"] for n in fleet.names}
    assert all(not v for v in posts.values()), f"a refused plan wrote: {posts}"
    return run


def assert_refused(run: Result) -> None:
    assert "Traceback" not in run.text and "unexpected error" not in run.text, run.text[-2000:]
    assert run.code == 1, run.text[-2000:]
    assert run.err.startswith("error: ") and len(run.err.strip()) > len("error: "), run.err


def semantic(document: Any) -> Any:
    """What the signature covers: all of the document. Every field, the texts for people
    included, is part of what was reviewed, so any change to it is tampering."""
    return document


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)


@pytest.mark.timeout(180)
@FUZZ
@given(inner=JSON, wrapped=st.booleans())
def test_random_json(
    small: tuple[EmulatorHandle, Fleet, dict[str, Any]],
    inner: Any,
    wrapped: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = {"kind": KIND, "source": str(small[1].file), "plan": inner} if wrapped else inner
    assert_refused(apply_file(small, json.dumps(document).encode(), capsys))


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*at, index))


def _mutate(document: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    mutated = copy.deepcopy(document)
    if not path:
        return value
    parent = mutated
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif how == "add-key" and isinstance(parent, dict):
        parent[f"extra-{last}"] = value
    return mutated


@pytest.mark.timeout(180)
@FUZZ
@given(data=st.data())
def test_mutated_plan_file(
    small: tuple[EmulatorHandle, Fleet, dict[str, Any]],
    data: st.DataObject,
    capsys: pytest.CaptureFixture[str],
) -> None:
    original = small[2]
    path = data.draw(st.sampled_from(list(_paths(original))), label="path")
    how = data.draw(st.sampled_from(["replace", "delete", "duplicate", "add-key"]), label="how")
    value = data.draw(
        JSON
        | st.sampled_from(
            ["create", "delete", "update", "no-op", "secret", "acl", "scope", "", "sha256:0", None]
        ),
        label="value",
    )
    mutated = _mutate(original, path, how, value)
    if semantic(mutated) == semantic(original):
        return  # a no-op, or a display-only field: not tampering
    assert_refused(apply_file(small, json.dumps(mutated, indent=2).encode(), capsys))


@pytest.mark.timeout(180)
@FUZZ
@given(where=st.floats(0, 1), cut=st.integers(0, 40), insert=st.binary(max_size=6))
def test_byte_damaged_plan_file(
    small: tuple[EmulatorHandle, Fleet, dict[str, Any]],
    where: float,
    cut: int,
    insert: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = bytearray(json.dumps(small[2], indent=2).encode())
    at = int(where * len(raw))
    raw[at : at + cut] = insert
    try:
        if semantic(json.loads(bytes(raw))) == semantic(small[2]):
            return
    except ValueError:
        pass
    assert_refused(apply_file(small, bytes(raw), capsys))


def test_the_unmutated_plan_file_applies(
    small: tuple[EmulatorHandle, Fleet, dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The fuzzers mutate a plan file that applies: otherwise they would test nothing. (Runs
    last in the module: it changes the workspaces.)"""
    document = small[2]
    path = small[1].directory / "plan-copy.json"  # beside the desired-state file, as planned
    path.write_text(json.dumps(document, indent=2))
    run = run_cli(capsys, *["apply", str(path), "-q"])
    assert run.code == 0, run.text[-2000:]


def test_a_plan_is_not_applied_to_another_host(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """The desired-state file moves ws03 to another workspace whose live state digests the
    same (neither has the scope): the reviewed plan must not be applied there."""
    plan = fleet.directory / "plan.json"
    assert run_cli(capsys, *["plan", str(fleet.file), "--out", str(plan), "-q"]).code == 0
    text = fleet.file.read_text()
    fleet.file.write_text(text.replace(f"{fleet.url}/ws03\n", f"{fleet.url}/unreviewed\n"))
    emu.reset_counts()
    run = run_cli(capsys, *["apply", str(plan), "-q"])
    written = [k for k in emu.requests("unreviewed") if k[0] != "GET"]
    assert run.code == 1 and written == [], (run.out[-1500:], written)
    assert f"ws03: the workspace host changed from {fleet.url}/ws03 to " in run.err
