"""The layers of the package, as `make lint` checks them (import-linter contracts in
pyproject.toml, and ruff's no-print rule): each check fails on a copy of the package that
breaks it, and the contracts classify every module, so a new one cannot slip past them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONTRACTS = {
    c["id"]: c
    for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
}
NOT_CODE = {"schemas", "__main__"}
"""``schemas`` holds JSON only; ``__main__`` runs the CLI."""
LAYERS = ("core", "engine", "edges", "terminal")
"""The folders whose modules the contracts place one by one where they need to."""
TOP_LEVEL = {"cli"}
"""The only module outside a folder: the entry point."""


def _modules() -> set[str]:
    """Every module of the package: top-level modules and packages, and each module of the
    layer folders (a layer folder's package itself is not a module of its own)."""
    package = ROOT / "reconciler"
    found = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    found |= {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    modules = {f"reconciler.{name}" for name in found - NOT_CODE - set(LAYERS)}
    for layer in LAYERS:
        modules |= {
            f"reconciler.{layer}.{p.stem}"
            for p in (package / layer).glob("*.py")
            if p.stem != "__init__"
        }
    return modules


def _named(module: str, names: set[str]) -> bool:
    """Whether ``module`` or a package holding it is in ``names`` (as import-linter reads them)."""
    parts = module.split(".")
    return any(".".join(parts[:i]) in names for i in range(2, len(parts) + 1))


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "reconciler", tmp_path / "reconciler", ignore=_no_cache)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _no_cache(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__"}


def _lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_package_as_it_is_keeps_every_contract(tmp_path: Path) -> None:
    run = _lint_imports(_copy(tmp_path))
    assert run.returncode == 0, run.stdout[-3000:]
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("core/plan.py", "from reconciler.engine import fleet", "does no I/O"),
        ("core/drift.py", "import requests", "does no I/O"),
        ("core/report.py", "from reconciler.edges import planfile", "does no I/O"),
        ("core/model.py", "from reconciler.terminal import output", "does no I/O"),
        ("core/policy.py", "from reconciler import config", "does no I/O"),
        ("core/redact.py", "import yaml", "does no I/O"),
        ("engine/workspace.py", "import databricks.sdk", "Only the adapter imports databricks-sdk"),
        ("edges/probe.py", "import databricks.sdk", "Only the adapter imports databricks-sdk"),
        ("config/reader.py", "from databricks.sdk import WorkspaceClient", "Only the adapter"),
        ("emulator/backend.py", "from reconciler.core import plan", "The emulator imports nothing"),
        ("emulator/api.py", "from reconciler.engine import retry", "The emulator imports nothing"),
        ("emulator/server.py", "from reconciler.edges import adapter", "The emulator imports"),
        ("engine/fleet.py", "from reconciler.terminal import output", "Only the commands write"),
        ("render/text.py", "from reconciler.terminal import progress", "Only the commands write"),
        ("edges/adapter.py", "import rich", "Only the commands write"),
        ("core/plan.py", "from reconciler.commands import context", "Only the commands write"),
    ],
)
def test_a_forbidden_import_fails_the_lint(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    where = _copy(tmp_path)
    path = where / "reconciler" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa: F401\n")
    run = _lint_imports(where)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "BROKEN" in run.stdout
    failed = run.stdout.split("Broken contracts", 1)[1]
    assert broken in " ".join(failed.split()), failed[:2000]


def test_a_print_below_the_commands_fails_the_lint(tmp_path: Path) -> None:
    where = _copy(tmp_path)
    path = where / "reconciler" / "engine" / "fleet.py"
    path.write_text(path.read_text() + '\nprint("done")\n')
    run = subprocess.run(
        [str(BIN / "ruff"), "check", "--no-cache", "reconciler/engine/fleet.py"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1 and "T201" in run.stdout, run.stdout


def test_every_module_lives_in_a_folder_that_names_its_layer() -> None:
    """The layout tells the pipeline: nothing but the entry point sits flat in the package."""
    flat = {p.stem for p in (ROOT / "reconciler").glob("*.py")} - {"__init__", "__main__"}
    assert flat == TOP_LEVEL
    for layer in LAYERS:
        assert (ROOT / "reconciler" / layer / "__init__.py").exists(), layer


def test_the_contracts_classify_every_module() -> None:
    """A new module must be placed: in the pure core or outside it, known to the emulator's
    and the terminal's contracts."""
    modules = _modules()
    assert "reconciler.core.plan" in modules and "reconciler.cli" in modules
    core = CONTRACTS["pure-core"]
    placed = set(core["source_modules"]) | set(core["forbidden_modules"])
    assert {m for m in modules if not _named(m, placed)} == set(), (
        "not placed in or out of the pure core"
    )
    emulator = set(CONTRACTS["emulator-stands-alone"]["forbidden_modules"])
    shared = {"reconciler.core.errors", "reconciler.edges.private_file", "reconciler.emulator"}
    assert {m for m in modules - shared if not _named(m, emulator)} == set(), (
        "the emulator's contract does not name it"
    )
    assert not any(_named(m, emulator) for m in shared), "the emulator may import these"
    quiet = set(CONTRACTS["commands-print"]["source_modules"])
    speaking = {
        "reconciler.cli",
        "reconciler.commands",
        "reconciler.terminal",
        "reconciler.emulator",
    }
    assert {m for m in modules if not _named(m, quiet | speaking)} == set(), (
        "the terminal contract does not name it"
    )
