"""A fleet discovered from the account and reached with one service principal's OAuth
machine-to-machine credentials, end to end through the real databricks-sdk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorHandle, running_emulator
from tests.support.cli import Pkgrepo

from .conftest import (
    CLIENT_ID,
    COUNT,
    NAMES,
    account,
    discovery_config,
    region_of,
    write_discovery,
)

APPLY = ("apply", "--auto-approve", "-q")


def token_requests(emu: EmulatorHandle) -> int:
    return sum(emu.requests(name)[("POST", "/oidc/v1/token")] for name in NAMES)


def test_discovers_applies_and_converges_with_oauth(
    pkgrepo: Pkgrepo, emu: EmulatorHandle, discovery_file: str
) -> None:
    plan = pkgrepo("plan", discovery_file, "-q", "--format", "json")
    assert plan.code == 0, plan.err
    assert plan.planned() == set(NAMES)
    assert f"Discovered {COUNT} of {COUNT + 3} workspace(s)" in plan.err
    assert "skipped 'new-one': status 'PROVISIONING', not RUNNING" in plan.err
    assert "skipped 'broken': status 'FAILED', not RUNNING" in plan.err
    assert "skipped 'sandbox-1': excluded by `sandbox-*`" in plan.err
    # every workspace was reached with a token of its own, got from its own token endpoint
    assert token_requests(emu) == COUNT

    assert all(ws["changes"] for ws in plan.document()["workspaces"])

    done = pkgrepo(*APPLY, discovery_file)
    assert done.code == 0, done.err
    again = pkgrepo("plan", discovery_file, "-q", "--detailed-exitcode")
    assert again.code == 0, again.err


def test_labels_and_waves_come_from_the_account(
    pkgrepo: Pkgrepo, emu: EmulatorHandle, discovery_file: str
) -> None:
    prod_eu = pkgrepo(
        "plan",
        discovery_file,
        "-q",
        "--format",
        "json",
        "--select",
        "env=prod",
        "--select",
        "region=us-east-1",
    )
    assert prod_eu.code == 0, prod_eu.err
    expected = {n for i, n in enumerate(NAMES) if i % 2 == 1 and region_of(i) == "us-east-1"}
    assert expected  # prod workspaces are the odd ones, and so are those in us-east-1
    assert prod_eu.planned() == expected


@pytest.fixture
def one_not_admin_one_unassigned() -> Iterator[EmulatorHandle]:
    """The principal is a plain user in ws-07 and not assigned to ws-13 at all."""
    admin_in = tuple(n for n in NAMES if n not in ("ws-07", "ws-13"))
    with running_emulator(discovery_config(account(admin_in=admin_in, user_in=("ws-07",)))) as h:
        yield h


def test_a_workspace_where_the_principal_is_not_admin_fails_alone(
    pkgrepo: Pkgrepo, one_not_admin_one_unassigned: EmulatorHandle, tmp_path: Path
) -> None:
    path = write_discovery(tmp_path / "pkgrepo.yaml", one_not_admin_one_unassigned, waves=False)
    done = pkgrepo(*APPLY, str(path))
    assert done.code == 1
    out = done.out + done.err
    # each named once, in the plan shown before the apply
    assert "workspace ws-07 (" in out and "workspace ws-13 (" in out
    assert (
        f"read ledger: permission denied: the service principal {CLIENT_ID} is not a "
        "workspace admin here" in out
    )
    assert (
        f"list secrets: the service principal {CLIENT_ID} was refused a token for this "
        "workspace (invalid_client: Client authentication failed); is it assigned to this "
        "workspace?" in out
    )
    assert "2 failed" in out
    # the other 48 were applied: they have nothing left to change
    others = [n for n in NAMES if n not in ("ws-07", "ws-13")]
    plan = pkgrepo("plan", str(path), "-q", "--format", "json", *(f"-w{n}" for n in others))
    assert plan.code == 0, plan.err
    assert plan.planned() == set(others)
    assert not any(ws["changes"] for ws in plan.document()["workspaces"])


@pytest.mark.parametrize(
    "answer",
    [
        b'{"workspaces": []}',
        b'["ws-1", "ws-2"]',
        b'[{"workspace_name": "a", "custom_tags": ["x"]}]',
        b"[1, 2]",
    ],
)
def test_a_malformed_account_answer_is_one_clear_error(
    pkgrepo: Pkgrepo, emu: EmulatorHandle, discovery_file: str, answer: bytes
) -> None:
    emu.set_account_list_answer(answer)
    done = pkgrepo("plan", discovery_file)
    assert done.code == 1
    assert "Traceback" not in done.err
    assert done.err.strip().endswith(
        "the account's answer is not a list of workspaces"
    ) or done.err.strip().endswith("holds a malformed workspace entry"), done.err
    assert token_requests(emu) == 0  # no workspace was reached
