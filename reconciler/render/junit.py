"""The plan as JUnit XML, so a CI server shows a plan that cannot be applied as failing tests.

One ``<testcase>`` per selected workspace in the ``pkgrepo plan`` suite: a workspace that
could not be read, whose plan needs ``--allow-destroy``, or whose package index check failed
carries a ``<failure>``; one that is up to date or has changes passes, its changes (as the
text plan shows them, already redacted) in ``<system-out>``. A ``safety limits`` test case
(a name no workspace can have: workspace names hold no spaces) fails
when the plan is past the safety limits (apply would refuse it without ``--force``). The
verify results follow as the ``pkgrepo verify`` suite, the one ``pkgrepo verify --format
junit`` writes.

Pure. Every text goes through ``safe`` (display-safe, and always valid XML 1.0).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from reconciler.core.plan import Plan, Unreadable, WorkspacePlan
from reconciler.core.verify import Report, UrlVerdict, Waiver
from reconciler.render._common import (
    DESTROY_FLAG,
    INCOMPLETE,
    Summary,
    orphaned_text,
    safety_text,
    shown_changes,
)
from reconciler.render.drift.junit import safe
from reconciler.render.text import change_line
from reconciler.render.verify import junit_suite, waiver_lines

SUITE = "pkgrepo plan"
CLASSNAME = "pkgrepo.plan"
SAFETY_CASE = "safety limits"
_TOTALS = ("tests", "failures", "errors", "skipped")


def render(plan: Plan, *, color: bool = False, verification: Report | None = None) -> str:
    """The plan (and, when given, its verify results) as a JUnit XML document."""
    del color
    return document([plan_suite(plan, verification=verification)], verification)


def document(suites: list[ET.Element], verification: Report | None = None) -> str:
    """``<testsuites>`` holding ``suites`` and, when it probed or skipped anything, the
    verify suite; the totals are the sums of the suites'."""
    root = ET.Element("testsuites", {"name": SUITE})
    chosen = list(suites)
    if verification is not None and (verification.results or verification.skipped):
        chosen.append(junit_suite(verification))
    for name in _TOTALS:
        root.set(name, str(sum(int(s.get(name, "0")) for s in chosen)))
    root.extend(chosen)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def plan_suite(plan: Plan, *, name: str = SUITE, verification: Report | None = None) -> ET.Element:
    """One ``<testsuite>`` for ``plan``: a test case per workspace, and one for safety."""
    suite = ET.Element("testsuite", {"name": safe(name)})
    failures = 0
    failing = verification.failures_by_workspace() if verification else {}
    waived = verification.waivers_by_workspace() if verification else {}
    for ws in plan.workspaces:
        failures += _workspace(
            suite, ws, failing.get(ws.workspace, ()), waived.get(ws.workspace, ())
        )
    for failed in plan.unreadable:
        failures += _unreadable(suite, failed)
    failures += _safety(suite, plan)
    cases = len(plan.workspaces) + len(plan.unreadable) + 1
    for key, value in zip(_TOTALS, (cases, failures, 0, 0), strict=True):
        suite.set(key, str(value))
    if plan.orphaned:
        out = ET.SubElement(suite, "system-out")
        out.text = safe(f"warning: {orphaned_text(plan.orphaned)}")
    return suite


def _case(suite: ET.Element, name: str, classname: str = CLASSNAME) -> ET.Element:
    return ET.SubElement(
        suite, "testcase", {"classname": classname, "name": safe(name), "time": "0"}
    )


def _workspace(
    suite: ET.Element,
    ws: WorkspacePlan,
    index_failures: tuple[UrlVerdict, ...],
    waivers: tuple[Waiver, ...],
) -> int:
    case = _case(suite, ws.workspace)
    lines = [safe(f"{ws.workspace} ({ws.host})")]
    changes = shown_changes(ws)
    lines.extend(safe(f"  {change_line(change)}") for change in changes)
    if not changes:
        lines.append("  no changes")
    lines.extend(safe(f"  warning: {w}") for w in ws.warnings)
    lines.extend(safe(f"  package index check {line}") for line in waiver_lines(waivers))
    problems: list[tuple[str, str]] = []
    for url in index_failures:
        problems.append(
            (
                url.check or "verify",
                f"package index check failed: {url.role} {url.url}: {url.reason}",
            )
        )
    if ws.destructive is not None:
        problems.append(("needs-allow-destroy", f"needs {DESTROY_FLAG}: {ws.destructive}"))
    if not problems:
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(lines)
        return 0
    kind, message = problems[0]
    failure = ET.SubElement(case, "failure", {"type": kind, "message": safe(message)})
    failure.text = "\n".join([*lines, *(safe(f"  ! {text}") for _, text in problems)])
    return 1


def _unreadable(suite: ET.Element, failed: Unreadable) -> int:
    case = _case(suite, failed.workspace)
    failure = ET.SubElement(
        case,
        "failure",
        {"type": "unreadable", "message": safe(f"{INCOMPLETE}: {failed.error}")},
    )
    failure.text = safe(f"{failed.workspace} ({failed.host}): {failed.error}")
    return 1


def _safety(suite: ET.Element, plan: Plan) -> int:
    """Past the limits, apply refuses without ``--force``: a failure. Destructive plans
    already fail their own workspace's case."""
    case = _case(suite, SAFETY_CASE, f"{CLASSNAME}.safety")
    verdict, counts = safety_text(plan)
    summary = Summary.of(plan)
    text = safe(f"{verdict}. {counts}. Plan: {summary.counts_text()} {summary.across_text()}.")
    reasons = plan.safety().force_reasons
    if not reasons:
        out = ET.SubElement(case, "system-out")
        out.text = text
        return 0
    failure = ET.SubElement(
        case,
        "failure",
        {"type": "safety-limits", "message": safe("needs --force: " + "; ".join(reasons))},
    )
    failure.text = text
    return 1
