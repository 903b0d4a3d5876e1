"""FIDELITY rows: `secrets/get` over REST (probed once per run, answered for a MANAGE holder
by default), whole-second timestamps, RESOURCE_ALREADY_EXISTS with 400, throttling with
another status and no Retry-After."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from databricks.sdk import WorkspaceClient

from reconciler.core.model import AuthSpec, SecretValue, WorkspaceSpec, frozen_map
from reconciler.edges.adapter import SdkWorkspace
from reconciler.edges.ledger_store import WorkspaceLedgerStore
from reconciler.emulator import ADMIN_TOKEN, Faults, ServiceModes, WorkspaceSettings
from reconciler.engine.workspace import plan_workspace
from tests.fidelity.conftest import INDEX_TOKEN, SCOPE, Desired, World
from tests.support.cli import Pkgrepo

GET = ("GET", "/api/2.0/secrets/get")
REFUSED = WorkspaceSettings(modes=ServiceModes(rest_get="refused"))
INDEX_VALUE = f"https://ci:{INDEX_TOKEN}@artifactory.example.com/api/pypi/remote/simple"


def test_existing_scope_is_400_resource_already_exists_and_create_stays_idempotent(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    emu = world()
    WorkspaceClient(host=emu.host("ws"), token=ADMIN_TOKEN).secrets.create_scope(SCOPE)
    request = urllib.request.Request(
        emu.host("ws") + "/api/2.0/secrets/scopes/create",
        data=json.dumps({"scope": SCOPE}).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request)
    except urllib.error.HTTPError as refused:
        assert refused.code == 400
        assert json.loads(refused.read())["error_code"] == "RESOURCE_ALREADY_EXISTS"
    else:
        raise AssertionError("creating an existing scope must be refused")
    # The plan read the scope as missing a moment before someone else created it:
    # apply's create meets RESOURCE_ALREADY_EXISTS (400) and counts it as done.
    path = desired(emu, "ws")
    assert pkgrepo("apply", path, "--auto-approve").code == 0
    assert pkgrepo("plan", path, "--detailed-exitcode").code == 0


def test_values_are_read_back_where_get_answers_and_probed_once_where_refused(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    emu = world(open=WorkspaceSettings(), closed=REFUSED)
    path = desired(emu, "open", "closed")
    assert pkgrepo("apply", path, "--auto-approve").code == 0
    emu.reset_counts()
    assert pkgrepo("plan", path, "--detailed-exitcode").code == 0
    # The apply read its values back once their second had ended and sealed them in the
    # ledger: while their stamps stay, they are not read again.
    assert emu.requests("open")[GET] == 0
    assert emu.requests("closed")[GET] == 1  # one probe, refused: nothing more is asked
    # A later edit carries a later stamp: that key is read back, and the value read says
    # who changed it (a same-second race with the apply's own read back: test_engine_sdk's
    # test_a_same_second_edit_before_the_seal_is_not_sealed_and_is_caught).
    for name in ("open", "closed"):
        client = WorkspaceClient(host=emu.host(name), token=ADMIN_TOKEN)
        client.secrets.put_secret(SCOPE, "pip-index-url", string_value="https://evil.example/s")
    emu.reset_counts()
    drift = json.loads(pkgrepo("drift", path, "--format", "json").out)
    kinds = {
        i["address"]: (i["kind"], i["severity"]) for w in drift["workspaces"] for i in w["items"]
    }
    assert kinds.get("open/secret/pip-index-url") == ("modified-outside", "high")
    assert kinds.get("closed/secret/pip-index-url") == ("modified-outside", "high")
    assert emu.requests("open")[GET] == 1  # only the key whose stamp moved


def test_a_same_second_write_without_read_back_is_unverifiable_not_trusted(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """Whole-second timestamps: pkgrepo's put lands in the same second as a write seen just
    before it, so the stamp cannot say whose value is there. Not recorded as verified."""
    emu = world(ws=REFUSED)
    emu.backend("ws").set_clock(lambda: 1_800_000_000.25)
    client = WorkspaceClient(host=emu.host("ws"), token=ADMIN_TOKEN)
    client.secrets.create_scope(SCOPE)
    client.secrets.put_secret(SCOPE, "pip-index-url", string_value="https://someone/simple")
    path = desired(emu, "ws")
    applied = pkgrepo("apply", path, "--auto-approve")
    assert "cannot tell pkgrepo's write from another in the same second" in applied.text
    plan = json.loads(pkgrepo("plan", path, "--format", "json").out)
    drifts = {c["address"]: c["drift"] for w in plan["workspaces"] for c in w["changes"]}
    assert drifts == {"ws/secret/pip-index-url": "unverifiable"}
    emu.backend("ws").set_clock(lambda: 1_800_000_007.0)  # a later second: provable again
    assert pkgrepo("apply", path, "--auto-approve").code == 0
    assert pkgrepo("plan", path, "--detailed-exitcode").code == 0


def test_every_value_read_goes_through_the_one_error_mapping(world: World) -> None:
    """A refusal of the probe is an answer (values unknown), never an error; a missing key
    between list and get is not an error either."""
    emu = world(ws=REFUSED)
    client = WorkspaceClient(host=emu.host("ws"), token=ADMIN_TOKEN)
    client.secrets.create_scope(SCOPE)
    client.secrets.put_secret(SCOPE, "pip-index-url", string_value=INDEX_VALUE)
    spec = WorkspaceSpec(
        name="ws",
        host=emu.host("ws"),
        auth=AuthSpec(kind="token", token=SecretValue(ADMIN_TOKEN)),
        secrets=frozen_map({"pip-index-url": SecretValue(INDEX_VALUE)}),
    )
    port = SdkWorkspace.connect(spec, retry_timeout_seconds=10)
    seen = port.read()
    assert port.get_answers is False and seen.live.secrets["pip-index-url"].value is None
    emu.backend("ws").set_modes(ServiceModes())
    fresh = SdkWorkspace.connect(spec, retry_timeout_seconds=10, on_value=lambda v: None)
    wplan, _ = plan_workspace(spec, fresh, WorkspaceLedgerStore(), None, salt="s")
    assert fresh.get_answers is True and not wplan.has_changes


def test_throttling_with_another_status_and_no_retry_after_is_ridden_out(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    faults = Faults(rate_limit_rps=8, throttle_status=400, throttle_retry_after=False)
    emu = world(ws=WorkspaceSettings(faults=faults))
    path = desired(emu, "ws")
    run = pkgrepo("apply", path, "--auto-approve")
    assert run.code == 0, run.text
    throttled = {k: n for k, n in emu.responses("ws").items() if k[2] == 400}
    assert throttled, "the workspace was throttled"
    assert pkgrepo("plan", path, "--detailed-exitcode").code == 0
