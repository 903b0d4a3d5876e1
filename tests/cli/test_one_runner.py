"""The harness's runner (``tests/support/cli.py``) scans what every run prints: a planted
value in the output fails the run, and each folder's ``planted`` values are the ones it
looks for. Without this, a runner that scanned nothing would pass every test."""

from __future__ import annotations

import pytest

from tests.cli.conftest import INDEX_TOKEN, LEDGER_KEY
from tests.support import cli as harness


def test_this_folders_planted_values_reach_the_runner(planted: tuple[str, ...]) -> None:
    assert planted == (INDEX_TOKEN, LEDGER_KEY)
    assert harness._planted == planted


def test_a_planted_value_in_the_output_fails_the_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "_planted", ("pip-index-url",))  # `pkgrepo schema` prints it
    with pytest.raises(AssertionError, match="a planted secret reached the output"):
        harness.run_cli(capsys, "schema")
    monkeypatch.setattr(harness, "_planted", ("a-value-nothing-prints",))
    assert harness.run_cli(capsys, "schema").code == 0
