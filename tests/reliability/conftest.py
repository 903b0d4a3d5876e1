"""Fixtures of the reliability suite: an emulator per test with the deployer's principals, a
seeded fleet of 20 workspaces on it, the planted environment, and a clean root logger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.redact import Scrubber
from reconciler.emulator import EmulatorConfig, EmulatorHandle
from reconciler.terminal import output
from tests.reliability.harness import (
    PLANTED,
    Fleet,
    deployer_config,
    quiet_logging,
    seed,
    write_fleet,
)


@pytest.fixture(autouse=True)
def planted_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PLANTED.env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each ``main()`` call starts as a new process would: no secret registered yet by an
    earlier test, and the root logger as it was."""
    monkeypatch.setattr(output, "_scrubber", Scrubber())
    with quiet_logging():
        yield


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return deployer_config()


@pytest.fixture
def fleet(emu: EmulatorHandle, tmp_path: Path) -> Fleet:
    made = write_fleet(tmp_path / "repo", emu.url, 20)
    seed(made)
    return made
