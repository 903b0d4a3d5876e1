"""The planner and applier against an emulated workspace in this process (the emulator's
own backends behind the port): classification of every kind of difference, and idempotence
(after an apply, a fresh plan is empty)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.errors import PlanRefused, WorkspaceError
from reconciler.core.model import (
    CERT,
    EXTRA_INDEX_URLS,
    INDEX_URL,
    AclsMode,
    AuthSpec,
    Ensure,
    Permission,
    SecretValue,
    WorkspaceSpec,
    frozen_map,
)
from reconciler.core.plan import Action, Drift, Severity
from reconciler.edges.ledger_store import LedgerStore, LocalLedgerStore, WorkspaceLedgerStore
from reconciler.emulator import Faults, OneShotFailure
from reconciler.engine.apply import ApplyOptions
from reconciler.engine.workspace import apply_workspace, plan_workspace
from tests.support.clock import FakeClock
from tests.support.emulated_port import COLLEAGUE, DEPLOYER, SP_DEPLOYER, EmulatedWorkspace

KEY = SecretValue("ledger-key-for-tests")
SALT = "salt"
TOKEN_URL = "https://bob:planted-TOKEN-123@pypi.corp.example/simple"


def spec(
    secrets: dict[str, str] | None = None,
    acls: dict[str, Permission] | None = None,
    **kwargs: object,
) -> WorkspaceSpec:
    if secrets is None:
        secrets = {INDEX_URL: TOKEN_URL, EXTRA_INDEX_URLS: "https://a.example/simple"}
    if acls is None:
        acls = {"admins": Permission.MANAGE, "users": Permission.READ}
    return WorkspaceSpec(
        name="ws",
        host="http://127.0.0.1:1/ws",
        auth=AuthSpec(),
        secrets=frozen_map({k: SecretValue(v) for k, v in secrets.items()}),
        acls=frozen_map(acls),
        **kwargs,  # type: ignore[arg-type]
    )


def plan(
    ws: WorkspaceSpec,
    fake: EmulatedWorkspace,
    key: SecretValue | None = KEY,
    store: LedgerStore | None = None,
):
    return plan_workspace(ws, fake, store or WorkspaceLedgerStore(), key, salt=SALT)


def converge(
    ws: WorkspaceSpec,
    fake: EmulatedWorkspace,
    *,
    allow_destroy: bool = False,
    store: LedgerStore | None = None,
) -> None:
    wplan, seen = plan(ws, fake, store=store)
    outcome = apply_workspace(
        ws,
        wplan,
        seen,
        fake,
        store or WorkspaceLedgerStore(),
        options=ApplyOptions(allow_destroy=allow_destroy),
        clock=FakeClock(),
        salt=SALT,
    )
    assert outcome.converged, outcome.remaining


def actions(ws: WorkspaceSpec, fake: EmulatedWorkspace) -> dict[str, tuple[Action, Drift]]:
    wplan, _ = plan(ws, fake)
    return {str(c.address): (c.action, c.drift) for c in wplan.changes}


def test_empty_workspace_gets_scope_secrets_and_grants_in_order() -> None:
    fake = EmulatedWorkspace()
    got = actions(spec(), fake)
    assert got == {
        "ws/scope": (Action.CREATE, Drift.NEW),
        "ws/secret/pip-index-url": (Action.CREATE, Drift.NEW),
        "ws/secret/pip-extra-index-urls": (Action.CREATE, Drift.NEW),
        "ws/acl/admins": (Action.CREATE, Drift.NEW),
        "ws/acl/users": (Action.CREATE, Drift.NEW),
    }
    converge(spec(), fake)
    assert fake.values[INDEX_URL] == TOKEN_URL
    # the service gives the creator MANAGE; pkgrepo never takes its own grant away
    assert fake.acls == {
        DEPLOYER: Permission.MANAGE,
        "admins": Permission.MANAGE,
        "users": Permission.READ,
    }


def test_converged_workspace_plans_empty_and_applies_no_writes() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    writes = fake.calls["writes"]
    wplan, _ = plan(spec(), fake)
    assert not wplan.has_changes
    converge(spec(), fake)
    assert fake.calls["writes"] == writes


def test_value_changed_in_git_is_an_update() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    changed = spec(
        {
            INDEX_URL: TOKEN_URL.replace("corp", "other"),
            EXTRA_INDEX_URLS: "https://a.example/simple",
        }
    )
    wplan, _ = plan(changed, fake)
    (change,) = wplan.changes
    assert change.action is Action.UPDATE and change.drift is Drift.CHANGED_IN_GIT
    assert change.severity is Severity.HIGH  # the index host changes
    assert change.before == "https://****@pypi.corp.example/simple"
    assert change.after == "https://****@pypi.other.example/simple"


def test_credentials_only_change_says_so_without_showing_them() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    rotated = spec(
        {INDEX_URL: TOKEN_URL.replace("123", "456"), EXTRA_INDEX_URLS: "https://a.example/simple"}
    )
    wplan, _ = plan(rotated, fake)
    (change,) = wplan.changes
    assert change.action is Action.UPDATE
    assert change.reason == "changed in the desired state: credentials changed"
    assert "456" not in repr(wplan) and "123" not in repr(wplan)


def test_value_modified_outside_pkgrepo_is_caught_by_the_ledger() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    fake.edit(INDEX_URL, "https://evil.example/simple")
    wplan, _ = plan(spec(), fake)
    (change,) = wplan.changes
    assert change.drift is Drift.MODIFIED_OUTSIDE
    assert change.severity is Severity.HIGH
    assert change.reason.startswith("modified outside pkgrepo at ")
    converge(spec(), fake)
    assert fake.values[INDEX_URL] == TOKEN_URL


def test_extra_urls_compare_as_a_list_and_certs_by_content() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    spaced = spec({INDEX_URL: TOKEN_URL, EXTRA_INDEX_URLS: "  https://a.example/simple \n"})
    assert not plan(spaced, fake)[0].has_changes


def test_key_not_declared_is_deleted_unless_ignored() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    fake.edit(CERT, "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n")
    got = actions(spec(), fake)
    assert got == {"ws/secret/pip-cert": (Action.DELETE, Drift.ADDED_OUT_OF_BAND)}
    assert actions(spec(ignore=frozenset({CERT})), fake) == {}


def test_key_removed_from_git_is_deleted() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    got = actions(spec({INDEX_URL: TOKEN_URL}), fake)
    assert got == {"ws/secret/pip-extra-index-urls": (Action.DELETE, Drift.CHANGED_IN_GIT)}


def test_acl_drift_kinds_and_severity() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    fake.grant("intruder", Permission.MANAGE)
    fake.grant("users", Permission.WRITE)
    wplan, _ = plan(spec(), fake)
    found = {str(c.address): (c.action, c.drift, c.severity) for c in wplan.changes}
    assert found == {
        "ws/acl/intruder": (Action.DELETE, Drift.ACL_ADDED, Severity.HIGH),
        "ws/acl/users": (Action.UPDATE, Drift.ACL_CHANGED, Severity.HIGH),
    }
    converge(spec(), fake)
    assert "intruder" not in fake.acls


def test_additive_acls_leave_other_principals_alone() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    fake.grant("team", Permission.READ)
    assert actions(spec(acls_mode=AclsMode.ADDITIVE), fake) == {}


def test_deleting_the_scope_needs_allow_destroy() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    gone = spec(ensure=Ensure.ABSENT)
    wplan, seen = plan(gone, fake)
    assert wplan.destructive
    try:
        apply_workspace(
            gone,
            wplan,
            seen,
            fake,
            WorkspaceLedgerStore(),
            options=ApplyOptions(),
            clock=FakeClock(),
            salt=SALT,
        )
    except PlanRefused as exc:
        assert "--allow-destroy" in str(exc)
    else:
        raise AssertionError("destroy without --allow-destroy was applied")
    assert fake.scope
    converge(gone, fake, allow_destroy=True)
    assert not fake.scope


def test_without_ledger_key_the_ledgers_timestamps_still_catch_an_edit() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    wplan, _ = plan(spec(), fake, key=None)
    assert not wplan.has_changes  # unverified, but nothing moved
    fake.edit(INDEX_URL, "https://evil.example/simple")
    wplan, _ = plan(spec(), fake, key=None)
    (change,) = [c for c in wplan.changes if c.action is not Action.NOOP]
    assert (change.drift, change.severity) == (Drift.MODIFIED_OUTSIDE, Severity.HIGH)
    assert "ledger not verified" in change.reason
    assert any("PKGREPO_LEDGER_KEY" in w for w in wplan.warnings)


def test_tampered_ledger_is_reported_and_not_trusted() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    assert fake.ledger is not None
    fake.ledger = fake.ledger.replace(b'"hmac": "', b'"hmac": "0')
    wplan, seen = plan(spec(), fake)
    assert seen.ledger.problem and "signature" in seen.ledger.problem
    assert any("ledger not trusted" in w for w in wplan.warnings)
    converge(spec(), fake)  # rewriting re-establishes a trusted ledger
    assert plan(spec(), fake)[1].ledger.trusted


def test_transient_failures_are_retried_within_the_deadline() -> None:
    fake = EmulatedWorkspace()
    fake.set_faults(
        Faults(
            one_shot=(
                *(OneShotFailure("secrets/put") for _ in range(3)),
                *(OneShotFailure("secrets/acls/put") for _ in range(2)),
            )
        )
    )
    converge(spec(), fake)
    assert fake.calls["put_secret"] >= 2 + 3 and fake.calls["put_acl"] >= 2 + 2  # they failed
    assert fake.values[INDEX_URL] == TOKEN_URL


def test_interrupted_apply_converges_on_rerun() -> None:
    for stop_after in range(1, 6):
        fake = EmulatedWorkspace()
        wplan, seen = plan(spec(), fake)
        ops = ["secrets/scopes/create", "secrets/put", "secrets/put", "secrets/acls/put"]
        fake.fail([*ops, "secrets/acls/put"][stop_after - 1], 10_000)  # for good from there
        with pytest.raises(WorkspaceError, match="gave up"):
            apply_workspace(
                spec(),
                wplan,
                seen,
                fake,
                WorkspaceLedgerStore(),
                options=ApplyOptions(deadline_seconds=1),
                clock=FakeClock(),
                salt=SALT,
            )
        fake.heal()
        converge(spec(), fake)
        assert not plan(spec(), fake)[0].has_changes


# -- property: one apply converges, a second sends nothing ----------------------------------

URLS = st.sampled_from(
    [
        "https://a.example/simple",
        "https://u:p4ss-word@b.example/pypi/simple",
        "https://c.example/simple/",
    ]
)
PRINCIPALS = st.sampled_from(["admins", "users", "team-a", "deployer@example.com", "sp-1"])
PERMS = st.sampled_from(list(Permission))


@st.composite
def desired_specs(draw: st.DrawFn) -> WorkspaceSpec:
    secrets: dict[str, str] = {}
    if draw(st.booleans()):
        secrets[INDEX_URL] = draw(URLS)
    extras = draw(st.lists(URLS, max_size=3, unique=True))
    if extras:
        secrets[EXTRA_INDEX_URLS] = " ".join(extras)
    acls = draw(st.dictionaries(PRINCIPALS, PERMS, max_size=4))
    return spec(
        secrets,
        acls,
        acls_mode=draw(st.sampled_from(list(AclsMode))),
        ignore=frozenset(
            draw(st.sets(st.sampled_from([INDEX_URL, EXTRA_INDEX_URLS, CERT]), max_size=1))
        ),
    )


@st.composite
def live_workspaces(draw: st.DrawFn) -> EmulatedWorkspace:
    """A workspace where another admin may have made the scope, put keys and granted."""
    fake = EmulatedWorkspace()
    if draw(st.booleans()):
        fake.as_principal(COLLEAGUE).create_scope()
        for key in draw(st.sets(st.sampled_from([INDEX_URL, EXTRA_INDEX_URLS, CERT, "other"]))):
            fake.edit(key, draw(URLS))
        for principal, permission in draw(st.dictionaries(PRINCIPALS, PERMS, max_size=4)).items():
            fake.grant(principal, permission)
    return fake


@given(desired_specs(), live_workspaces())
def test_after_apply_a_fresh_plan_is_empty(ws: WorkspaceSpec, fake: EmulatedWorkspace) -> None:
    converge(ws, fake, allow_destroy=True)
    assert not plan(ws, fake)[0].has_changes
    writes = fake.calls["writes"]
    converge(ws, fake, allow_destroy=True)
    assert fake.calls["writes"] == writes


# -- findings of review, each pinned by a test ------------------------------------------------


class EditDuringApply(EmulatedWorkspace):
    """Another admin rewrites pip-index-url while pkgrepo is granting ACLs (a port that
    lets the edit in just before its first grant)."""

    def put_acl(self, principal: str, permission: Permission) -> None:
        if not self.calls["put_acl"]:
            self.edit(INDEX_URL, "https://evil.example/simple")
        super().put_acl(principal, permission)


def test_a_write_by_someone_else_during_apply_is_not_recorded_as_pkgrepos() -> None:
    fake = EditDuringApply()
    wplan, seen = plan(spec(), fake)
    outcome = apply_workspace(
        spec(),
        wplan,
        seen,
        fake,
        WorkspaceLedgerStore(),
        options=ApplyOptions(),
        clock=FakeClock(),
        salt=SALT,
    )
    assert not outcome.converged
    assert [(str(c.address), c.drift) for c in outcome.remaining] == [
        ("ws/secret/pip-index-url", Drift.MODIFIED_OUTSIDE)
    ]


def test_a_non_admin_deployer_never_lowers_its_own_grant_on_a_new_scope(tmp_path: Path) -> None:
    # Not a workspace admin: the ledger folder is admins-only, so its ledger is kept locally
    # (``--ledger``), and the port reads none from the workspace.
    fake = EmulatedWorkspace(identity=SP_DEPLOYER, ledger_in_workspace=False)
    store = LocalLedgerStore(tmp_path / "ledgers")
    ws = spec(acls={SP_DEPLOYER: Permission.READ, "admins": Permission.MANAGE})
    wplan, _ = plan(ws, fake, store=store)
    assert "ws/acl/sp-deployer" not in {str(c.address) for c in wplan.changes}
    assert any("sp-deployer keeps MANAGE" in w for w in wplan.warnings)
    converge(ws, fake, store=store)
    assert fake.acls[SP_DEPLOYER] is Permission.MANAGE


def test_removing_every_grant_but_the_deployers_needs_allow_destroy() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    wplan, _ = plan(spec(acls={}), fake)
    assert wplan.destructive == "removes every ACL of the scope"
    assert plan(spec(acls={"admins": Permission.MANAGE}), fake)[0].destructive is None


def test_ensure_absent_empties_the_ledger() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    converge(spec(ensure=Ensure.ABSENT), fake, allow_destroy=True)
    wplan, seen = plan(spec(), fake)
    assert seen.ledger.trusted and not seen.ledger.entries
    assert wplan.changes[0].drift is Drift.NEW  # a new scope, not one deleted out of band


def test_additive_mode_never_adopts_grants_made_outside_pkgrepo() -> None:
    fake = EmulatedWorkspace()
    converge(spec(acls_mode=AclsMode.ADDITIVE), fake)
    fake.grant("intruder", Permission.MANAGE)
    converge(
        spec(
            acls_mode=AclsMode.ADDITIVE,
            acls={"admins": Permission.MANAGE, "users": Permission.WRITE},
        ),
        fake,
    )
    found = {str(c.address): (c.drift, c.severity) for c in plan(spec(), fake)[0].changes}
    assert found["ws/acl/intruder"] == (Drift.ACL_ADDED, Severity.HIGH)


def test_ignored_keys_do_not_make_a_plan_stale() -> None:
    fake = EmulatedWorkspace()
    ws = spec(ignore=frozenset({CERT}))
    converge(ws, fake)
    before = plan(ws, fake)[0].live_digest
    fake.edit(CERT, "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n")
    assert plan(ws, fake)[0].live_digest == before


def test_without_a_ledger_key_plans_carry_no_value_digests() -> None:
    wplan, _ = plan(spec(), EmulatedWorkspace(), key=None)
    assert dict(wplan.desired_digests) == {}
