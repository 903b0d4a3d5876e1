"""Every example validates, with the environment variables it documents and no others."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from reconciler import config
from reconciler.core import policy
from reconciler.core.policy import Source
from tests.pem import make_cert

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOKEN = {"DATABRICKS_TOKEN": "dapi-emulator-admin"}
INDEX = {"ARTIFACTORY_USER": "ci-bot", "ARTIFACTORY_TOKEN": "tok-5f2c9a"}
ENV = {
    "single-workspace.yaml": TOKEN,
    "fleet.yaml": {**TOKEN, **INDEX},
    "env-and-cert.yaml": {
        **TOKEN,
        **INDEX,
        "PYTORCH_MIRROR_URL": "https://pytorch-mirror.example.com/whl/cpu",
    },
    "demo.yaml": {
        **TOKEN,
        **INDEX,
        "DEMO_INDEX_CA": make_cert("pkgrepo demo CA"),
    },
    "discovered-fleet.yaml": {
        **INDEX,
        "DATABRICKS_ACCOUNT_ID": "0d1e7a4b-0000-4000-8000-000000000001",
        "DATABRICKS_CLIENT_ID": "9f0c2d4e-5a6b-4c7d-8e9f-0123456789ab",
        "DATABRICKS_CLIENT_SECRET": "dose-example-secret",
    },
    "everything.yaml": {
        **INDEX,
        "DEV_DATABRICKS_TOKEN": "dapi-dev",
        "SP_CLIENT_ID": "6f1b2c3d-0000-4000-8000-123456789abc",
        "SP_CLIENT_SECRET": "sp-secret-9d8c",
    },
}
IDENTIFIERS = {"DATABRICKS_ACCOUNT_ID", "DATABRICKS_CLIENT_ID"}
"""Identifiers, not credentials: ``discover.account`` keeps them printable."""


def test_every_example_is_listed_here() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(ENV)


@pytest.mark.parametrize("name", sorted(ENV))
def test_example_validates_cleanly(name: str) -> None:
    path = EXAMPLES / name
    assert path.read_text().startswith(
        "# yaml-language-server: $schema=../schemas/desired-state.schema.json\n"
    )
    loaded = config.load(path, ENV[name])
    findings = policy.evaluate(loaded.desired, loaded.provenance, now=dt.datetime.now(dt.UTC))
    assert findings == ()
    secret = {v for k, v in ENV[name].items() if k not in IDENTIFIERS}
    assert secret <= loaded.secrets
    # the account id and the principal's application id stay readable in plans and errors
    assert not {v for k, v in ENV[name].items() if k in IDENTIFIERS} & loaded.secrets


@pytest.mark.parametrize(("name", "variable"), [(n, v) for n in sorted(ENV) for v in ENV[n]])
def test_example_needs_each_documented_variable(name: str, variable: str) -> None:
    env = {k: v for k, v in ENV[name].items() if k != variable}
    with pytest.raises(config.InvalidConfig) as caught:
        config.load(EXAMPLES / name, env)
    assert f"{variable} is not set" in str(caught.value)
    assert variable in (EXAMPLES / name).read_text().split("version: 1")[0]  # documented


def test_demo_targets_the_local_emulator_with_a_token_from_the_environment() -> None:
    loaded = config.load(EXAMPLES / "demo.yaml", ENV["demo.yaml"])
    assert "dev" in [ws.name for ws in loaded.desired.workspaces]
    for ws in loaded.desired.workspaces:
        assert ws.host == f"http://127.0.0.1:8020/{ws.name}"
        assert ws.auth.kind == "token"
        fact = loaded.provenance.fact(ws.name, "auth.token")
        assert fact is not None and fact.source is Source.ENV


def test_the_example_certificate_is_a_long_lived_ca_without_a_key() -> None:
    from reconciler.core import certs

    text = (EXAMPLES / "certs" / "corp-root-ca.pem").read_text()
    (info,) = certs.parse_bundle(text)
    assert info.not_after > dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 15)
    assert "PRIVATE KEY" not in text
    assert sorted(p.name for p in (EXAMPLES / "certs").iterdir()) == ["corp-root-ca.pem"]
