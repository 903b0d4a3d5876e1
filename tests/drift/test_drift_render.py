"""The four drift formats: what they show, in which order, and that nothing from a
workspace can break them (control characters, Markdown and XML markup)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import jsonschema
import pytest
from hypothesis import given

from reconciler import schemas
from reconciler.core import drift
from reconciler.core.plan import Action, Drift, Plan, Severity
from reconciler.render.drift import FORMATS, render
from reconciler.render.drift.json import to_document
from tests.render.strategies import change, plans, small_plan, workspace

SCHEMA: dict[str, Any] = schemas.load(schemas.DRIFT)
EVIL = "evil\x1b[31m|<b>`x`</b>&\n# \x00\ufffe\u202e"


def report_with_failure() -> drift.DriftReport:
    failed = drift.Unreadable("broken", "https://broken.example", "authentication failed")
    return drift.from_plan(small_plan(), [failed])


def evil_report() -> drift.DriftReport:
    ws = workspace(
        "ws1",
        change(
            f"ws1/acl/{EVIL}",
            Action.DELETE,
            "MANAGE",
            None,
            f"granted {EVIL}",
            Drift.ACL_ADDED,
            Severity.HIGH,
        ),
        host=f"https://h/{EVIL}",
        warnings=(f"warn {EVIL}",),
    )
    failed = drift.Unreadable("ws2", EVIL, f"boom {EVIL}")
    return drift.from_plan(Plan((ws,), salt="s"), [failed])


def test_formats_are_registered() -> None:
    assert FORMATS == ("text", "json", "markdown", "junit")
    with pytest.raises(ValueError, match="unknown drift format"):
        render(report_with_failure(), "yaml")


def test_text_groups_by_workspace_high_first() -> None:
    out = render(report_with_failure(), "text")
    lines = out.splitlines()
    assert lines[0] == "workspace broken (https://broken.example): could not be read"
    assert lines[1] == "  error: authentication failed"
    prod = lines.index(
        "workspace prod-eu (https://adb-1234567890123456.7.azuredatabricks.net):"
        " 3 differences, 2 high severity"
    )
    # What happened (not what apply would do), who did it, and the two ways to settle it.
    assert lines[prod + 1] == (
        "  [HIGH] prod-eu/acl/bob@example.com: granted outside pkgrepo (acl-added)"
    )
    assert lines[prod + 2].strip() == "live: WRITE  desired: (none)"
    assert lines[prod + 3].strip() == "by: outside pkgrepo"
    assert lines[prod + 4].strip() == (
        "settle: apply removes the grant; or declare `bob@example.com: WRITE` under acls to keep it"
    )
    assert lines[prod + 5].startswith("  [HIGH] prod-eu/secret/pip-index-url: modified outside")
    assert lines[prod + 9].startswith("  [low]  prod-eu/secret/pip-extra-index-urls: new key")
    assert "2 workspaces are in sync: dev, staging" in lines
    assert lines[-1] == (
        "Drift: 3 differences (2 high severity) in 1 of 4 workspaces; "
        "1 workspace could not be read (so was not checked)."
    )


def test_text_colour_only_when_asked() -> None:
    assert "\x1b[" not in render(report_with_failure(), "text")
    assert "\x1b[31m" in render(report_with_failure(), "text", color=True)


def test_markdown_counts_then_errors_then_tables_high_first() -> None:
    out = render(report_with_failure(), "markdown")
    assert out.startswith(
        "## pkgrepo drift: drift\n\n3 differences (2 high severity) in 1 of "
        "4 workspaces; 1 workspace could not be read (so was not checked)"
    )
    assert "| 4 | 2 | 1 | 1 | 3 | 2 |" in out
    assert out.index("### Could not be read") < out.index("### prod-eu")
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("| \N{LARGE RED CIRCLE}") or line.startswith("| low")
    ]
    assert [r.split(" | ")[1] for r in rows] == [
        "prod-eu/acl/bob@example.com",
        "prod-eu/secret/pip-index-url",
        "prod-eu/secret/pip-extra-index-urls",
    ]
    assert "<details><summary>2 workspaces are in sync</summary>" in out


def test_markdown_in_sync() -> None:
    out = render(drift.from_plan(Plan((workspace("a"),), salt="s")), "markdown")
    assert out.startswith("## pkgrepo drift: in sync\n\nNo drift")
    assert "| 1 | 1 | 0 | 0 | 0 | 0 |" in out


def test_junit_counts_and_elements() -> None:
    root = ET.fromstring(render(report_with_failure(), "junit"))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"prod-eu", "dev", "staging", "broken"}
    failure = cases["prod-eu"].find("failure")
    assert failure is not None
    assert failure.get("message") == "3 differences, 2 high severity"
    assert "[HIGH] prod-eu/acl/bob@example.com: granted outside pkgrepo (acl-added)" in (
        failure.text or ""
    )
    assert "settle: apply removes the grant; or declare" in (failure.text or "")
    error = cases["broken"].find("error")
    assert error is not None and "authentication failed" in (error.get("message") or "")
    assert list(cases["dev"]) == []


def test_json_document() -> None:
    document = to_document(report_with_failure())
    jsonschema.validate(document, SCHEMA)
    assert document["exit_code"] == 1
    assert document["summary"]["by_kind"]["modified-outside"] == 1
    assert list(document["summary"]["by_kind"]) == [kind.value for kind in Drift]
    assert json.loads(render(report_with_failure(), "json")) == document


@pytest.mark.parametrize("fmt", ["text", "markdown", "junit"])
def test_hostile_text_is_escaped(fmt: str) -> None:
    out = render(evil_report(), fmt)
    for raw in ("\x1b", "\x00", "\u202e"):
        assert raw not in out
    if fmt == "markdown":
        assert "<b>" not in out and "`x`" not in out
        table = [line for line in out.splitlines() if "ws1/acl" in line]
        assert len(table) == 1 and table[0].count(" | ") == 7  # the pipe did not add a cell
    if fmt == "junit":
        assert "\ufffe" not in out  # not a character XML 1.0 may hold
        ET.fromstring(out)
    if fmt == "text":
        assert all(not line.startswith("# ") for line in out.splitlines())


@given(plans())
def test_every_report_renders_valid_junit_and_json(plan: Plan) -> None:
    report = drift.from_plan(plan, [drift.Unreadable("zz", "h\x07", "e\x00")])
    root = ET.fromstring(render(report, "junit"))
    assert len(list(root.iter("testcase"))) == len(report.workspaces)
    assert len(list(root.iter("failure"))) == report.counts().drifted
    assert len(list(root.iter("error"))) == 1
    jsonschema.validate(json.loads(render(report, "json")), SCHEMA)
    for fmt in ("text", "markdown"):
        assert "\x1b" not in render(report, fmt)
