"""This folder's emulator: the groups its desired-state files grant."""

import pytest

from reconciler.emulator import EmulatorConfig
from tests.support.fleet_files import GROUPS


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(groups=GROUPS)
