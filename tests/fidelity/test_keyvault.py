"""FIDELITY rows: Azure Key Vault backed scopes (put/delete refused with 400, every vault
secret listed, `backend_type: AZURE_KEYVAULT` with `keyvault_metadata`, not creatable with a
token)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest

from reconciler.emulator import ADMIN_TOKEN, KeyVault, ServiceModes, WorkspaceSettings
from tests.fidelity.conftest import (
    INDEX_TOKEN,
    SCOPE,
    VAULT_SECRET,
    Desired,
    World,
    writes,
)
from tests.support.cli import Pkgrepo

VAULT = "https://corp-packages.vault.azure.net/"
INDEX_VALUE = f"https://ci:{INDEX_TOKEN}@artifactory.example.com/api/pypi/remote/simple"


def keyvault(**secrets: str) -> WorkspaceSettings:
    vault = KeyVault(dns_name=VAULT, secrets=secrets)
    return WorkspaceSettings(modes=ServiceModes(backend="azure_keyvault", keyvault=vault))


def test_keyvault_scope_is_listed_with_its_backend_and_refuses_put_and_delete(
    world: World,
) -> None:
    emu = world(kv=keyvault(**{"pip-index-url": INDEX_VALUE, "db-password": VAULT_SECRET}))
    request = urllib.request.Request(
        emu.host("kv") + "/api/2.0/secrets/scopes/list",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with urllib.request.urlopen(request) as answer:
        (scope,) = json.loads(answer.read())["scopes"]
    assert scope["backend_type"] == "AZURE_KEYVAULT"
    assert scope["keyvault_metadata"]["dns_name"] == VAULT
    client = WorkspaceClient(host=emu.host("kv"), token=ADMIN_TOKEN)
    assert {s.key for s in client.secrets.list_secrets(SCOPE)} == {"pip-index-url", "db-password"}
    with pytest.raises(BadRequest, match="Azure KeyVault"):
        client.secrets.put_secret(SCOPE, "pip-index-url", string_value="https://x/simple")
    with pytest.raises(BadRequest, match="Azure KeyVault"):
        client.secrets.delete_secret(SCOPE, "db-password")


def test_keyvault_scope_plan_names_the_vault_and_apply_deletes_nothing(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """Done when: against a Key Vault backed scope holding an undeclared secret, `plan`
    names Key Vault and proposes no put or delete; `apply` deletes nothing."""
    emu = world(kv=keyvault(**{"pip-index-url": INDEX_VALUE, "db-password": VAULT_SECRET}))
    path = desired(emu, "kv")
    plan = pkgrepo("plan", path, "--detailed-exitcode")
    assert plan.code == 2, plan.text  # the users: READ grant is still pkgrepo's to add
    assert f"Azure Key Vault {VAULT}" in plan.text
    assert "kv/acl/users" in plan.out
    assert "kv/secret/" not in plan.out.split("warning")[0]
    shown = json.loads(pkgrepo("plan", path, "--format", "json").out)
    actions = {c["address"]: c["actions"][0] for w in shown["workspaces"] for c in w["changes"]}
    assert {a for address, a in actions.items() if "/secret/" in address} == {"no-op"}
    assert actions["kv/secret/pip-extra-index-urls"] == "no-op"  # missing in the vault
    assert actions["kv/secret/db-password"] == "no-op"  # another vault secret: reported only

    applied = pkgrepo("apply", path, "--auto-approve")
    assert applied.code == 0, applied.text
    # Any put or delete on the Key Vault backed scope would have been refused with 400
    # (the only puts and deletes are the apply lock's, in a scope of its own).
    refused = {k: n for k, n in emu.responses("kv").items() if k[2] == 400}
    assert refused == {}, refused
    assert emu.backend("kv").secret_value(SCOPE, "db-password") == VAULT_SECRET.encode()
    client = WorkspaceClient(host=emu.host("kv"), token=ADMIN_TOKEN)
    assert {s.key for s in client.secrets.list_secrets(SCOPE)} == {"pip-index-url", "db-password"}
    assert {a.principal: a.permission.value for a in client.secrets.list_acls(SCOPE)} == {
        "admins": "MANAGE",
        "users": "READ",
    }
    assert pkgrepo("plan", path, "--detailed-exitcode").code == 0


def test_keyvault_missing_or_different_key_is_drift_a_person_fixes_in_key_vault(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    emu = world(kv=keyvault(**{"pip-index-url": "https://old.example.com/simple"}))
    path = desired(emu, "kv")
    assert pkgrepo("apply", path, "--auto-approve").code == 0
    drift = pkgrepo("drift", path, "--format", "json")
    assert drift.code == 2, drift.text
    items = {i["address"]: i for w in json.loads(drift.out)["workspaces"] for i in w["items"]}
    assert items["kv/secret/pip-extra-index-urls"]["kind"] == "keyvault"
    assert "missing in Azure Key Vault" in items["kv/secret/pip-extra-index-urls"]["message"]
    # secrets/get answers the MANAGE holder, so a different value in the vault is seen too
    assert items["kv/secret/pip-index-url"]["kind"] == "keyvault"
    assert items["kv/secret/pip-index-url"]["action"] == "no-op"
    emu.backend("kv").keyvault_set(SCOPE, "pip-index-url", INDEX_VALUE)
    emu.backend("kv").keyvault_set(
        SCOPE, "pip-extra-index-urls", "https://download.pytorch.org/whl/cpu"
    )
    assert pkgrepo("drift", path).code == 0


def test_a_required_keyvault_scope_that_is_not_there_fails_clearly(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    emu = world()
    path = desired(emu, "plain", extra={"plain": {"backend": "azure_keyvault"}})
    plan = pkgrepo("plan", path)
    assert plan.code == 1
    assert "requires an Azure Key Vault backed scope" in plan.text
    assert writes(emu, "plain", "scopes/create") == 0
    WorkspaceClient(host=emu.host("plain"), token=ADMIN_TOKEN).secrets.create_scope(SCOPE)
    plan = pkgrepo("plan", path)
    assert plan.code == 1 and "backend: azure_keyvault" in plan.text


def test_export_writes_a_keyvault_workspace_with_its_backend(
    world: World, pkgrepo: Pkgrepo, tmp_path: object
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    emu = world(kv=keyvault(**{"pip-index-url": "https://pypi.corp.example/simple"}))
    out = tmp_path / "exported.yaml"
    run = pkgrepo(
        "export", "--host", emu.host("kv"), "--token-env", "DATABRICKS_TOKEN", "--output", str(out)
    )
    assert run.code == 0, run.text
    text = out.read_text()
    assert "backend: azure_keyvault" in text
    assert pkgrepo("validate", str(out)).code == 0
