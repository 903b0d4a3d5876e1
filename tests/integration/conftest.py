"""Integration fixtures: a fresh emulator per test, reached through the real databricks-sdk."""

from __future__ import annotations

import pytest

from reconciler.emulator import ADMIN_TOKEN, EmulatorConfig

GROUPS = ("data-eng", "team", "contractors")


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(groups=GROUPS)


@pytest.fixture
def admin_token() -> str:
    return ADMIN_TOKEN
