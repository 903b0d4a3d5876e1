"""The drift report as GitHub-flavoured Markdown, sized for a CI job summary.

A title with the headline, a counts table, the workspaces that could not be read, then a
table per drifted workspace (the most high-severity items first, high rows flagged), the
workspaces in sync folded into ``<details>``. Every text is escaped with the plan renderer's
``escape``, so nothing from a workspace can break a table or inject HTML.
"""

from __future__ import annotations

from reconciler.core.drift import DriftItem, DriftReport, WorkspaceDrift
from reconciler.render.drift._common import (
    drifted_first,
    grouped_warnings,
    headline,
    in_sync,
    names,
    unreadable,
    workspace_summary,
)
from reconciler.render.markdown import HIGH_MARK, escape

LOW_MARK = "low"
TABLE_HEADER = (
    "| severity | address | what happened | kind | by | live | desired | settle |\n"
    "|---|---|---|---|---|---|---|---|"
)
COUNTS_HEADER = (
    "| workspaces | in sync | drifted | unreadable | differences | high severity |\n"
    "|---|---|---|---|---|---|"
)


def render(report: DriftReport, *, color: bool = False) -> str:
    """The whole report as Markdown, ending with a newline. ``color`` is ignored."""
    del color
    counts = report.counts()
    state = "drift" if report.has_drift else "errors" if report.has_errors else "in sync"
    blocks = [f"## pkgrepo drift: {state}\n\n{escape(headline(report))}"]
    if report.workspaces:
        cells = [
            counts.workspaces,
            counts.in_sync,
            counts.drifted,
            counts.unreadable,
            counts.items,
            counts.high,
        ]
        blocks.append(COUNTS_HEADER + "\n| " + " | ".join(map(str, cells)) + " |")
    failed = unreadable(report)
    if failed:
        rows = [
            f"- **{escape(ws.workspace)}** ({escape(ws.host)}): {escape(ws.error or '')}"
            for ws in failed
        ]
        blocks.append("### Could not be read\n\n" + "\n".join(rows))
    blocks.extend(_workspace(ws) for ws in drifted_first(report))
    warnings = grouped_warnings(report)
    if warnings:
        rows = [f"> - {escape(w)} ({escape(names(where))})" for w, where in warnings]
        blocks.append("> **Warnings**\n>\n" + "\n".join(rows))
    current = in_sync(report)
    if current:
        items = "\n".join(f"- {escape(ws.workspace)} ({escape(ws.host)})" for ws in current)
        verb = "is" if len(current) == 1 else "are"
        count = f"{len(current)} workspace{'s' if len(current) != 1 else ''}"
        blocks.append(
            f"<details><summary>{count} {verb} in sync</summary>\n\n{items}\n\n</details>"
        )
    return "\n\n".join(blocks) + "\n"


def _workspace(ws: WorkspaceDrift) -> str:
    title = f"### {escape(ws.workspace)} ({escape(ws.host)}): {workspace_summary(ws)}"
    rows = [_row(item) for item in ws.ordered_items()]
    return "\n\n".join([title, "\n".join([TABLE_HEADER, *rows])])


def _row(item: DriftItem) -> str:
    cells = [
        HIGH_MARK if item.high else LOW_MARK,
        escape(item.address),
        escape(item.message),
        f"`{item.kind.value}`",
        escape(item.attributed_to),
        "" if item.live is None else escape(item.live),
        "" if item.desired is None else escape(item.desired),
        f"{escape(item.settle_apply)}; or {escape(item.settle_git)}",
    ]
    return "| " + " | ".join(cells) + " |"
