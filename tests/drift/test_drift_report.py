"""From plans and fleet results to a ``DriftReport``: kinds and severities kept as the
planner decided them, failures kept beside the others, exit codes."""

from __future__ import annotations

from hypothesis import given

from reconciler.core import drift
from reconciler.core.plan import Action, Drift, Plan, Severity
from reconciler.core.results import FleetPlan, Status, WorkspaceResult
from tests.render.strategies import change, plans, small_plan, up_to_date_plan, workspace


def test_items_keep_the_planners_kind_and_severity() -> None:
    report = drift.from_plan(small_plan())
    prod = report.workspaces[0]
    assert [(i.address, i.kind, i.severity, i.action) for i in prod.items] == [
        ("prod-eu/secret/pip-extra-index-urls", Drift.NEW, Severity.LOW, Action.CREATE),
        ("prod-eu/secret/pip-index-url", Drift.MODIFIED_OUTSIDE, Severity.HIGH, Action.UPDATE),
        ("prod-eu/acl/bob@example.com", Drift.ACL_ADDED, Severity.HIGH, Action.DELETE),
    ]
    item = prod.items[1]
    assert item.live == "https://****@old.example.com/simple"
    assert item.desired == "https://****@new.example.com/simple"
    assert item.attributed_to == drift.OUTSIDE
    assert item.settle_apply == "apply writes the value from Git again"
    assert item.message.startswith("modified outside pkgrepo")
    assert [i.address for i in prod.ordered_items()][-1] == "prod-eu/secret/pip-extra-index-urls"
    assert report.exit_code == drift.EXIT_DRIFT


def test_no_ops_are_not_drift() -> None:
    plan = Plan(
        (workspace("a", change("a/acl/users", Action.NOOP, "READ", "READ", "same")),), salt="s"
    )
    report = drift.from_plan(plan)
    assert not report.has_drift and report.exit_code == drift.EXIT_IN_SYNC
    assert report.workspaces[0].status == "in-sync"


def test_unreadable_workspaces_make_exit_1_even_with_drift() -> None:
    failed = drift.Unreadable("c", "https://c.example", "authentication failed")
    report = drift.from_plan(small_plan(), [failed])
    assert report.exit_code == drift.EXIT_ERROR
    assert report.workspaces[-1].status == "error"
    counts = report.counts()
    assert (counts.workspaces, counts.drifted, counts.unreadable, counts.in_sync) == (4, 1, 1, 2)
    assert (counts.items, counts.high, counts.low) == (3, 2, 1)
    assert counts.by_kind[Drift.ACL_ADDED] == 1 and counts.by_kind[Drift.SCOPE_MISSING] == 0


def test_from_fleet_keeps_order_hosts_and_strips_the_name_prefix() -> None:
    plan = small_plan()
    results = [
        WorkspaceResult("broken", 0, Status.FAILED, error="broken: list secrets: timed out"),
        WorkspaceResult("prod-eu", 2, Status.CHANGES, plan=plan.workspaces[0]),
        WorkspaceResult("dev", 0, Status.UP_TO_DATE, plan=plan.workspaces[1]),
    ]
    report = drift.from_fleet(
        FleetPlan(salt="s", results=results), {"broken": "https://broken.example"}
    )
    assert [w.workspace for w in report.workspaces] == ["broken", "prod-eu", "dev"]
    broken = report.workspaces[0]
    assert (broken.host, broken.error) == ("https://broken.example", "list secrets: timed out")
    assert [w.status for w in report.workspaces] == ["error", "drift", "in-sync"]


def test_empty_and_in_sync_reports() -> None:
    assert drift.from_plan(Plan((), salt="s")).exit_code == 0
    report = drift.from_plan(up_to_date_plan("a", "b"))
    assert report.exit_code == 0 and report.counts().in_sync == 2


@given(plans())
def test_exit_code_follows_the_plan(plan: Plan) -> None:
    report = drift.from_plan(plan)
    # Drift is what apply would change, plus what a person must fix in a Key Vault backed
    # scope (pkgrepo cannot write it: a no-op for apply, drift all the same).
    for_people = [c for ws in plan.workspaces for c in ws.changes if c.drift is Drift.KEYVAULT]
    drifted = plan.has_changes or bool(for_people)
    assert report.has_drift == drifted
    assert report.exit_code == (2 if drifted else 0)
    assert len(report.items) == sum(
        1
        for ws in plan.workspaces
        for c in ws.changes
        if c.action is not Action.NOOP or c.drift is Drift.KEYVAULT
    )
