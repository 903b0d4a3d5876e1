"""What the drift renderers share: the headline, the order workspaces are shown in, and the
wording of counts, so text, Markdown and JUnit tell the same story."""

from __future__ import annotations

from reconciler.core.drift import DriftReport, WorkspaceDrift
from reconciler.render._common import orphaned_text, plural

NO_WORKSPACES = "No workspaces were checked."
IN_SYNC = "No drift: every workspace matches the desired state in Git."


def headline(report: DriftReport) -> str:
    """``3 differences (1 high severity) in 1 of 4 workspaces; 1 workspace could not be read``."""
    counts = report.counts()
    if not report.workspaces:
        return NO_WORKSPACES
    parts: list[str] = []
    if counts.items:
        high = f" ({counts.high} high severity)" if counts.high else ""
        parts.append(
            f"{plural(counts.items, 'difference')}{high} in {counts.drifted} of "
            f"{plural(counts.workspaces, 'workspace')}"
        )
    if counts.unreadable:
        verb = "was" if counts.unreadable == 1 else "were"
        parts.append(
            f"{plural(counts.unreadable, 'workspace')} could not be read (so {verb} not checked)"
        )
    if report.orphaned:
        parts.append(orphaned_text(report.orphaned))
    return "; ".join(parts) if parts else IN_SYNC


def workspace_summary(ws: WorkspaceDrift) -> str:
    """``3 differences, 1 high severity`` or ``could not be read`` or ``in sync``."""
    if not ws.readable:
        return "could not be read"
    if not ws.items:
        return "in sync"
    high = f", {ws.high} high severity" if ws.high else ""
    return f"{plural(len(ws.items), 'difference')}{high}"


def drifted_first(report: DriftReport) -> list[WorkspaceDrift]:
    """Drifted workspaces, those with the most high-severity items first (stable)."""
    drifted = [ws for ws in report.workspaces if ws.readable and ws.has_drift]
    return sorted(drifted, key=lambda ws: -ws.high)


def unreadable(report: DriftReport) -> list[WorkspaceDrift]:
    return [ws for ws in report.workspaces if not ws.readable]


def in_sync(report: DriftReport) -> list[WorkspaceDrift]:
    return [ws for ws in report.workspaces if ws.readable and not ws.has_drift]


MAX_NAMES = 10
"""How many workspaces a line names before the rest are counted."""


def names(workspaces: list[str]) -> str:
    shown = workspaces[:MAX_NAMES]
    more = len(workspaces) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def grouped_warnings(report: DriftReport) -> list[tuple[str, list[str]]]:
    """Each distinct warning once, with the workspaces it concerns (a missing ledger key
    concerns the whole fleet and is said once, not fifty times)."""
    found: dict[str, list[str]] = {}
    for ws in report.workspaces:
        for warning in ws.warnings:
            found.setdefault(warning, []).append(ws.workspace)
    return list(found.items())
