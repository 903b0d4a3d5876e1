"""The adapter reads proxy and CA-bundle settings once per client, not once per request, and
still honours them (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.core.model import AuthSpec, SecretValue, WorkspaceSpec
from reconciler.edges import adapter


def session_for(host: str) -> object:
    spec = WorkspaceSpec(
        name="w", host=host, auth=AuthSpec(kind="token", token=SecretValue("dapi-x"))
    )
    return adapter._session_of(adapter.make_client(spec))


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example.com")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")
    adapter._environment_proxies.cache_clear()
    yield
    adapter._environment_proxies.cache_clear()  # later tests read their own environment


def test_proxies_and_ca_bundle_are_honoured() -> None:
    session = session_for("https://dbc-1.cloud.databricks.com")
    assert session.trust_env is False  # type: ignore[attr-defined]
    assert session.proxies["https"] == "http://proxy.corp.example:3128"  # type: ignore[attr-defined]
    assert session.verify == "/etc/corp/ca.pem"  # type: ignore[attr-defined]


def test_no_proxy_hosts_go_direct() -> None:
    session = session_for("https://ws.internal.example.com")
    assert "https" not in (session.proxies or {})  # type: ignore[attr-defined]
