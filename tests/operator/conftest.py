"""A platform engineer's fleet: N emulated workspaces, a file with labels, and the CLI.

``Fleet.write`` writes ``pkgrepo.yaml`` for the workspaces through the shared writer (any
may be pointed at a host that does not answer); ``pkgrepo`` runs the command line
in-process and scans what it printed for every planted secret; ``terminal`` runs it under
a pseudo-terminal, as a person at a prompt sees it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pexpect
import pytest

from reconciler.emulator import ADMIN_TOKEN, EmulatorConfig, EmulatorHandle
from tests.support.cli import assert_clean
from tests.support.fleet_files import defaults_block, workspace, write_desired

INDEX_TOKEN = "planted-Index-Token-0p5x"
LEDGER_KEY = "planted-Ledger-Key-0p5x"
PLANTED = (INDEX_TOKEN, LEDGER_KEY, ADMIN_TOKEN)
DEAD_HOST = "http://127.0.0.1:9/{name}"
"""Port 9 (discard) refuses connections on loopback: a workspace that cannot be reached."""


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(groups=("contractors", "data-eng"))


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PKGREPO_TEST_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("INDEX_TOKEN", INDEX_TOKEN)
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", LEDGER_KEY)
    monkeypatch.chdir(tmp_path)


@dataclass
class Fleet:
    """Writes ``pkgrepo.yaml`` for workspaces ``names`` of ``emu``."""

    path: Path
    emu: EmulatorHandle
    names: tuple[str, ...] = ()
    dead: set[str] = field(default_factory=set)

    def write(
        self,
        names: tuple[str, ...] | None = None,
        *,
        labels: Callable[[str], Mapping[str, str]] = lambda name: {
            "env": "prod" if name.startswith("prd") else "dev"
        },
        extra_index_urls: Sequence[str] = ("https://download.pytorch.org/whl/cpu",),
        index_host: str = "artifactory.example.com",
        cert: Mapping[str, str] | None = None,
        safety: Mapping[str, Any] | None = None,
        workspace_extra: Callable[[str], Mapping[str, Any]] = lambda name: {},
        defaults_extra: Mapping[str, Any] | None = None,
    ) -> str:
        """``workspace_extra(name)`` adds fields to a workspace, ``defaults_extra`` to the
        defaults."""
        self.names = names if names is not None else self.names
        block = defaults_block(
            "PKGREPO_TEST_TOKEN",
            index_url=f"https://ci:${{env:INDEX_TOKEN}}@{index_host}/api/pypi/remote/simple",
            extra_index_urls=extra_index_urls,
            cert=cert,
            **(defaults_extra or {}),
        )
        members = {
            name: workspace(
                DEAD_HOST.format(name=name) if name in self.dead else self.emu.host(name),
                labels=labels(name),
                **workspace_extra(name),
            )
            for name in self.names
        }
        return str(write_desired(self.path, members, defaults=block, safety=safety))


@pytest.fixture
def fleet(tmp_path: Path, emu: EmulatorHandle) -> Fleet:
    return Fleet(tmp_path / "pkgrepo.yaml", emu)


@pytest.fixture
def planted() -> tuple[str, ...]:
    return PLANTED


Terminal = Callable[..., pexpect.spawn]


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    """``terminal("apply", path)``: pkgrepo under a pseudo-terminal (stdin and stdout are
    a tty), as an operator runs it. Read it with ``expect``; everything it printed is
    scanned for planted secrets at the end."""
    spawned: list[tuple[pexpect.spawn, list[str]]] = []

    def spawn(*args: str) -> pexpect.spawn:
        log: list[str] = []

        class _Log:
            def write(self, data: str) -> None:
                log.append(data)

            def flush(self) -> None:
                pass

        child = pexpect.spawn(
            sys.executable,
            ["-m", "reconciler", *args],
            cwd=str(tmp_path),
            env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
            encoding="utf-8",
            timeout=60,
            dimensions=(50, 200),
        )
        child.logfile_read = _Log()
        spawned.append((child, log))
        return child

    yield spawn
    for child, log in spawned:
        if child.isalive():
            child.terminate(force=True)
        assert_clean("".join(log), PLANTED)
