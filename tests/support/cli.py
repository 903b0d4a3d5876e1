"""The one way tests run pkgrepo's command line in this process: ``run_cli`` (a function, for
helpers) and the ``pkgrepo`` fixture (the same, with its output scanned).

``pkgrepo(*args)`` (or ``run_cli(capsys, *args)``) runs ``reconciler.cli.main(args)`` and
returns a ``Run``; every run's output is checked for a stack trace and for each value of the
``planted`` fixture (a folder or module overrides ``planted`` with the secrets its tests
plant; an autouse fixture hands it to the runner for each test, so no run goes unscanned).
A ``Run`` unpacks as ``code, out, err``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from reconciler.cli import main


@dataclass(frozen=True)
class Run:
    """One pkgrepo invocation: exit code, what it printed on stdout and stderr."""

    code: int
    out: str
    err: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.code, self.out, self.err))

    def __getitem__(self, index: int) -> Any:
        return (self.code, self.out, self.err)[index]

    @property
    def text(self) -> str:
        return self.out + self.err

    def json(self) -> Any:
        """The JSON document on stdout (with ``--format json``, stdout holds nothing else)."""
        return json.loads(self.out)

    document = json

    def results(self) -> dict[str, dict[str, Any]]:
        """``apply --format json``: workspace -> its result row."""
        return {row["workspace"]: row for row in self.json()["workspaces"]}

    def planned(self) -> set[str]:
        """``plan --format json``: the workspaces planned."""
        return {ws["workspace"] for ws in self.json()["workspaces"]}


Pkgrepo = Callable[..., Run]


_planted: tuple[str, ...] = ()
"""This test's planted values (set by ``_scan_runs`` for every test; each xdist worker is a
process of its own)."""


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """``pkgrepo ARGS`` in this process, as a user runs it; its output scanned."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert_clean(out + err, _planted)
    return Run(code, out, err)


def assert_clean(text: str, planted: tuple[str, ...]) -> None:
    """No stack trace, and none of the planted values, in what a run printed."""
    assert "Traceback" not in text
    for value in filter(None, planted):
        assert value not in text, "a planted secret reached the output"


@pytest.fixture
def planted() -> tuple[str, ...]:
    """The secret values this folder's tests plant (override it where they plant some)."""
    return ()


@pytest.fixture(autouse=True)
def _scan_runs(planted: tuple[str, ...]) -> Iterator[None]:
    global _planted
    _planted = tuple(planted)
    yield
    _planted = ()


@pytest.fixture
def pkgrepo(capsys: pytest.CaptureFixture[str]) -> Pkgrepo:
    def run(*args: str) -> Run:
        return run_cli(capsys, *args)

    return run
