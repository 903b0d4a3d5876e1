"""Fixtures for the export tests (see ``tests.drift.support``)."""

from tests.drift.support import emu, env

__all__ = ["emu", "env"]
