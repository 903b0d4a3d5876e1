"""What a person sees in a terminal: exact lines, counts, colour only when asked for."""

from __future__ import annotations

from reconciler.core.model import Address
from reconciler.core.plan import Action, Change, Drift, Plan, Severity
from reconciler.render import text
from tests.render.strategies import (
    HOST,
    NEW_URL,
    OLD_URL,
    change,
    small_plan,
    up_to_date_plan,
    workspace,
)

ANSI = "\x1b["


def test_small_plan_exact_lines() -> None:
    assert text.render(small_plan()).splitlines() == [
        f"workspace prod-eu ({HOST})",
        "  + prod-eu/secret/pip-extra-index-urls: https://download.pytorch.org/whl/cpu  # new key",
        f"  ~ prod-eu/secret/pip-index-url: {OLD_URL} -> {NEW_URL}"
        "  # modified outside pkgrepo at 2024-05-01 10:00:00 UTC (modified-outside) [high]",
        "  - prod-eu/acl/bob@example.com: WRITE  # granted outside pkgrepo (acl-added) [high]",
        "",
        "2 workspaces are up to date: dev, staging",
        "",
        "Plan: 1 to create, 1 to update, 1 to delete across 1 of 3 workspaces.",
        "Safety: within limits. 1 of 9 managed keys change (the 30% share limit applies "
        "from 10 keys); 0 scope(s) deleted (limit 1).",
        "Changes reach compute after a notebook is reattached or a job is rerun.",
    ]


def test_ends_with_one_newline() -> None:
    out = text.render(small_plan())
    assert out.endswith(".\n") and not out.endswith("\n\n")


def test_summary_counts_across_every_workspace() -> None:
    plan = Plan(
        workspaces=(
            workspace(
                "a",
                change("a/scope", Action.CREATE, None, "scope", "scope does not exist"),
                change("a/secret/pip-cert", Action.CREATE, None, "CN=x", "new key"),
            ),
            workspace(
                "b",
                change(
                    "b/acl/users",
                    Action.UPDATE,
                    "MANAGE",
                    "READ",
                    "changed in Git",
                    Drift.CHANGED_IN_GIT,
                ),
                change(
                    "b/secret/junk",
                    Action.DELETE,
                    "(unmanaged key)",
                    None,
                    "owned",
                    Drift.ADDED_OUT_OF_BAND,
                ),
            ),
        ),
        salt="s",
    )
    out = text.render(plan)
    assert "Plan: 2 to create, 1 to update, 1 to delete across 2 workspaces." in out
    assert "up to date" not in out


def test_one_workspace_singular() -> None:
    plan = Plan(
        (workspace("a", change("a/secret/pip-cert", Action.CREATE, None, "x", "new")),), salt="s"
    )
    assert "across 1 workspace." in text.render(plan)


def test_no_changes() -> None:
    lines = text.render(up_to_date_plan("dev", "prod")).splitlines()
    assert lines == [
        "All 2 workspaces up to date: dev, prod",
        "",
        "No changes. Every workspace matches the desired state.",
    ]


def test_single_workspace_no_changes() -> None:
    out = text.render(up_to_date_plan("dev"))
    assert out.splitlines() == [
        "1 workspace is up to date: dev",
        "",
        "No changes. Every workspace matches the desired state.",
    ]
    assert "reattached" not in out


def test_empty_plan() -> None:
    assert text.render(Plan((), salt="s")) == "No changes. No workspaces were planned.\n"


def test_many_up_to_date_workspaces_are_counted_not_listed() -> None:
    names = [f"ws{i:02}" for i in range(25)]
    out = text.render(up_to_date_plan(*names))
    assert "All 25 workspaces up to date: ws00, ws01," in out
    assert "ws09 and 15 more" in out
    assert "ws10" not in out


def test_scope_lines_carry_no_value() -> None:
    plan = Plan(
        (
            workspace(
                "gone",
                change(
                    "gone/scope",
                    Action.DELETE,
                    "scope",
                    None,
                    "workspace is declared ensure: absent",
                    Drift.CHANGED_IN_GIT,
                ),
                destructive="deletes the scope and every secret in it",
            ),
        ),
        salt="s",
    )
    lines = text.render(plan).splitlines()
    assert lines[:3] == [
        "workspace gone (https://gone.cloud.databricks.com)",
        "  - gone/scope  # workspace is declared ensure: absent (changed-in-git)",
        "  ! needs --allow-destroy: deletes the scope and every secret in it",
    ]


def test_warnings_show_even_without_changes() -> None:
    ws = workspace("dev", warnings=("PKGREPO_LEDGER_KEY is not set: values cannot be verified",))
    lines = text.render(Plan((ws, workspace("prod")), salt="s")).splitlines()
    assert lines == [
        "workspace dev (https://dev.cloud.databricks.com)",
        "  no changes",
        "  ! warning: PKGREPO_LEDGER_KEY is not set: values cannot be verified",
        "",
        "1 workspace is up to date: prod",
        "",
        "No changes. Every workspace matches the desired state.",
    ]


def test_noop_changes_are_not_shown() -> None:
    plan = Plan(
        (workspace("a", change("a/acl/users", Action.NOOP, "READ", "READ", "same")),), salt="s"
    )
    out = text.render(plan)
    assert "a/acl/users" not in out
    assert "No changes." in out


def test_new_drift_is_not_labelled() -> None:
    line = text.change_line(change("a/secret/pip-cert", Action.CREATE, None, "CN=x", "new key"))
    assert line == "+ a/secret/pip-cert: CN=x  # new key"


def test_update_with_missing_side_says_none() -> None:
    line = text.change_line(change("a/acl/x", Action.UPDATE, None, "READ", "odd"))
    assert line == "~ a/acl/x: (none) -> READ  # odd"


def test_workspace_order_is_kept() -> None:
    plan = Plan(
        tuple(
            workspace(n, change(f"{n}/secret/k", Action.CREATE, None, "v", "new"))
            for n in ("zeta", "alpha", "mid")
        ),
        salt="s",
    )
    headers = [line for line in text.render(plan).splitlines() if line.startswith("workspace")]
    assert [h.split()[1] for h in headers] == ["zeta", "alpha", "mid"]


def test_no_colour_by_default() -> None:
    assert ANSI not in text.render(small_plan())


def test_colour_when_asked() -> None:
    out = text.render(small_plan(), color=True)
    assert "\x1b[32m+ prod-eu/secret/pip-extra-index-urls" in out  # green create
    assert "\x1b[33m~ prod-eu/secret/pip-index-url" in out  # yellow update
    assert "\x1b[31m- prod-eu/acl/bob@example.com" in out  # red delete
    assert "\x1b[31m\x1b[1m[high]" in out  # bold red high severity
    assert "\x1b[2m# new key" in out  # dim reason


def test_colour_changes_nothing_but_escapes() -> None:
    import click

    assert click.unstyle(text.render(small_plan(), color=True)) == text.render(small_plan())


def test_control_characters_are_made_visible() -> None:
    hostile = Change(
        Address.acl("a", "evil\x1b[2J\nname\u202e"),
        Action.DELETE,
        "READ\r",
        None,
        "granted\toutside",
        Drift.ACL_ADDED,
        Severity.HIGH,
    )
    out = text.render(Plan((workspace("a", hostile),), salt="s"))
    assert "\x1b" not in out and "\r" not in out and "\t" not in out and "\u202e" not in out
    assert "a/acl/evil\\x1b[2J\\nname\\u202e: READ\\r  # granted\\toutside" in out
