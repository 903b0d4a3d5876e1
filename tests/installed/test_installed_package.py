"""pkgrepo as users get it: built into an sdist and a wheel, installed into a fresh virtual
environment outside the checkout, and run from an unrelated directory.

Nothing here may see the source tree: the commands run with a clean environment (no
``PYTHONPATH``, no variables the examples name) from a temporary directory, so a file read
relative to the checkout, an undeclared dependency or a missing piece of package data fails
here as it would for a user. The plan/apply/drift round trip runs twice: with the newest
``databricks-sdk`` the constraints file pins, and with the lowest release ``pyproject.toml``
allows, since the adapter relies on SDK behaviour that changes between releases.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import EXAMPLES, ROOT, Installed, plan_apply_drift_round_trip

pytestmark = pytest.mark.installed


def test_sdist_carries_what_a_build_needs(dist: Path) -> None:
    import tarfile

    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {Path(*Path(n).parts[1:]).as_posix() for n in archive.getnames()}
    for needed in ("pyproject.toml", "README.md", "reconciler/schemas/plan.schema.json"):
        assert needed in names


def test_wheel_ships_the_schemas(dist: Path) -> None:
    import zipfile

    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("desired-state", "plan", "drift"):
        assert f"reconciler/schemas/{name}.schema.json" in names
    assert "reconciler/py.typed" in names


def test_version_and_help(installed: Installed) -> None:
    version = installed.run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("pkgrepo, version ")
    help_run = installed.run("--help")
    assert help_run.returncode == 0 and "validate" in help_run.stdout


def test_python_dash_m(installed: Installed) -> None:
    run = subprocess.run(
        [str(installed.bin / "python"), "-m", "reconciler", "--version"],
        cwd=installed.home,
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr


def test_schema_is_the_published_one(installed: Installed) -> None:
    run = installed.run("schema")
    assert run.returncode == 0, run.stderr
    published = json.loads((ROOT / "schemas" / "desired-state.schema.json").read_text())
    assert json.loads(run.stdout) == published


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_validate_every_example_without_secrets(installed: Installed, example: Path) -> None:
    """No variable an example names is set: validate passes with notes naming them."""
    copy = installed.home / example.name
    shutil.copy(example, copy)
    certs = installed.home / "certs"
    if not certs.exists():
        shutil.copytree(ROOT / "examples" / "certs", certs)
    run = installed.run("validate", example.name)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "valid" in run.stderr
    names = _variables(yaml.safe_load(example.read_text()))
    for name in names:
        assert name in run.stdout, f"{name} unset but not named in the notes"
    if names:
        resolved = installed.run("validate", "--resolve", example.name)
        assert resolved.returncode == 1
        assert sorted(names)[0] in resolved.stdout


def _variables(node: object) -> set[str]:
    """Every environment variable a desired-state document refers to."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {str(node["env"])}
        return set().union(*(_variables(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_variables(v) for v in node))
    if isinstance(node, str):
        return set(re.findall(r"\$\{env:(\w+)\}", node))
    return set()


def test_plan_apply_drift_round_trip_with_the_pinned_dependencies(
    installed: Installed, tmp_path: Path
) -> None:
    plan_apply_drift_round_trip(installed, tmp_path)


def test_unexpected_error_exits_3_without_a_trace(installed: Installed) -> None:
    """A crash in the installed package: exit 3, its type, no trace unless asked."""
    probe = (
        "import sys\n"
        "from reconciler import cli\n"
        "from reconciler.commands import schema\n"
        "def boom(): raise RuntimeError('boom at https://u:installed-crash-pw@h.example.com')\n"
        "schema.command.callback = boom\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    for args, traced in ((["schema"], False), (["--debug", "schema"], True)):
        run = subprocess.run(
            [str(installed.bin / "python"), "-c", probe, *args],
            cwd=installed.home,
            env=installed.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 3
        assert "unexpected error (RuntimeError): boom" in run.stderr
        assert ("Traceback" in run.stderr) is traced
        assert "installed-crash-pw" not in run.stdout + run.stderr
