"""SCIM in the emulator, through the real SDK: who is a workspace admin is visible to admins
only, filters take a JSON string and match the name exactly, and what the emulator does not
understand it refuses rather than guesses."""

from __future__ import annotations

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import InvalidParameterValue

from reconciler.emulator import (
    ADMIN_TOKEN,
    USER_TOKEN,
    EmulatorConfig,
    EmulatorHandle,
    Principal,
)

ODD = 'odd" or userName eq "admin@pkgrepo.local\x07'
PRINCIPALS = (
    Principal(ODD, tokens=("dapi-odd",)),
    Principal("robot-1234", kind="service_principal", groups=frozenset({"admins"})),
)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(principals=PRINCIPALS, groups=("data-eng",))


def groups_of(client: WorkspaceClient, user_name: str) -> list[str] | None:
    found = list(
        client.users.list(
            filter=f'userName eq "{user_name}"', attributes="id,userName,groups", count=10
        )
    )
    assert len(found) == 1
    return None if found[0].groups is None else sorted(str(g.display) for g in found[0].groups)


def test_an_admin_sees_who_is_in_admins(emu: EmulatorHandle) -> None:
    admin = WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN)
    assert groups_of(admin, "admin@pkgrepo.local") == ["admins", "users"]
    assert groups_of(admin, "user@pkgrepo.local") == ["users"]
    robots = list(admin.service_principals.list(filter='applicationId eq "robot-1234"'))
    assert [sp.application_id for sp in robots] == ["robot-1234"]
    assert "admins" in {g.display for g in robots[0].groups or []}
    teams = list(admin.groups.list(filter='displayName eq "data-eng"'))
    assert [g.display_name for g in teams] == ["data-eng"]


def test_a_plain_user_sees_ids_and_display_names_only(emu: EmulatorHandle) -> None:
    user = WorkspaceClient(host=emu.host("dev"), token=USER_TOKEN)
    found = list(user.users.list(filter='userName eq "admin@pkgrepo.local"'))
    assert len(found) == 1
    assert found[0].id and found[0].user_name is None and not found[0].groups


def test_a_filter_value_is_a_json_string_matched_exactly(emu: EmulatorHandle) -> None:
    admin = WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN)
    quoted = ODD.replace("\\", "\\\\").replace('"', '\\"').replace("\x07", "\\u0007")
    found = list(admin.users.list(filter=f'userName eq "{quoted}"', attributes="userName"))
    assert [u.user_name for u in found] == [ODD]  # not admin@pkgrepo.local


@pytest.mark.parametrize(
    "expression",
    ['userName co "admin"', "userName eq admin", 'displayName eq "Emulator Admin"', ""],
)
def test_a_filter_it_does_not_understand_is_refused(emu: EmulatorHandle, expression: str) -> None:
    admin = WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN)
    if not expression:
        assert len(list(admin.users.list())) == 3  # no filter: every user
        return
    with pytest.raises(InvalidParameterValue):
        list(admin.users.list(filter=expression))
