"""Done when: fleets against the service as it is, every mode at once, in one `apply`."""

from __future__ import annotations

import json

from databricks.sdk import WorkspaceClient

from reconciler.emulator import ADMIN_TOKEN, Faults, KeyVault, ServiceModes, WorkspaceSettings
from tests.fidelity.conftest import INDEX_TOKEN, SCOPE, VAULT_SECRET, Desired, World
from tests.support.cli import Pkgrepo

LOSSY_STALE = ServiceModes(
    acl_writes="lossy", acl_drop_rate=0.25, acl_lists="stale", acl_stale_seconds=2.0
)
VAULT = "https://fleet-packages.vault.azure.net/"
INDEX_VALUE = f"https://ci:{INDEX_TOKEN}@artifactory.example.com/api/pypi/remote/simple"


def test_thirty_workspaces_with_lossy_and_stale_acls_converge_in_one_apply(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """With 25% of ACL puts dropped and `acls/list` stale for 2 s after each write, a
    30-workspace `apply` converges in one run and `plan --detailed-exitcode` then exits 0."""
    names = tuple(f"ws-{i:02d}" for i in range(30))
    settings = {
        name: WorkspaceSettings(modes=ServiceModes(**{**vars(LOSSY_STALE), "seed": i}))
        for i, name in enumerate(names)
    }
    emu = world(**settings)
    path = desired(emu, *names)
    run = pkgrepo("apply", path, "--auto-approve", "--format", "json")
    assert run.code == 0, run.err
    results = {row["workspace"]: row for row in json.loads(run.out)["workspaces"]}
    assert {r["result"] for r in results.values()} == {"applied"}, results
    resent = sum(emu.requests(n)[("POST", "/api/2.0/secrets/acls/put")] for n in names)
    assert resent > 2 * len(names), "dropped grants were sent again"
    assert pkgrepo("plan", path, "--detailed-exitcode").code == 0


def test_a_fleet_of_every_mode_in_one_apply(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """Lossy and stale ACLs, throttling with another status and no Retry-After, a Key
    Vault backed workspace and a Standard-tier one, in one `apply`: the Premium workspaces
    converge, the Key Vault one loses nothing, the Standard one gets its clear answer."""
    premium = tuple(f"p-{i}" for i in range(6))
    throttled = Faults(rate_limit_rps=6, throttle_status=503, throttle_retry_after=False)
    vault = KeyVault(
        dns_name=VAULT, secrets={"pip-index-url": INDEX_VALUE, "db-password": VAULT_SECRET}
    )
    settings = {
        name: WorkspaceSettings(
            modes=ServiceModes(**{**vars(LOSSY_STALE), "seed": i}),
            faults=throttled if i % 2 else Faults(),
        )
        for i, name in enumerate(premium)
    }
    settings["kv"] = WorkspaceSettings(
        modes=ServiceModes(backend="azure_keyvault", keyvault=vault, acl_lists="stale")
    )
    settings["std"] = WorkspaceSettings(modes=ServiceModes(tier="standard"))
    emu = world(**settings)
    path = desired(emu, *premium, "kv", "std")
    run = pkgrepo("apply", path, "--auto-approve", "--format", "json")
    results = {row["workspace"]: row for row in json.loads(run.out)["workspaces"]}
    assert run.code == 1  # the Standard-tier workspace fails, with its answer
    assert {results[n]["result"] for n in premium} == {"applied"}, results
    assert results["kv"]["result"] == "applied", results["kv"]
    assert results["std"]["result"] == "failed"
    assert "Standard tier" in results["std"]["error"]
    assert "tier: standard" in results["std"]["error"]
    kv = WorkspaceClient(host=emu.host("kv"), token=ADMIN_TOKEN)
    assert {s.key for s in kv.secrets.list_secrets(SCOPE)} == {"pip-index-url", "db-password"}
    assert emu.backend("kv").secret_value(SCOPE, "db-password") == VAULT_SECRET.encode()
    assert not [k for k in emu.responses("kv") if k[2] == 400]  # no put/delete was tried
    fixed = desired(emu, *premium, "kv", "std", extra={"std": {"tier": "standard"}})
    assert pkgrepo("apply", fixed, "--auto-approve").code == 0
    assert pkgrepo("plan", fixed, "--detailed-exitcode").code == 0
