"""The emulated account: the workspaces list and the OAuth token endpoints, through the real
databricks-sdk (AccountClient, oauth.ClientCredentials) and raw HTTP for the refusals."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request

import pytest
from databricks.sdk import AccountClient, WorkspaceClient
from databricks.sdk.service.provisioning import WorkspaceStatus

from reconciler.emulator import (
    AccountSettings,
    EmulatorConfig,
    EmulatorHandle,
    ListedWorkspace,
    ServicePrincipal,
    running_emulator,
)

ACCOUNT = "0d1e7a4b-0000-4000-8000-0000000000b2"
ADMIN_SP = ServicePrincipal(
    "sp-admin", secrets=("s3cret-admin",), account_admin=True, admin_in=("prod-*",)
)
PLAIN_SP = ServicePrincipal("sp-plain", secrets=("s3cret-plain",), user_in=("*",))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    settings = AccountSettings(
        account_id=ACCOUNT,
        workspaces=(
            ListedWorkspace("prod-eu", "prod-eu", region="eu-west-1", tags={"env": "prod"}),
            ListedWorkspace("new", "new", status="PROVISIONING"),
        ),
        service_principals=(ADMIN_SP, PLAIN_SP),
        token_ttl_seconds=600,
    )
    return EmulatorConfig(default_tokens=False, account=settings)


@pytest.fixture(autouse=True)
def _account_clock(emu: EmulatorHandle, clock: Clock) -> None:
    emu.set_account_clock(clock)


def grant(url: str, client: str, secret: str) -> tuple[int, dict[str, object]]:
    basic = base64.b64encode(f"{client}:{secret}".encode()).decode()
    request = urllib.request.Request(
        url,
        data=b"grant_type=client_credentials&scope=all-apis",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_account_client_lists_workspaces_with_the_sdk_shapes(emu: EmulatorHandle) -> None:
    client = AccountClient(
        host=emu.url,
        account_id=ACCOUNT,
        client_id="sp-admin",
        client_secret="s3cret-admin",
        auth_type="oauth-m2m",
    )
    listed = {ws.workspace_name: ws for ws in client.workspaces.list()}
    assert set(listed) == {"prod-eu", "new"}
    prod = listed["prod-eu"]
    assert prod.deployment_name == "prod-eu"
    assert prod.aws_region == "eu-west-1"
    assert prod.workspace_status is WorkspaceStatus.RUNNING
    assert prod.custom_tags == {"env": "prod"}
    assert isinstance(prod.workspace_id, int)
    assert listed["new"].workspace_status is WorkspaceStatus.PROVISIONING


def test_token_answers_follow_the_oauth_shapes(emu: EmulatorHandle) -> None:
    status, body = grant(f"{emu.url}/prod-eu/oidc/v1/token", "sp-admin", "s3cret-admin")
    assert status == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert body["scope"] == "all-apis"
    assert grant(f"{emu.url}/prod-eu/oidc/v1/token", "sp-admin", "wrong") == (
        401,
        {"error": "invalid_client", "error_description": "Client authentication failed"},
    )
    # not assigned to the workspace: no token for it
    assert grant(f"{emu.url}/dev/oidc/v1/token", "sp-admin", "s3cret-admin")[0] == 401
    # only account admins get account tokens
    account_url = f"{emu.url}/oidc/accounts/{ACCOUNT}/v1/token"
    assert grant(account_url, "sp-plain", "s3cret-plain")[0] == 401


def test_tokens_are_good_for_their_audience_until_they_expire(
    emu: EmulatorHandle, clock: Clock
) -> None:
    _, body = grant(f"{emu.url}/prod-eu/oidc/v1/token", "sp-admin", "s3cret-admin")
    token = str(body["access_token"])
    scopes = "/api/2.0/secrets/scopes/list"
    assert get(f"{emu.url}/prod-eu{scopes}", token) == 200
    assert get(f"{emu.url}/prod-us{scopes}", token) == 403  # another workspace's
    _, account = grant(f"{emu.url}/oidc/accounts/{ACCOUNT}/v1/token", "sp-admin", "s3cret-admin")
    assert get(f"{emu.url}/prod-eu{scopes}", str(account["access_token"])) == 403
    assert get(f"{emu.url}/api/2.0/accounts/{ACCOUNT}/workspaces", token) == 403
    clock.now += 601
    assert get(f"{emu.url}/prod-eu{scopes}", token) == 403  # expired


def test_the_sdk_refreshes_a_token_that_expired() -> None:
    settings = AccountSettings(
        account_id=ACCOUNT,
        service_principals=(ADMIN_SP,),
        token_ttl_seconds=1,
    )
    with running_emulator(EmulatorConfig(default_tokens=False, account=settings)) as emu:
        client = WorkspaceClient(
            host=emu.host("prod-eu"),
            client_id="sp-admin",
            client_secret="s3cret-admin",
            auth_type="oauth-m2m",
        )
        assert client.current_user.me().user_name == "sp-admin"
        time.sleep(1.2)  # past the token's one-second life
        assert client.current_user.me().user_name == "sp-admin"
        assert emu.requests("prod-eu")[("POST", "/oidc/v1/token")] == 2


def test_the_handle_changes_what_the_account_lists_and_shows_its_live_tokens(
    emu: EmulatorHandle, clock: Clock
) -> None:
    def listed() -> tuple[int, bytes]:
        _, body = grant(f"{emu.url}/oidc/accounts/{ACCOUNT}/v1/token", "sp-admin", "s3cret-admin")
        request = urllib.request.Request(
            f"{emu.url}/api/2.0/accounts/{ACCOUNT}/workspaces",
            headers={"Authorization": f"Bearer {body['access_token']}"},
        )
        with urllib.request.urlopen(request) as answer:
            return int(answer.status), answer.read()

    assert emu.account_tokens() == ()
    _, plain = grant(f"{emu.url}/prod-eu/oidc/v1/token", "sp-plain", "s3cret-plain")
    assert emu.account_tokens() == (plain["access_token"],)

    emu.set_account_workspaces(ws for ws in emu.account_workspaces() if ws.name != "new")
    status, body = listed()
    assert status == 200
    assert [ws["workspace_name"] for ws in json.loads(body)] == ["prod-eu"]
    assert len(emu.account_tokens()) == 2  # the plain one and the account token

    emu.set_account_list_answer(b"not json")
    assert listed() == (200, b"not json")
    # only to an account admin: everyone else is still refused first
    assert (
        get(f"{emu.url}/api/2.0/accounts/{ACCOUNT}/workspaces", str(plain["access_token"])) == 403
    )
    emu.set_account_list_answer(None)
    assert listed()[0] == 200

    clock.now += 601  # every token is past its 600 seconds
    assert emu.account_tokens() == ()
