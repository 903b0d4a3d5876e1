"""The one emulator fixture: ``emu``, an emulator running in this process (a thread on a
free 127.0.0.1 port, fresh state per test), configured by the ``emulator_config`` fixture.

A folder or a module that needs other principals, groups, faults or an account overrides
``emulator_config`` (never ``emu``). ``start_emulator(config)`` starts more emulators for
one test (each stopped at its end), for tests that compare configurations.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorConfig, EmulatorHandle

StartEmulator = Callable[[EmulatorConfig], EmulatorHandle]


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """The default emulator: the built-in admin and user tokens, no extra groups."""
    return EmulatorConfig()


@pytest.fixture
def start_emulator() -> Iterator[StartEmulator]:
    handles: list[EmulatorHandle] = []

    def start(config: EmulatorConfig) -> EmulatorHandle:
        handle = EmulatorHandle(config).start()
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def emu(start_emulator: StartEmulator, emulator_config: EmulatorConfig) -> EmulatorHandle:
    return start_emulator(emulator_config)


@pytest.fixture
def no_ambient_databricks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's ``~/.databrickscfg`` or ``DATABRICKS_*`` variables never reach a client:
    they are removed, and the profile file points at one that does not exist. A folder's
    autouse environment fixture requests it, then sets what its CI job would export."""
    for name in list(os.environ):
        if name.startswith("DATABRICKS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
