"""A fleet of 50 workspaces (``ws-00``..``ws-49``) on one in-process emulator, driven through
the real command line (``reconciler.cli.main``) and the real databricks-sdk.

- ``fleet_file``: writes the desired-state YAML (labels, waves, safety block) for the fleet.
- ``Journal``: every request the emulator receives, in the order it received them (recorded
  before the answer goes out, so "A was received before B" is exact, not a timing guess).
- ``run``: one ``pkgrepo`` invocation, its exit code and captured output.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.emulator import (
    ADMIN_TOKEN,
    EmulatorConfig,
    EmulatorHandle,
    Faults,
    RequestSeen,
    WorkspaceSettings,
)
from tests.support.fleet_files import defaults_block, workspace, write_desired

COUNT = 50
NAMES = tuple(f"ws-{i:02d}" for i in range(COUNT))
LEDGER_KEY = "fleet-tests-ledger-key-0123456789"
INDEX = "https://pypi.corp.example/api/pypi/pypi-remote/simple"
EXTRA = "https://download.pytorch.org/whl/cpu"
ENVS = ("dev", "staging", "prod")
REGIONS = ("eu", "us")
GROUPS = ("data-eng",)


def env_of(i: int) -> str:
    return ENVS[i % len(ENVS)]


def region_of(i: int) -> str:
    return REGIONS[i % len(REGIONS)]


def canary_waves(i: int) -> int:
    """Five canaries in wave 0, fifteen in wave 1, the other thirty in wave 2."""
    return 0 if i < 5 else 1 if i < 20 else 2


def one_wave(i: int) -> int:
    return 0


def names_where(predicate: Callable[[int], bool]) -> set[str]:
    return {NAMES[i] for i in range(COUNT) if predicate(i)}


def in_wave(wave_of: Callable[[int], int], wave: int) -> set[str]:
    return {NAMES[i] for i in range(COUNT) if wave_of(i) == wave}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, no_ambient_databricks: None) -> None:
    """The token and ledger key a CI job would export; nothing ambient leaks in."""
    monkeypatch.setenv("DATABRICKS_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", LEDGER_KEY)


# -- the emulator and what it received ---------------------------------------------------------


@dataclass(frozen=True)
class Received:
    seq: int
    workspace: str
    method: str
    path: str
    status: int

    @property
    def is_write(self) -> bool:
        return self.method == "POST" and self.path.startswith("/api/")


class Journal:
    """Every request of every workspace in the order the emulator received them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self.entries: list[Received] = []

    def add(self, seen: RequestSeen) -> None:
        with self._lock:
            self.entries.append(
                Received(next(self._counter), seen.workspace, seen.method, seen.path, seen.status)
            )

    def watch(self, emu: EmulatorHandle) -> EmulatorHandle:
        """Record every request ``emu`` receives from now on (its request-listener hook)."""
        emu.add_request_listener(self.add)
        return emu

    def mark(self) -> int:
        """A point in the journal: ``since(mark)`` gives what came after it."""
        with self._lock:
            return len(self.entries)

    def since(self, mark: int = 0) -> list[Received]:
        with self._lock:
            return list(self.entries[mark:])

    def writes(self, mark: int = 0) -> dict[str, list[Received]]:
        found: dict[str, list[Received]] = {}
        for entry in self.since(mark):
            if entry.is_write:
                found.setdefault(entry.workspace, []).append(entry)
        return found


@pytest.fixture
def journal(emu: EmulatorHandle) -> Journal:
    """Watches ``emu``; attach it to another emulator with ``journal.watch(handle)``."""
    found = Journal()
    found.watch(emu)
    return found


def fleet_config(faults: Mapping[str, Faults] | None = None) -> EmulatorConfig:
    return EmulatorConfig(
        groups=GROUPS,
        workspaces={name: WorkspaceSettings(faults=f) for name, f in (faults or {}).items()},
    )


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return fleet_config()


# -- the desired-state file --------------------------------------------------------------------


@dataclass
class FleetFile:
    """Writes ``pkgrepo.yaml`` for the 50 workspaces of ``emu`` (through the shared writer)."""

    path: Path
    emu: EmulatorHandle

    def write(
        self,
        *,
        wave_of: Callable[[int], int] = canary_waves,
        index_url: str = INDEX,
        extra_index_urls: tuple[str, ...] = (EXTRA,),
        max_update_share: float = 0.3,
        max_delete_workspaces: int = 1,
    ) -> str:
        members = {
            name: workspace(
                self.emu.host(name),
                labels={"env": env_of(i), "region": region_of(i)},
                wave=wave_of(i),
            )
            for i, name in enumerate(NAMES)
        }
        block = defaults_block(
            "DATABRICKS_TOKEN",
            index_url=index_url,
            extra_index_urls=extra_index_urls,
            acls={"admins": "MANAGE", "users": "READ", "data-eng": "READ"},
        )
        safety = {
            "max_update_share": max_update_share,
            "max_delete_workspaces": max_delete_workspaces,
        }
        return str(write_desired(self.path, members, defaults=block, safety=safety))


@pytest.fixture
def fleet_file(tmp_path: Path, emu: EmulatorHandle) -> FleetFile:
    return FleetFile(tmp_path / "pkgrepo.yaml", emu)
