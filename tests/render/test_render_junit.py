"""The plan as JUnit XML: a workspace that cannot be applied as it stands is a failing test,
the others pass with their changes; the verify results are a suite of their own."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

from hypothesis import given

from reconciler.core.model import Thresholds
from reconciler.core.plan import Action, Plan, Unreadable
from reconciler.core.verify import CombinationResult, Outcome, Report, UrlVerdict
from reconciler.render import junit
from tests.render.strategies import NEW_URL, change, plans, small_plan, workspace


def cases(xml: str) -> dict[tuple[str, str], ET.Element]:
    root = ET.fromstring(xml)
    return {
        (suite.get("name", ""), case.get("name", "")): case
        for suite in root.iter("testsuite")
        for case in suite.iter("testcase")
    }


def failure(case: ET.Element) -> ET.Element | None:
    return case.find("failure")


def test_converged_and_changing_workspaces_pass_with_what_changes() -> None:
    xml = junit.render(small_plan())
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("4", "0")
    found = cases(xml)
    prod = found[("pkgrepo plan", "prod-eu")]
    assert failure(prod) is None
    out = prod.findtext("system-out") or ""
    assert "~ prod-eu/secret/pip-index-url: https://****@old.example.com/simple -> " in out
    assert NEW_URL in out
    assert "no changes" in (found[("pkgrepo plan", "dev")].findtext("system-out") or "")
    safety = found[("pkgrepo plan", "safety limits")]
    assert failure(safety) is None
    assert "Safety: within limits" in (safety.findtext("system-out") or "")


def test_unreadable_destructive_and_past_the_limits_fail() -> None:
    plan = small_plan()
    doomed = workspace(
        "old",
        change("old/scope", Action.DELETE, None, None, "ensure: absent"),
        destructive="deletes the scope",
        managed_keys=1,
    )
    plan = replace(
        plan,
        workspaces=(*plan.workspaces, doomed),
        unreadable=(Unreadable("gone", "https://gone.example.com", "HTTP 403: token refused"),),
        thresholds=Thresholds(max_update_share=0.01, max_delete_workspaces=0),
    )
    xml = junit.render(plan)
    root = ET.fromstring(xml)
    found = cases(xml)
    gone = failure(found[("pkgrepo plan", "gone")])
    assert gone is not None and gone.get("type") == "unreadable"
    assert "HTTP 403: token refused" in (gone.get("message") or "")
    old = failure(found[("pkgrepo plan", "old")])
    assert old is not None and old.get("type") == "needs-allow-destroy"
    assert "deletes the scope" in (old.get("message") or "")
    safety = failure(found[("pkgrepo plan", "safety limits")])
    assert safety is not None and safety.get("type") == "safety-limits"
    assert "--force" in (safety.get("message") or "")
    assert failure(found[("pkgrepo plan", "prod-eu")]) is None
    assert (root.get("tests"), root.get("failures")) == ("6", "3")


def test_a_failed_index_check_fails_each_workspace_it_concerns() -> None:
    refused = UrlVerdict(
        "index_url",
        "https://****@pypi.corp.example/simple/",
        Outcome.FAILED,
        "credentials refused (HTTP 401)",
        "credentials",
    )
    report = Report(
        results=(
            CombinationResult(
                1, "https://****@pypi.corp.example/simple/", ("prod-eu",), (refused,)
            ),
        ),
        probes=1,
    )
    xml = junit.render(small_plan(), verification=report)
    root = ET.fromstring(xml)
    found = cases(xml)
    prod = failure(found[("pkgrepo plan", "prod-eu")])
    assert prod is not None and prod.get("type") == "credentials"
    assert "credentials refused (HTTP 401)" in (prod.get("message") or "")
    assert failure(found[("pkgrepo plan", "dev")]) is None
    url_case = failure(
        found[("pkgrepo verify", "#1 index_url https://****@pypi.corp.example/simple/")]
    )
    assert url_case is not None
    assert [s.get("name") for s in root.iter("testsuite")] == ["pkgrepo plan", "pkgrepo verify"]
    assert (root.get("tests"), root.get("failures")) == ("5", "2")


def test_control_characters_cannot_break_the_document() -> None:
    plan = small_plan()
    hostile = workspace(
        "evil\x1b[31m\x00]]></failure>",
        change("evil/secret/pip-cert", Action.CREATE, None, "\ud800\x07<x/>", "new key"),
        warnings=("line\nbreak\x0c",),
    )
    xml = junit.render(replace(plan, workspaces=(*plan.workspaces, hostile)))
    root = ET.fromstring(xml)
    text = ET.tostring(root, encoding="unicode")
    assert "\x1b" not in text and "\x00" not in text
    assert any(c.get("name") == "evil\\x1b[31m\\x00]]></failure>" for c in root.iter("testcase"))


@given(plans())
def test_any_plan_renders_as_xml_that_parses(plan: Plan) -> None:
    root = ET.fromstring(junit.render(plan))
    suite = root.find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", "0")) == len(plan.workspaces) + 1


def test_a_workspace_named_safety_is_not_the_safety_verdict() -> None:
    plan = small_plan()
    named = workspace("safety", destructive="deletes the scope")
    xml = junit.render(replace(plan, workspaces=(*plan.workspaces, named)))
    found = cases(xml)
    workspace_case = failure(found[("pkgrepo plan", "safety")])
    assert workspace_case is not None and workspace_case.get("type") == "needs-allow-destroy"
    verdict = found[("pkgrepo plan", "safety limits")]
    assert verdict.get("classname") == "pkgrepo.plan.safety"
    assert len(found) == len(plan.workspaces) + 2
