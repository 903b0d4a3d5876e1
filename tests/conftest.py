"""Shared test setup: the repository root on sys.path so ``tests.fakes`` imports, and a
hypothesis profile that keeps the suite fast."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from reconciler import output
from reconciler.redact import Scrubber

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "thorough", deadline=None, max_examples=500, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _fresh_scrubber(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: no secret registered by an earlier test."""
    monkeypatch.setattr(output, "_scrubber", Scrubber())
