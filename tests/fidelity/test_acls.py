"""FIDELITY rows: ACL writes acknowledged and lost until sent again, `acls/list` lagging each
write, ACL calls one at a time per scope, a settle deadline of minutes."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.workspace import AclPermission

from reconciler.emulator import ADMIN_TOKEN, RequestSeen, ServiceModes, WorkspaceSettings
from tests.fidelity.conftest import SCOPE, Desired, World
from tests.support.cli import Pkgrepo

STALE = ServiceModes(acl_lists="stale", acl_stale_seconds=1.0)


def test_a_lossy_service_acknowledges_acl_writes_it_never_applies(world: World) -> None:
    emu = world(ws=WorkspaceSettings(modes=ServiceModes(acl_writes="lossy", acl_drop_rate=0.9)))
    client = WorkspaceClient(host=emu.host("ws"), token=ADMIN_TOKEN)
    client.secrets.create_scope(SCOPE)
    for _ in range(40):  # acknowledged every time; shows only once one is not dropped
        client.secrets.put_acl(SCOPE, "users", AclPermission.READ)
        if "users" in {a.principal for a in client.secrets.list_acls(SCOPE)}:
            break
    else:
        pytest.fail("no put was ever applied")


def test_a_stale_listing_shows_the_grants_from_before_each_write(world: World) -> None:
    emu = world(ws=WorkspaceSettings(modes=STALE))
    now = [1_700_000_000.0]
    emu.backend("ws").set_clock(lambda: now[0])
    client = WorkspaceClient(host=emu.host("ws"), token=ADMIN_TOKEN)
    client.secrets.create_scope(SCOPE)
    client.secrets.put_acl(SCOPE, "users", AclPermission.READ)
    assert "users" not in {a.principal for a in client.secrets.list_acls(SCOPE)}
    now[0] += 0.9
    client.secrets.put_acl(SCOPE, "admins", AclPermission.MANAGE)  # extends the window
    now[0] += 0.9
    assert {a.principal for a in client.secrets.list_acls(SCOPE)} == {"admin@pkgrepo.local"}
    now[0] += 0.2
    assert {a.principal for a in client.secrets.list_acls(SCOPE)} == {
        "admin@pkgrepo.local",
        "admins",
        "users",
    }


def test_lossy_and_stale_acls_converge_in_one_apply(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    modes = ServiceModes(
        acl_writes="lossy", acl_drop_rate=0.5, acl_lists="stale", acl_stale_seconds=1.0, seed=11
    )
    emu = world(ws=WorkspaceSettings(modes=modes))
    path = desired(emu, "ws", acls={"admins": "MANAGE", "users": "READ", "data-eng": "WRITE"})
    run = pkgrepo("apply", path, "--auto-approve")
    assert run.code == 0, run.text
    assert pkgrepo("plan", path, "--detailed-exitcode").code == 0
    puts = emu.requests("ws")[("POST", "/api/2.0/secrets/acls/put")]
    assert puts > 3, "some grants had to be sent again"


def test_acl_writes_go_one_at_a_time_and_each_is_read_back_before_the_next(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    emu = world(ws=WorkspaceSettings(modes=STALE))
    order: list[str] = []
    lock = threading.Lock()

    def record(seen: RequestSeen) -> None:
        if "/acls/" in seen.path:
            with lock:
                order.append(seen.path.rsplit("/", 1)[-1])

    emu.add_request_listener(record)
    client = WorkspaceClient(host=emu.host("ws"), token=ADMIN_TOKEN)
    client.secrets.create_scope(SCOPE)
    client.secrets.put_acl(SCOPE, "contractors", AclPermission.READ)  # to be removed
    while "contractors" not in {a.principal for a in client.secrets.list_acls(SCOPE)}:
        time.sleep(0.1)  # the listing lags the write (acl_lists: stale)
    order.clear()
    path = desired(emu, "ws", acls={"admins": "MANAGE", "users": "READ", "data-eng": "READ"})
    assert pkgrepo("apply", path, "--auto-approve").code == 0
    writes = [i for i, call in enumerate(order) if call in ("put", "delete")]
    assert len(writes) >= 4  # three grants and one removal
    for first, second in itertools.pairwise(writes):
        between = order[first + 1 : second]
        assert "list" in between, f"a write followed another without a read back: {order}"
    puts = [i for i in writes if order[i] == "put"]
    deletes = [i for i in writes if order[i] == "delete"]
    assert max(puts) < min(deletes), "grants are narrowed only after the new ones show"


def test_the_settle_deadline_fails_the_workspace_clearly_and_the_next_run_converges(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    emu = world(ws=WorkspaceSettings(modes=ServiceModes(acl_writes="lossy", acl_drop_rate=0.99)))
    path = desired(emu, "ws")
    run = pkgrepo("apply", path, "--auto-approve", "--acl-settle-seconds", "2")
    assert run.code == 1
    assert "still not shown by the service after 2s" in run.text, run.text
    assert "--acl-settle-seconds" in run.text
    emu.backend("ws").set_modes(ServiceModes())
    assert pkgrepo("apply", path, "--auto-approve").code == 0
    assert pkgrepo("plan", path, "--detailed-exitcode").code == 0


def test_the_default_settle_deadline_is_minutes(pkgrepo: Pkgrepo) -> None:
    run = pkgrepo("apply", "--help")
    text = " ".join(run.out.split())
    assert "--acl-settle-seconds" in text and "[default: 300;" in text


def test_a_grant_the_service_lists_under_another_name_fails_the_workspace_naming_it(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """Not handled beyond failing clearly: the grant never shows under the declared name,
    and nothing is removed on the way (grants are narrowed only after new ones show)."""
    renamed = ServiceModes(acl_renames={"data-eng": "db-temp-data-eng"})
    emu = world(ws=WorkspaceSettings(modes=renamed))
    path = desired(emu, "ws", acls={"admins": "MANAGE", "users": "READ", "data-eng": "READ"})
    run = pkgrepo("apply", path, "--auto-approve", "--acl-settle-seconds", "2")
    assert run.code == 1
    assert "the grant of data-eng (READ) was acknowledged but still not shown" in run.text
    listed = WorkspaceClient(host=emu.host("ws"), token=ADMIN_TOKEN).secrets.list_acls(SCOPE)
    assert {a.principal for a in listed} >= {"admins", "db-temp-data-eng"}


@pytest.mark.slow
def test_a_listing_lagging_longer_than_the_read_interval_still_converges(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """Where each write restarts the listing's lag (the stale mode), a grant can only show
    once a re-send waits longer than the lag: re-sends space out past the 8 s read interval
    (over 50 s was seen in databrickslabs/ucx#627), so any lag below half the settle budget
    is waited out instead of being restarted forever."""
    modes = ServiceModes(acl_lists="stale", acl_stale_seconds=9.0)
    emu = world(ws=WorkspaceSettings(modes=modes))
    path = desired(emu, "ws", acls={"admins": "MANAGE"})
    run = pkgrepo("apply", path, "--auto-approve", "--acl-settle-seconds", "80")
    assert run.code == 0, run.text
    assert pkgrepo("plan", path, "--detailed-exitcode").code == 0
