"""FIDELITY rows: the Standard tier (scopes only for `users`, no secret ACLs)."""

from __future__ import annotations

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest
from databricks.sdk.service.workspace import AclPermission

from reconciler.core.model import MARKER_KEY
from reconciler.emulator import ADMIN_TOKEN, ServiceModes, WorkspaceSettings
from reconciler.engine.lock import LOCK_SCOPE
from tests.fidelity.conftest import SCOPE, Desired, World, writes
from tests.support.cli import Pkgrepo

STANDARD = WorkspaceSettings(modes=ServiceModes(tier="standard"))
MESSAGE = (
    "Premium Tier is disabled in this workspace. Secret scopes can only be created with "
    'initial_manage_principal "users".'
)


def test_standard_tier_refuses_scopes_not_for_users_and_acls(world: World) -> None:
    emu = world(std=STANDARD)
    client = WorkspaceClient(host=emu.host("std"), token=ADMIN_TOKEN)
    with pytest.raises(BadRequest) as refused:
        client.secrets.create_scope(SCOPE)
    assert str(refused.value) == MESSAGE and refused.value.error_code == "BAD_REQUEST"
    client.secrets.create_scope(SCOPE, initial_manage_principal="users")
    with pytest.raises(BadRequest, match="Premium Tier is disabled"):
        client.secrets.put_acl(SCOPE, "users", AclPermission.READ)
    with pytest.raises(BadRequest, match="Premium Tier is disabled"):
        client.secrets.list_acls(SCOPE)


def test_standard_tier_apply_says_what_it_means_and_what_to_set(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """Done when: against a Standard-tier workspace, `apply` says what Standard tier means
    and what to set."""
    emu = world(std=STANDARD)
    path = desired(emu, "std")
    run = pkgrepo("apply", path, "--auto-approve")
    assert run.code == 1
    assert "Standard tier" in run.text and "every user" in run.text
    assert "tier: standard" in run.text
    assert writes(emu, "std", "put") == 0
    # A scope someone created for all users: the ACL listing is refused, same advice.
    WorkspaceClient(host=emu.host("std"), token=ADMIN_TOKEN).secrets.create_scope(
        SCOPE, initial_manage_principal="users"
    )
    run = pkgrepo("plan", path)
    assert run.code == 1 and "tier: standard" in run.text


def test_standard_tier_with_the_setting_converges(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """Done when: with that setting, it converges."""
    emu = world(std=STANDARD)
    path = desired(emu, "std", extra={"std": {"tier": "standard"}})
    plan = pkgrepo("plan", path)
    assert plan.code == 0 and "Standard tier" in plan.out and "every user" in plan.out
    assert "std/acl/" not in plan.out
    applied = pkgrepo("apply", path, "--auto-approve")
    assert applied.code == 0, applied.text
    client = WorkspaceClient(host=emu.host("std"), token=ADMIN_TOKEN)
    assert {s.key for s in client.secrets.list_secrets(SCOPE)} == {
        "pip-index-url",
        "pip-extra-index-urls",
        MARKER_KEY,  # how a later run knows pkgrepo manages this scope
    }
    assert [s.name for s in client.secrets.list_scopes()] == [SCOPE]  # the lock is released
    assert pkgrepo("plan", path, "--detailed-exitcode").code == 0
    assert writes(emu, "std", "acls/put") == 0


def test_tier_standard_on_a_premium_workspace_opens_nothing_to_every_user(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """`tier: standard` set by mistake on a Premium workspace would create the scope for
    every user to manage. The first scope is created as on Premium; a workspace that
    accepts that is Premium, and the apply stops there, with nothing left open to users."""
    emu = world(prem=WorkspaceSettings())
    path = desired(emu, "prem", extra={"prem": {"tier": "standard"}})
    run = pkgrepo("apply", path, "--auto-approve")
    assert run.code == 1, run.text
    assert "Premium tier" in run.text and "remove `tier: standard`" in run.text
    client = WorkspaceClient(host=emu.host("prem"), token=ADMIN_TOKEN)
    assert list(client.secrets.list_scopes()) == []  # the probe's lock scope is gone
    assert writes(emu, "prem", "put") == 0
    # One scope was created, the lock's, as on Premium; nothing was ever made for users.
    assert emu.responses("prem")[("POST", "/api/2.0/secrets/scopes/create", 200)] == 1


def test_tier_standard_on_a_premium_workspace_does_not_hide_its_grants(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """With `tier: standard` no ACLs are managed; on a Premium workspace that would hide a
    MANAGE granted outside pkgrepo. The listing still asked for shows grants, so plan and
    drift fail the workspace saying it is Premium."""
    emu = world(prem=WorkspaceSettings())
    client = WorkspaceClient(host=emu.host("prem"), token=ADMIN_TOKEN)
    client.secrets.create_scope(SCOPE)
    client.secrets.put_acl(SCOPE, "contractors", AclPermission.MANAGE)
    path = desired(emu, "prem", extra={"prem": {"tier": "standard"}})
    for command in ("plan", "drift"):
        run = pkgrepo(command, path)
        assert run.code == 1, run.text
        assert "Premium tier" in run.text and "remove `tier: standard`" in run.text


def test_standard_tier_waits_for_another_runs_lock_without_reading_its_acls(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """Below Premium every lock scope is made for ``users`` and there are no ACLs to read:
    a lock another run holds is waited for as ever (here it stops renewing and is taken
    over after its one-second lease), never a failed ACL read."""
    emu = world(std=STANDARD)
    path = desired(emu, "std", extra={"std": {"tier": "standard"}})
    other = WorkspaceClient(host=emu.host("std"), token=ADMIN_TOKEN)
    other.secrets.create_scope(LOCK_SCOPE, initial_manage_principal="users")
    other.secrets.put_secret(LOCK_SCOPE, "holder.rother000001.lease.1", string_value="x")
    applied = pkgrepo("apply", path, "--auto-approve")
    assert applied.code == 0, applied.text
    assert "taking over the lock of run rother000001" in applied.err
    assert "lock ACLs" not in applied.text and "not honoured" not in applied.text
    # The only ACL listings are the plan's, which confirm the tier (a Premium workspace
    # would answer them): each found no scope yet or was refused as below Premium.
    listed = [
        status
        for (_, path, status), n in emu.responses("std").items()
        if path.endswith("/secrets/acls/list")
        for _ in range(n)
    ]
    assert set(listed) <= {400, 404}, listed
