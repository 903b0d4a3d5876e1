"""Integration fixtures: a fresh emulator per test, reached through the real databricks-sdk."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.emulator import ADMIN_TOKEN, EmulatorConfig, EmulatorHandle, running_emulator

GROUPS = ("data-eng", "team", "contractors")


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    with running_emulator(EmulatorConfig(groups=GROUPS)) as handle:
        yield handle


@pytest.fixture
def admin_token() -> str:
    return ADMIN_TOKEN
