"""Fixtures for the emulator tests: a fresh emulator per test, real SDK clients over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config

from reconciler.emulator import (
    ADMIN_TOKEN,
    EmulatorConfig,
    EmulatorHandle,
    Principal,
    WorkspaceSettings,
)

ALICE_TOKEN = "dapi-alice"  # alice@example.com, member of data-eng
BOB_TOKEN = "dapi-bob"  # bob@example.com, member of users only
SP_TOKEN = "dapi-ci-bot"  # service principal ci-bot, member of deployers

TEST_CONFIG = EmulatorConfig(
    principals=(
        Principal("alice@example.com", groups=frozenset({"data-eng"}), tokens=(ALICE_TOKEN,)),
        Principal("bob@example.com", tokens=(BOB_TOKEN,), display_name="Bob"),
        Principal(
            "0a1b2c3d-ci-bot",
            groups=frozenset({"deployers"}),
            tokens=(SP_TOKEN,),
            kind="service_principal",
            display_name="ci-bot",
        ),
    ),
    groups=("data-scientists",),
    workspaces={"notebook": WorkspaceSettings(notebook_context=True)},
)


@pytest.fixture(autouse=True)
def _no_ambient_databricks_config(no_ambient_databricks: None) -> None:
    """A developer's ~/.databrickscfg or DATABRICKS_* variables must not leak into clients."""


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return TEST_CONFIG


@pytest.fixture
def emulator(emu: EmulatorHandle) -> EmulatorHandle:
    """The harness's ``emu`` (``tests/support/emulator.py``), under this folder's name."""
    return emu


MakeClient = Callable[..., WorkspaceClient]


@pytest.fixture
def make_client(emulator: EmulatorHandle) -> MakeClient:
    """``make_client(workspace="ws1", token=ADMIN_TOKEN, **config)``: a real SDK client;
    ``config`` goes to the SDK's ``Config`` (e.g. ``retry_timeout_seconds=2``)."""

    def make(workspace: str = "ws1", token: str = ADMIN_TOKEN, **config: Any) -> WorkspaceClient:
        return WorkspaceClient(config=Config(host=emulator.host(workspace), token=token, **config))

    return make


@pytest.fixture
def client(emulator: EmulatorHandle) -> WorkspaceClient:
    return WorkspaceClient(host=emulator.host("ws1"), token=ADMIN_TOKEN)
