"""The one emulator fixture: ``emu``, an emulator running in this process (a thread on a
free 127.0.0.1 port, fresh state per test), configured by the ``emulator_config`` fixture.

A folder or a module that needs other principals, groups, faults or an account overrides
``emulator_config`` (never ``emu``). ``start_emulator(config)`` starts more emulators for
one test (each stopped at its end), for tests that compare configurations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
