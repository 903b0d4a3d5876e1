"""Shared test setup: the repository root on sys.path so ``tests.support`` imports, and a
hypothesis profile that keeps the suite fast."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from reconciler.core.redact import Scrubber
from reconciler.terminal import output

pytest_plugins = ["tests.support.emulator", "tests.support.cli", "tests.support.fleet_files"]
"""The one harness (``tests/support``): the same fixtures in every folder."""

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "thorough", deadline=None, max_examples=500, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _fresh_scrubber(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: no secret registered by an earlier test."""
    monkeypatch.setattr(output, "_scrubber", Scrubber())


SKIP_VERIFY = "PKGREPO_SKIP_VERIFY"
_LOCAL_NAMES = {"localhost", "localhost.localdomain", ""}


def _is_loopback(host: Any) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """Nothing a test runs may reach past 127.0.0.1: host names other than localhost do not
    resolve, for the whole session (module fixtures included). And `plan`/`apply` do not
    probe package indexes (the examples name public hosts) unless a test is marked
    ``verify``, whose indexes are local."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, "tests reach 127.0.0.1 only")
        return real(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", guarded)
        patch.setenv(SKIP_VERIFY, "1")
        yield


@pytest.fixture(autouse=True)
def _verify_where_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("verify") is not None:
        monkeypatch.delenv(SKIP_VERIFY, raising=False)
