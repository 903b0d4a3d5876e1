"""FIDELITY.md is the table of the real service's behaviours: every row names its source and
the tests that prove it, and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def rows() -> list[list[str]]:
    found = []
    for line in (ROOT / "FIDELITY.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].isdigit():
            found.append(cells)
    return found


def test_every_row_has_a_source_and_a_test_that_exists() -> None:
    table = rows()
    assert len(table) >= 15
    for number, behaviour, source, emulator, handling, tests in table:
        assert behaviour and source and emulator and handling, f"row {number} is incomplete"
        named = NAMED.findall(tests)
        assert named, f"row {number} names no test"
        for path, name in named:
            module = ast.parse((ROOT / path).read_text(encoding="utf-8"))
            functions = {n.name for n in ast.walk(module) if isinstance(n, ast.FunctionDef)}
            assert name in functions, f"row {number}: {path}::{name} does not exist"


def test_every_fidelity_test_is_in_the_table() -> None:
    text = (ROOT / "FIDELITY.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "tests" / "fidelity").glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        module = ast.parse(path.read_text(encoding="utf-8"))
        for node in module.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                assert f"{path.relative_to(ROOT)}::{node.name}" in text, node.name
