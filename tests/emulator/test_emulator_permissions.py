"""Scope ACLs for non-admin callers, through the real SDK with their own tokens."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied, ResourceDoesNotExist
from databricks.sdk.service.workspace import AclPermission

MakeClient = Callable[..., WorkspaceClient]
SCOPE = "databricks-package-management"


@pytest.fixture
def admin(make_client: MakeClient) -> WorkspaceClient:
    client = make_client()
    client.secrets.create_scope(SCOPE)
    client.secrets.put_secret(SCOPE, "pip-index-url", string_value="https://idx/simple")
    return client


def test_no_acl_means_no_access_but_scopes_list_shows_all(
    admin: WorkspaceClient, make_client: MakeClient
) -> None:
    bob = make_client(token="dapi-bob")
    assert [s.name for s in bob.secrets.list_scopes()] == [SCOPE]
    with pytest.raises(PermissionDenied) as denied:
        bob.secrets.list_secrets(SCOPE)
    assert denied.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(ResourceDoesNotExist):  # existence is checked before permission
        bob.secrets.list_secrets("no-such-scope")


def test_read_lists_but_cannot_put(admin: WorkspaceClient, make_client: MakeClient) -> None:
    admin.secrets.put_acl(SCOPE, "bob@example.com", AclPermission.READ)
    bob = make_client(token="dapi-bob")
    assert [s.key for s in bob.secrets.list_secrets(SCOPE)] == ["pip-index-url"]
    with pytest.raises(PermissionDenied):
        bob.secrets.put_secret(SCOPE, "pip-index-url", string_value="https://evil/simple")
    with pytest.raises(PermissionDenied):
        bob.secrets.delete_secret(SCOPE, "pip-index-url")
    with pytest.raises(PermissionDenied):
        bob.secrets.list_acls(SCOPE)


def test_write_puts_but_cannot_touch_acls(admin: WorkspaceClient, make_client: MakeClient) -> None:
    admin.secrets.put_acl(SCOPE, "bob@example.com", AclPermission.WRITE)
    bob = make_client(token="dapi-bob")
    bob.secrets.put_secret(SCOPE, "pip-extra-index-urls", string_value="https://a https://b")
    bob.secrets.delete_secret(SCOPE, "pip-extra-index-urls")
    with pytest.raises(PermissionDenied):
        bob.secrets.put_acl(SCOPE, "bob@example.com", AclPermission.MANAGE)
    with pytest.raises(PermissionDenied):
        bob.secrets.get_acl(SCOPE, "bob@example.com")
    with pytest.raises(PermissionDenied):
        bob.secrets.delete_scope(SCOPE)


def test_manage_can_do_acls_and_delete_the_scope(
    admin: WorkspaceClient, make_client: MakeClient
) -> None:
    admin.secrets.put_acl(SCOPE, "bob@example.com", AclPermission.MANAGE)
    bob = make_client(token="dapi-bob")
    bob.secrets.put_acl(SCOPE, "data-scientists", AclPermission.READ)
    assert bob.secrets.get_acl(SCOPE, "data-scientists").permission == AclPermission.READ
    bob.secrets.delete_acl(SCOPE, "data-scientists")
    assert {a.principal for a in bob.secrets.list_acls(SCOPE)} == {
        "admin@pkgrepo.local",
        "bob@example.com",
    }
    bob.secrets.delete_scope(SCOPE)
    assert list(admin.secrets.list_scopes()) == []


def test_effective_permission_is_the_max_over_own_and_group_acls(
    admin: WorkspaceClient, make_client: MakeClient
) -> None:
    alice = make_client(token="dapi-alice")  # member of data-eng (and users)
    admin.secrets.put_acl(SCOPE, "users", AclPermission.READ)
    assert [s.key for s in alice.secrets.list_secrets(SCOPE)] == ["pip-index-url"]
    with pytest.raises(PermissionDenied):
        alice.secrets.put_secret(SCOPE, "k", string_value="v")
    admin.secrets.put_acl(SCOPE, "data-eng", AclPermission.WRITE)
    alice.secrets.put_secret(SCOPE, "k", string_value="v")
    admin.secrets.put_acl(SCOPE, "alice@example.com", AclPermission.READ)  # group still wins
    alice.secrets.put_secret(SCOPE, "k", string_value="v2")
    with pytest.raises(PermissionDenied):
        alice.secrets.list_acls(SCOPE)


def test_users_group_covers_service_principals(
    admin: WorkspaceClient, make_client: MakeClient
) -> None:
    bot = make_client(token="dapi-ci-bot")
    with pytest.raises(PermissionDenied):
        bot.secrets.list_secrets(SCOPE)
    admin.secrets.put_acl(SCOPE, "users", AclPermission.READ)
    assert [s.key for s in bot.secrets.list_secrets(SCOPE)] == ["pip-index-url"]
    admin.secrets.put_acl(SCOPE, "deployers", AclPermission.MANAGE)
    bot.secrets.put_acl(SCOPE, "0a1b2c3d-ci-bot", AclPermission.READ)


def test_admins_bypass_acls_on_every_scope(make_client: MakeClient) -> None:
    bob = make_client(token="dapi-bob")
    bob.secrets.create_scope("bobs")
    bob.secrets.delete_acl("bobs", "bob@example.com")  # now nobody has an ACL
    admin = make_client()
    admin.secrets.put_secret("bobs", "k", string_value="v")
    admin.secrets.put_acl("bobs", "users", AclPermission.READ)
    assert [a.principal for a in admin.secrets.list_acls("bobs")] == ["users"]
    admin.secrets.delete_scope("bobs")


def test_any_user_may_create_a_scope_and_manages_it(make_client: MakeClient) -> None:
    bob = make_client(token="dapi-bob")
    bob.secrets.create_scope("team")
    bob.secrets.put_secret("team", "k", string_value="v")
    alice = make_client(token="dapi-alice")
    with pytest.raises(PermissionDenied):
        alice.secrets.list_secrets("team")


def test_unknown_principals_are_refused_unless_validation_is_off() -> None:
    from databricks.sdk.errors import InvalidParameterValue

    from reconciler.emulator import EmulatorConfig, running_emulator

    for validate, refused in ((True, True), (False, False)):
        with running_emulator(EmulatorConfig(validate_principals=validate)) as emu:
            client = WorkspaceClient(host=emu.host("ws1"), token="dapi-emulator-admin")
            client.secrets.create_scope(SCOPE)
            if refused:
                with pytest.raises(InvalidParameterValue, match="does not exist"):
                    client.secrets.put_acl(SCOPE, "typo-group", AclPermission.READ)
            else:
                client.secrets.put_acl(SCOPE, "typo-group", AclPermission.READ)
                assert client.secrets.get_acl(SCOPE, "typo-group").permission == AclPermission.READ


def test_non_managers_learn_nothing_about_principals(
    admin: WorkspaceClient, make_client: MakeClient
) -> None:
    bob = make_client(token="dapi-bob")
    with pytest.raises(PermissionDenied):
        bob.secrets.put_acl(SCOPE, "no-such-principal", AclPermission.READ)
