"""The drift report as text for a terminal or a cron mail: grouped by workspace, high
severity first and flagged, the unreadable workspaces with their error, one summary line.

Every text from the report passes through ``clean`` (control characters become visible
escapes). Colour only when asked for; the command decides whether stdout is a terminal.
"""

from __future__ import annotations

from reconciler.core.drift import DriftItem, DriftReport, WorkspaceDrift
from reconciler.render._common import Painter, clean, plural
from reconciler.render.drift._common import (
    drifted_first,
    grouped_warnings,
    headline,
    in_sync,
    names,
    unreadable,
    workspace_summary,
)

HIGH_MARK = "[HIGH]"
LOW_MARK = "[low] "
_NONE = "(none)"


def render(report: DriftReport, *, color: bool = False) -> str:
    """The whole report as text, ending with a newline."""
    paint = Painter(color)
    lines: list[str] = []
    for ws in unreadable(report):
        lines.append(
            paint(
                f"workspace {clean(ws.workspace)} ({clean(ws.host)}): could not be read",
                fg="red",
                bold=True,
            )
        )
        lines.append(f"  error: {clean(ws.error or '')}")
        lines.append("")
    for ws in drifted_first(report):
        lines.extend(_workspace(ws, paint))
        lines.append("")
    current = [clean(ws.workspace) for ws in in_sync(report)]
    if current:
        verb = "is" if len(current) == 1 else "are"
        lines.append(f"{plural(len(current), 'workspace')} {verb} in sync: {names(current)}")
        lines.append("")
    for warning, where in grouped_warnings(report):
        who = names([clean(name) for name in where])
        lines.append(paint(f"! warning: {clean(warning)} ({who})", fg="yellow"))
    if grouped_warnings(report):
        lines.append("")
    summary = headline(report)
    if report.has_drift or report.has_errors:
        lines.append(
            paint(
                f"Drift: {summary}.",
                bold=True,
                fg="red" if report.counts().high or report.has_errors else "yellow",
            )
        )
    else:
        lines.append(paint(summary, fg="green", bold=True))
    return "\n".join(lines) + "\n"


def _workspace(ws: WorkspaceDrift, paint: Painter) -> list[str]:
    header = f"workspace {clean(ws.workspace)} ({clean(ws.host)}): {workspace_summary(ws)}"
    lines = [paint(header, bold=True)]
    for item in ws.ordered_items():
        lines.extend(_item(item, paint))
    return lines


def item_line(item: DriftItem) -> str:
    """One item's first line, without colour: ``[HIGH] ws/acl/x: what happened (kind)``."""
    return _item(item, Painter(False))[0].strip()


def detail_lines(item: DriftItem) -> list[str]:
    """What is live and what Git declares, who it is attributed to, and the two ways to
    settle it (shared with the JUnit report: one vocabulary)."""
    live = _NONE if item.live is None else clean(item.live)
    desired = _NONE if item.desired is None else clean(item.desired)
    return [
        f"live: {live}  desired: {desired}",
        f"by: {clean(item.attributed_to)}",
        f"settle: {clean(item.settle_apply)}; or {clean(item.settle_git)}",
    ]


def _item(item: DriftItem, paint: Painter) -> list[str]:
    mark = paint(HIGH_MARK, fg="red", bold=True) if item.high else paint(LOW_MARK, dim=True)
    head = f"{mark} {clean(item.address)}: {clean(item.message)} ({item.kind.value})"
    return ["  " + head] + ["         " + paint(line, dim=True) for line in detail_lines(item)]
