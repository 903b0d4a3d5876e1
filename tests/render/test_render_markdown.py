"""The plan as a pull-request comment: title, tables, flags, escaping."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.model import Address
from reconciler.core.plan import Action, Change, Drift, Plan, Severity
from reconciler.render import markdown
from tests.render.strategies import (
    HOST,
    change,
    plans,
    small_plan,
    up_to_date_plan,
    workspace,
)

REMINDER = "Changes reach compute after a notebook is reattached or a job is rerun."


def test_small_plan() -> None:
    out = markdown.render(small_plan())
    assert out.splitlines()[0] == (
        "## pkgrepo plan: 1 to create, 1 to update, 1 to delete across 1 of 3 workspaces"
    )
    assert f"### prod-eu ({HOST})" in out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table == [
        "| | address | before | after | reason |",
        "|---|---|---|---|---|",
        "| \N{HEAVY PLUS SIGN} | prod-eu/secret/pip-extra-index-urls |  "
        "| https://download.pytorch.org/whl/cpu | new key |",
        "| \N{PENCIL}\N{VARIATION SELECTOR-16} | prod-eu/secret/pip-index-url "
        r"| https://\*\*\*\*@old.example.com/simple | https://\*\*\*\*@new.example.com/simple "
        "| \N{LARGE RED CIRCLE} **high** modified outside pkgrepo at 2024-05-01 10:00:00 UTC "
        "(drift: modified-outside) |",
        "| \N{HEAVY MINUS SIGN} | prod-eu/acl/bob@example.com | WRITE |  "
        "| \N{LARGE RED CIRCLE} **high** granted outside pkgrepo (drift: acl-added) |",
    ]
    assert "<details><summary>2 workspaces are up to date</summary>" in out
    assert "- dev (https://dev.cloud.databricks.com)\n- staging (" in out
    assert out.rstrip().endswith(f"_{REMINDER}_")
    assert out.endswith("\n") and not out.endswith("\n\n")


def test_no_changes() -> None:
    out = markdown.render(up_to_date_plan("a", "b"))
    assert out.startswith(
        "## pkgrepo plan: no changes\n\nNo changes. Every workspace matches the desired state."
    )
    assert "|" not in out
    assert "<details><summary>2 workspaces are up to date</summary>" in out
    assert REMINDER not in out


def test_empty_plan() -> None:
    out = markdown.render(Plan((), salt="s"))
    assert "No workspaces were planned." in out
    assert "<details>" not in out


def test_warnings_and_destructive_as_a_quote() -> None:
    ws = workspace(
        "gone",
        change("gone/scope", Action.DELETE, "scope", None, "absent", Drift.CHANGED_IN_GIT),
        warnings=("first warning", "second | warning"),
        destructive="deletes the scope and every secret in it",
    )
    out = markdown.render(Plan((ws,), salt="s"))
    assert (
        "> **Needs `--allow-destroy`**: deletes the scope and every secret in it\n"
        ">\n"
        "> **Warnings**\n"
        "> - first warning\n"
        "> - second \\| warning\n"
    ) in out


def test_warnings_without_changes() -> None:
    ws = workspace("dev", warnings=("ledger not trusted",))
    out = markdown.render(Plan((ws,), salt="s"))
    assert "### dev (https://dev.cloud.databricks.com)\n\nNo changes.\n\n> **Warnings**" in out
    assert "<details>" not in out


def test_cells_are_escaped() -> None:
    hostile = Change(
        Address.acl("a", "x|y`z"),
        Action.UPDATE,
        "line1\nline2",
        "<b>&</b>",
        "why | not `code`\r\nnext",
        Drift.ACL_CHANGED,
        Severity.HIGH,
    )
    row = markdown.render(Plan((workspace("a", hostile),), salt="s")).splitlines()
    body = [line for line in row if line.startswith("| \N{PENCIL}")]
    assert body == [
        "| \N{PENCIL}\N{VARIATION SELECTOR-16} | a/acl/x\\|y\\`z | line1<br>line2 "
        "| &lt;b&gt;&amp;&lt;/b&gt; "
        "| \N{LARGE RED CIRCLE} **high** why \\| not \\`code\\`<br>next (drift: acl-changed) |"
    ]


def test_escape() -> None:
    assert markdown.escape("a|b") == "a\\|b"
    assert markdown.escape("`x`") == "\\`x\\`"
    assert markdown.escape("a\nb\r\nc") == "a<br>b<br>c"
    assert markdown.escape("https://****@h") == "https://\\*\\*\\*\\*@h"
    assert markdown.escape("\\|") == "\\\\\\|"
    assert markdown.escape("\x1b[1m") == "\\x1b\\[1m"


def test_noop_is_not_a_row() -> None:
    plan = Plan(
        (workspace("a", change("a/acl/users", Action.NOOP, "READ", "READ", "same")),), salt="s"
    )
    assert "a/acl/users" not in markdown.render(plan)


@given(plans())
def test_one_row_per_change_and_cells_never_split(plan: Plan) -> None:
    out = markdown.render(plan)
    rows = [
        line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| |")
    ]
    expected = sum(1 for ws in plan.workspaces for c in ws.changes if c.action is not Action.NOOP)
    assert len(rows) == expected
    for line in rows:
        unescaped_pipes = line.replace("\\\\", "").count("|") - line.replace("\\\\", "").count(
            "\\|"
        )
        assert unescaped_pipes == 6, line


@given(st.text())
def test_escape_leaves_no_raw_specials(text: str) -> None:
    out = markdown.escape(text)
    assert "\n" not in out and "\r" not in out and "<" not in out.replace("<br>", "")
    stripped = out.replace("\\\\", "")
    for special in "|`*_[]":
        assert stripped.count(special) == stripped.count("\\" + special)
