"""``pkgrepo --help`` lists every command without importing them (nor the SDK behind them),
and what it lists is what each command says of itself."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from reconciler.cli import COMMAND_MODULES, SUMMARIES


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_summary_matches_the_command(module: str) -> None:
    command = importlib.import_module(f"reconciler.commands.{module}").command
    assert SUMMARIES.get(module) == command.get_short_help_str(limit=1000), (
        f"update SUMMARIES[{module!r}] in reconciler/cli.py"
    )


def test_help_imports_no_command_and_no_sdk() -> None:
    probe = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "prefixes = ('databricks', 'reconciler.commands.')\n"
        "loaded = [m for m in sys.modules if m.startswith(prefixes)]\n"
        "print('LOADED', loaded)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "LOADED []" in run.stdout, run.stdout
    for module in COMMAND_MODULES:
        assert module.replace("_", "-") in run.stdout
