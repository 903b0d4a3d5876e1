"""An emulated Databricks account with 50 running workspaces (``ws-00``..``ws-49``) and a
few that must not be managed, one account-level service principal with an OAuth secret, and
a desired-state file that discovers the fleet with no hand-written host. Everything is
driven through the real command line and the real databricks-sdk."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import (
    AccountSettings,
    EmulatorConfig,
    EmulatorHandle,
    ListedWorkspace,
    ServicePrincipal,
)
from tests.support.fleet_files import STANDARD_ACLS, desired_document, write_document

COUNT = 50
NAMES = tuple(f"ws-{i:02d}" for i in range(COUNT))
ACCOUNT_ID = "0d1e7a4b-0000-4000-8000-0000000000a1"
CLIENT_ID = "9f0c2d4e-5a6b-4c7d-8e9f-fleetdeployer1"
CLIENT_SECRET = "dose-fleet-secret-7c1f0b2e9a"
LEDGER_KEY = "discovery-tests-ledger-key-0123456789"
INDEX = "https://pypi.corp.example/api/pypi/pypi-remote/simple"
REGIONS = ("eu-west-1", "us-east-1")
NOT_MANAGED = {
    "new-one": "PROVISIONING",
    "broken": "FAILED",
    "sandbox-1": "RUNNING",  # excluded by name in the file
}


def region_of(i: int) -> str:
    return REGIONS[i % len(REGIONS)]


def account(
    *,
    admin_in: tuple[str, ...] = ("*",),
    user_in: tuple[str, ...] = (),
    ttl: int = 3600,
) -> AccountSettings:
    workspaces = [
        ListedWorkspace(
            name=name,
            deployment_name=name,
            region=region_of(i),
            tags={"env": ("dev", "prod")[i % 2], "wave": str(i % 3)},
        )
        for i, name in enumerate(NAMES)
    ]
    workspaces += [
        ListedWorkspace(name=name, deployment_name=name, status=status)
        for name, status in NOT_MANAGED.items()
    ]
    deployer = ServicePrincipal(
        CLIENT_ID,
        secrets=(CLIENT_SECRET,),
        display_name="fleet-deployer",
        account_admin=True,
        admin_in=admin_in,
        user_in=user_in,
    )
    return AccountSettings(
        account_id=ACCOUNT_ID,
        workspaces=tuple(workspaces),
        service_principals=(deployer,),
        token_ttl_seconds=ttl,
    )


def discovery_config(settings: AccountSettings | None = None) -> EmulatorConfig:
    # no static tokens at all: the only way in is the service principal's OAuth secret
    return EmulatorConfig(default_tokens=False, account=settings or account())


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, no_ambient_databricks: None) -> None:
    """What a CI job exports: the principal's id and secret, the ledger key; nothing else."""
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("DATABRICKS_ACCOUNT_ID", ACCOUNT_ID)
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", LEDGER_KEY)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return discovery_config()


def discovery_document(
    emu: EmulatorHandle,
    *,
    waves: bool = True,
    workspaces: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The fleet found in the account: ``ws-*`` with labels (and waves, unless ``waves`` is
    false) from their tags, sandboxes left out; ``workspaces`` are listed beside it."""
    rule: dict[str, Any] = {"name": "ws-*", "labels": {"env": "{tag:env}", "region": "{region}"}}
    if waves:
        rule["wave"] = "{tag:wave}"
    discover = {
        "account": {
            "host": emu.url,
            "account_id": {"env": "DATABRICKS_ACCOUNT_ID"},
            "auth": {
                "client_id": {"env": "DATABRICKS_CLIENT_ID"},
                "client_secret": {"env": "DATABRICKS_CLIENT_SECRET"},
            },
        },
        "host": f"{emu.url}/{{deployment_name}}",
        "include": [rule],
        "exclude": ["sandbox-*"],
    }
    defaults = {"repositories": {"index_url": INDEX}, "acls": dict(STANDARD_ACLS)}
    return desired_document(workspaces, defaults=defaults, discover=discover)


def write_discovery(path: Path, emu: EmulatorHandle, **kwargs: Any) -> Path:
    """``discovery_document(emu, **kwargs)`` written to ``path`` by the shared writer."""
    return write_document(path, discovery_document(emu, **kwargs))


@pytest.fixture
def discovery_file(tmp_path: Path, emu: EmulatorHandle) -> str:
    return str(write_discovery(tmp_path / "pkgrepo.yaml", emu))
