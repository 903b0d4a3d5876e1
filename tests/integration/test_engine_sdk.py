"""The planner and applier end to end: real databricks-sdk, emulator over HTTP on loopback."""

from __future__ import annotations

import pytest
from databricks.sdk import WorkspaceClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.errors import WorkspaceError
from reconciler.core.model import (
    CERT,
    EXTRA_INDEX_URLS,
    INDEX_URL,
    MARKER_KEY,
    SCOPE,
    AuthSpec,
    Permission,
    SecretValue,
    WorkspaceSpec,
    frozen_map,
)
from reconciler.core.plan import Action, Drift, Severity
from reconciler.edges.adapter import SdkWorkspace
from reconciler.edges.ledger_store import WorkspaceLedgerStore
from reconciler.emulator import (
    USER_TOKEN,
    EmulatorHandle,
    Faults,
    OneShotFailure,
    ServiceModes,
)
from reconciler.engine.apply import ApplyOptions
from reconciler.engine.clock import SystemClock
from reconciler.engine.workspace import ApplyOutcome, apply_workspace, plan_workspace
from tests.pem import make_cert

KEY = SecretValue("integration-ledger-key")
SALT = "integration-salt"
INDEX = "https://ci:planted-Secret-9f8e@artifactory.example.com/api/pypi/remote/simple"
EXTRAS = "https://download.pytorch.org/whl/cpu https://pypi.corp.example/simple"
FAST = ApplyOptions(
    deadline_seconds=20, acl_settle_seconds=5, backoff_initial=0.05, backoff_max=0.5
)


def spec(
    emu: EmulatorHandle,
    token: str,
    *,
    name: str = "ws1",
    secrets: dict[str, str] | None = None,
    acls: dict[str, Permission] | None = None,
) -> WorkspaceSpec:
    secrets = {INDEX_URL: INDEX, EXTRA_INDEX_URLS: EXTRAS} if secrets is None else secrets
    acls = {"admins": Permission.MANAGE, "users": Permission.READ} if acls is None else acls
    return WorkspaceSpec(
        name=name,
        host=emu.host(name),
        auth=AuthSpec(kind="token", token=SecretValue(token)),
        secrets=frozen_map({k: SecretValue(v) for k, v in secrets.items()}),
        acls=frozen_map(acls),
    )


def port(ws: WorkspaceSpec) -> SdkWorkspace:
    return SdkWorkspace.connect(ws, retry_timeout_seconds=10)


def plan(ws: WorkspaceSpec, p: SdkWorkspace | None = None):
    return plan_workspace(ws, p or port(ws), WorkspaceLedgerStore(), KEY, salt=SALT)


def apply(
    ws: WorkspaceSpec, p: SdkWorkspace | None = None, options: ApplyOptions = FAST
) -> ApplyOutcome:
    p = p or port(ws)
    wplan, seen = plan(ws, p)
    return apply_workspace(
        ws, wplan, seen, p, WorkspaceLedgerStore(), options=options, clock=SystemClock(), salt=SALT
    )


def changes(ws: WorkspaceSpec) -> dict[str, tuple[Action, Drift]]:
    return {str(c.address): (c.action, c.drift) for c in plan(ws)[0].changes}


def test_empty_workspace_to_full_config(emu: EmulatorHandle, admin_token: str) -> None:
    cert = make_cert()
    ws = spec(emu, admin_token, secrets={INDEX_URL: INDEX, EXTRA_INDEX_URLS: EXTRAS, CERT: cert})
    outcome = apply(ws)
    assert outcome.converged and len(outcome.applied) == 6
    backend = emu.backend("ws1")
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    keys = {s.key for s in client.secrets.list_secrets(SCOPE)}
    # The three keys Databricks reads, and the marker that says pkgrepo keeps a ledger here.
    assert keys == {INDEX_URL, EXTRA_INDEX_URLS, CERT, MARKER_KEY}
    acls = {a.principal: a.permission.value for a in client.secrets.list_acls(SCOPE)}
    assert acls["admins"] == "MANAGE" and acls["users"] == "READ"
    assert backend is not None


def test_converged_workspace_plans_in_one_round_of_reads_and_applies_nothing(
    emu: EmulatorHandle, admin_token: str
) -> None:
    ws = spec(emu, admin_token)
    p = port(ws)
    assert apply(ws, p).converged
    emu.reset_counts("ws1")
    wplan, seen = plan(ws, p)
    assert not wplan.has_changes
    reads = emu.requests("ws1")
    # The apply read its values back once their second had ended and sealed the ledger
    # entries: while the stamps stay, the plan needs no value and no scope lookup (what
    # backs a scope holding pkgrepo's own sealed writes is known): one round of three reads.
    assert reads == {
        ("GET", "/api/2.0/secrets/list"): 1,
        ("GET", "/api/2.0/secrets/acls/list"): 1,
        ("GET", "/api/2.0/workspace/export"): 1,
    }, reads
    assert all(e.sealed for e in seen.ledger.entries.values()) and seen.ledger.entries
    emu.reset_counts("ws1")
    apply_workspace(
        ws, wplan, seen, p, WorkspaceLedgerStore(), options=FAST, clock=SystemClock(), salt=SALT
    )
    assert sum(emu.requests("ws1").values()) == 0


def test_a_value_changed_after_the_seal_is_read_back_and_caught(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """A write after the apply carries a later stamp than the sealed one: that key (and only
    it) is read back, and the plan says who changed it."""
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    client.secrets.put_secret(SCOPE, EXTRA_INDEX_URLS, string_value="https://evil.example/s")
    emu.reset_counts("ws1")
    assert changes(ws) == {
        f"ws1/secret/{EXTRA_INDEX_URLS}": (Action.UPDATE, Drift.MODIFIED_OUTSIDE)
    }
    reads = emu.requests("ws1")
    assert reads[("GET", "/api/2.0/secrets/get")] == 1
    assert reads[("GET", "/api/2.0/secrets/scopes/list")] == 1


class _EditBeforeTheSeal(SdkWorkspace):
    """A hand edit that lands after pkgrepo's put and before its read back, in the same
    whole second (the emulator's clock stands still): the race sealing must lose."""

    def __init__(self, inner: SdkWorkspace, edit: dict[str, str], admin_token: str) -> None:
        self.__dict__.update(inner.__dict__)
        self._edit, self._admin = edit, admin_token

    def read_values(self, keys):  # type: ignore[no-untyped-def]
        client = WorkspaceClient(host=self.client.config.host, token=self._admin)
        for key, value in self._edit.items():
            client.secrets.put_secret(SCOPE, key, string_value=value)
        self._edit = {}
        return super().read_values(keys)


def test_a_same_second_edit_before_the_seal_is_not_sealed_and_is_caught(
    emu: EmulatorHandle, admin_token: str
) -> None:
    emu.backend("ws1").set_clock(lambda: 1_800_000_000.5)
    ws = spec(emu, admin_token)
    p = _EditBeforeTheSeal(port(ws), {INDEX_URL: "https://evil.example/simple"}, admin_token)
    wplan, seen = plan(ws, p)
    apply_workspace(
        ws, wplan, seen, p, WorkspaceLedgerStore(), options=FAST, clock=SystemClock(), salt=SALT
    )
    again, seen = plan(ws)
    assert not seen.ledger.entries[INDEX_URL].sealed
    assert seen.ledger.entries[EXTRA_INDEX_URLS].sealed
    found = {str(c.address): (c.action, c.drift, c.severity) for c in again.changes}
    assert found[f"ws1/secret/{INDEX_URL}"] == (
        Action.UPDATE,
        Drift.MODIFIED_OUTSIDE,
        Severity.HIGH,
    )


def test_nothing_is_sealed_where_get_is_refused_and_plans_stay_as_before(
    emu: EmulatorHandle, admin_token: str
) -> None:
    emu.set_modes("ws1", ServiceModes(rest_get="refused"))
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    wplan, seen = plan(ws)
    assert not wplan.has_changes
    assert seen.ledger.entries and not any(e.sealed for e in seen.ledger.entries.values())


@pytest.mark.parametrize(
    ("field", "new_value", "reason"),
    [
        (
            INDEX_URL,
            INDEX.replace("artifactory.example.com", "nexus.example.com"),
            "changed in the desired state: index host changes",
        ),
        (
            INDEX_URL,
            INDEX.replace("9f8e", "0000"),
            "changed in the desired state: credentials changed",
        ),
        (EXTRA_INDEX_URLS, "https://download.pytorch.org/whl/cpu", "changed in the desired state"),
    ],
)
def test_each_single_value_change(
    emu: EmulatorHandle, admin_token: str, field: str, new_value: str, reason: str
) -> None:
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    secrets = {INDEX_URL: INDEX, EXTRA_INDEX_URLS: EXTRAS, field: new_value}
    changed = spec(emu, admin_token, secrets=secrets)
    (change,) = plan(changed)[0].changes
    assert (change.action, change.reason) == (Action.UPDATE, reason)
    assert "planted-Secret" not in repr(change)
    assert apply(changed).converged


def test_cert_change_shows_subjects(emu: EmulatorHandle, admin_token: str) -> None:
    old, new = make_cert("Old Root"), make_cert("New Root")
    ws = spec(emu, admin_token, secrets={CERT: old})
    assert apply(ws).converged
    changed = spec(emu, admin_token, secrets={CERT: new.replace("\n", "\r\n")})
    (change,) = plan(changed)[0].changes
    assert change.action is Action.UPDATE
    assert change.before is not None and "CN=Old Root" in change.before
    assert change.after is not None and "CN=New Root" in change.after
    assert apply(changed).converged
    # CRLF and a trailing newline are not drift: the certificates are the same
    assert not plan(spec(emu, admin_token, secrets={CERT: new + "\n"}))[0].has_changes


@pytest.mark.parametrize(
    ("acls", "expected"),
    [
        (
            {"admins": Permission.MANAGE, "users": Permission.READ, "data-eng": Permission.WRITE},
            {"ws1/acl/data-eng": (Action.CREATE, Drift.NEW)},
        ),
        ({"admins": Permission.MANAGE}, {"ws1/acl/users": (Action.DELETE, Drift.CHANGED_IN_GIT)}),
        (
            {"admins": Permission.MANAGE, "users": Permission.WRITE},
            {"ws1/acl/users": (Action.UPDATE, Drift.CHANGED_IN_GIT)},
        ),
    ],
)
def test_each_acl_change(
    emu: EmulatorHandle, admin_token: str, acls: dict[str, Permission], expected: dict[str, object]
) -> None:
    assert apply(spec(emu, admin_token)).converged
    changed = spec(emu, admin_token, acls=acls)
    assert changes(changed) == expected
    assert apply(changed).converged


def test_key_and_scope_deletion(emu: EmulatorHandle, admin_token: str) -> None:
    assert apply(spec(emu, admin_token)).converged
    fewer = spec(emu, admin_token, secrets={INDEX_URL: INDEX})
    assert changes(fewer) == {
        "ws1/secret/pip-extra-index-urls": (Action.DELETE, Drift.CHANGED_IN_GIT)
    }
    assert apply(fewer).converged
    from dataclasses import replace

    from reconciler.core.model import Ensure

    gone = replace(fewer, ensure=Ensure.ABSENT)
    assert changes(gone) == {"ws1/scope": (Action.DELETE, Drift.CHANGED_IN_GIT)}
    assert apply(gone, options=ApplyOptions(allow_destroy=True)).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    assert SCOPE not in {s.name for s in client.secrets.list_scopes()}


def test_value_changed_outside_pkgrepo_is_caught(emu: EmulatorHandle, admin_token: str) -> None:
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    client.secrets.put_secret(SCOPE, INDEX_URL, string_value="https://evil.example/simple")
    (change,) = plan(ws)[0].changes
    assert change.drift is Drift.MODIFIED_OUTSIDE
    assert change.severity is Severity.HIGH
    assert apply(ws).converged


def test_acl_changed_outside_pkgrepo_is_caught(emu: EmulatorHandle, admin_token: str) -> None:
    from databricks.sdk.service.workspace import AclPermission

    ws = spec(emu, admin_token)
    assert apply(ws).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    client.secrets.put_acl(SCOPE, "contractors", AclPermission.MANAGE)
    found = {str(c.address): (c.action, c.drift, c.severity) for c in plan(ws)[0].changes}
    assert found == {"ws1/acl/contractors": (Action.DELETE, Drift.ACL_ADDED, Severity.HIGH)}
    assert apply(ws).converged


def test_non_admin_token_gets_a_clear_error(emu: EmulatorHandle, admin_token: str) -> None:
    assert apply(spec(emu, admin_token)).converged
    user = spec(emu, USER_TOKEN, secrets={INDEX_URL: INDEX})
    with pytest.raises(WorkspaceError) as raised:
        apply(user)
    assert "permission denied" in str(raised.value)
    assert "ws1" in str(raised.value)


def test_throttling_and_5xx_during_apply_still_converge(
    emu: EmulatorHandle, admin_token: str
) -> None:
    # a burst of 3: the four concurrent reads of a plan are throttled at once
    emu.set_faults(
        "ws1",
        Faults(
            rate_limit_rps=50,
            rate_limit_burst=3,
            retry_after_seconds=0,
            error_rate=0.1,
            error_statuses=(500,),
            seed=7,
        ),
    )
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    statuses = {status for (_, _, status) in emu.responses("ws1")}
    assert {429, 500} <= statuses, statuses


STEPS = [
    "secrets/scopes/create",
    "secrets/put",
    "secrets/put",
    "secrets/acls/put",
    "secrets/acls/put",
]


@pytest.mark.parametrize("step", range(len(STEPS)))
def test_apply_cut_off_after_each_step_converges_on_rerun(
    emu: EmulatorHandle, admin_token: str, step: int
) -> None:
    nth = STEPS[: step + 1].count(STEPS[step])
    emu.set_faults(
        "ws1",
        Faults(
            one_shot=(OneShotFailure(STEPS[step], nth=nth, status=400, error_code="BAD_REQUEST"),)
        ),
    )
    ws = spec(emu, admin_token)
    with pytest.raises(WorkspaceError):
        apply(ws)
    emu.set_faults("ws1", Faults())
    assert apply(ws).converged
    assert not plan(ws)[0].has_changes


def test_late_acls_are_waited_for(emu: EmulatorHandle, admin_token: str) -> None:
    emu.set_faults("ws1", Faults(late_acl_seconds=0.5))
    ws = spec(emu, admin_token)
    assert apply(ws).converged


def test_notebook_context_compares_values_directly(emu: EmulatorHandle, admin_token: str) -> None:
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    emu.set_notebook_context("ws1", True)
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    client.secrets.put_secret(SCOPE, EXTRA_INDEX_URLS, string_value=f"  {EXTRAS}  ")
    in_nb = SdkWorkspace.connect(ws, retry_timeout_seconds=10, read_values=True)
    # the same URLs with other spacing are the same value: no change, ledger or not
    wplan, _ = plan_workspace(ws, in_nb, WorkspaceLedgerStore(), None, salt=SALT)
    assert not wplan.has_changes
    client.secrets.put_secret(SCOPE, EXTRA_INDEX_URLS, string_value="https://x.example/s")
    wplan, _ = plan_workspace(ws, in_nb, WorkspaceLedgerStore(), None, salt=SALT)
    assert [(str(c.address), c.action) for c in wplan.changes] == [
        ("ws1/secret/pip-extra-index-urls", Action.UPDATE)
    ]


URLS = st.sampled_from(["https://a.example/simple", "https://u:pw-1234@b.example/simple"])


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    secrets=st.dictionaries(st.sampled_from([INDEX_URL, EXTRA_INDEX_URLS]), URLS, max_size=2),
    acls=st.dictionaries(
        st.sampled_from(["admins", "users", "team"]), st.sampled_from(list(Permission)), max_size=3
    ),
    outside=st.dictionaries(st.sampled_from([INDEX_URL, CERT, "other"]), URLS, max_size=2),
)
def test_property_apply_then_plan_is_empty_through_the_sdk(
    emu: EmulatorHandle,
    admin_token: str,
    secrets: dict[str, str],
    acls: dict[str, Permission],
    outside: dict[str, str],
) -> None:
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    if outside:
        if SCOPE not in {s.name for s in client.secrets.list_scopes()}:
            client.secrets.create_scope(SCOPE)
        for key, value in outside.items():
            client.secrets.put_secret(SCOPE, key, string_value=value)
    ws = spec(emu, admin_token, secrets=secrets, acls=acls)
    p = port(ws)
    from dataclasses import replace

    assert apply(ws, p, options=replace(FAST, allow_destroy=True)).converged
    emu.reset_counts("ws1")
    assert apply(ws, p).applied == ()
    writes = [k for k in emu.requests("ws1") if k[0] == "POST"]
    assert writes == []


def test_gateway_errors_502_and_504_are_retried(emu: EmulatorHandle, admin_token: str) -> None:
    emu.set_faults("ws1", Faults(error_rate=0.25, error_statuses=(502, 504), seed=3))
    assert apply(spec(emu, admin_token)).converged
    statuses = {status for (_, _, status) in emu.responses("ws1")}
    assert statuses & {502, 504}, statuses


def test_token_clients_skip_the_host_metadata_probe(emu: EmulatorHandle, admin_token: str) -> None:
    import inspect

    from databricks.sdk.config import Config

    # pkgrepo overrides this private SDK hook for token auth. SDK releases that probe
    # ``/.well-known/databricks-config`` call it from ``Config.__init__``'s resolution; if a
    # release probes under another name, the override silently stops working, so this test
    # says so first. Older releases in the supported range do not probe at all.
    probes = "databricks-config" in inspect.getsource(inspect.getmodule(Config))  # type: ignore[arg-type]
    if probes:
        assert callable(getattr(Config, "_resolve_host_metadata", None))
    emu.reset_counts("ws1")
    client = port(spec(emu, admin_token))
    assert sum(emu.requests("ws1").values()) == 0
    assert client.client.config.token == admin_token
    assert plan(spec(emu, admin_token), client)[0].has_changes  # and it works
