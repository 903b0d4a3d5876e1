"""The installed package with the lowest ``databricks-sdk`` release ``pyproject.toml`` allows:
the adapter relies on SDK behaviour that changes between releases."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Installed, plan_apply_drift_round_trip

pytestmark = pytest.mark.installed


def test_plan_apply_drift_round_trip_with_the_lowest_sdk(
    installed_lowest: Installed, tmp_path: Path
) -> None:
    plan_apply_drift_round_trip(installed_lowest, tmp_path)
