"""The drift report as JUnit XML, so any CI server shows drift as failing tests.

One ``<testcase>`` per workspace: a drifted workspace carries a ``<failure>`` listing its
differences, one that could not be read an ``<error>``. The XML is built with ElementTree,
which escapes markup; characters XML 1.0 cannot hold at all (control characters) are turned
into visible escapes first, so the document always parses.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from reconciler.core.drift import DriftReport, WorkspaceDrift
from reconciler.core.plan import Severity
from reconciler.render._common import clean, orphaned_text
from reconciler.render.drift._common import grouped_warnings, workspace_summary
from reconciler.render.drift.text import detail_lines, item_line

SUITE = "pkgrepo drift"
CLASSNAME = "pkgrepo.drift"


def render(report: DriftReport, *, color: bool = False) -> str:
    """The whole report as a JUnit XML document, ending with a newline."""
    del color
    counts = report.counts()
    totals = {
        "tests": str(counts.workspaces + len(report.orphaned)),
        "failures": str(
            sum(1 for ws in report.workspaces if ws.failing(report.fail_on)) + len(report.orphaned)
        ),
        "errors": str(counts.unreadable),
        "skipped": "0",
        "time": "0",
    }
    root = ET.Element("testsuites", {"name": SUITE, **totals})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE, **totals})
    for ws in report.workspaces:
        _testcase(suite, ws, report.fail_on)
    for name in report.orphaned:
        case = ET.SubElement(
            suite, "testcase", {"classname": CLASSNAME, "name": safe(name), "time": "0"}
        )
        failure = ET.SubElement(case, "failure", {"type": "orphaned", "message": "orphaned"})
        failure.text = safe(orphaned_text((name,)))
    warnings = grouped_warnings(report)
    if warnings:
        out = ET.SubElement(suite, "system-out")
        out.text = "\n".join(safe(f"warning: {w} ({', '.join(where)})") for w, where in warnings)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _testcase(suite: ET.Element, ws: WorkspaceDrift, fail_on: Severity) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        {
            "classname": CLASSNAME,
            "name": safe(ws.workspace),
            "time": "0",
        },
    )
    if not ws.readable:
        error = ET.SubElement(
            case,
            "error",
            {
                "type": "unreadable",
                "message": safe(f"could not be read: {ws.error}"),
            },
        )
        error.text = safe(f"{ws.workspace} ({ws.host}): {ws.error}")
        return
    if not ws.has_drift:
        return
    lines = [safe(f"{ws.workspace} ({ws.host})")]
    for item in ws.ordered_items():
        lines.append(safe(item_line(item)))
        lines.extend(safe(f"    {line}") for line in detail_lines(item))
    if not ws.failing(fail_on):
        # Below --fail-on: reported, and the test passes.
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(lines)
        return
    failure = ET.SubElement(
        case,
        "failure",
        {
            "type": "drift",
            "message": safe(workspace_summary(ws)),
        },
    )
    failure.text = "\n".join(lines)


def _allowed(char: str) -> bool:
    code = ord(char)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def safe(text: str) -> str:
    """One line XML 1.0 can hold: control characters as visible escapes (``clean``), and
    the few code points ``clean`` leaves that XML still forbids (surrogates, U+FFFE)."""
    return "".join(c if _allowed(c) else f"\\u{ord(c):04x}" for c in clean(text))
