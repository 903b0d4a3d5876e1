"""The plan as GitHub-flavoured Markdown, for a pull-request comment or a CI job summary.

A title with the counts, a table per workspace that changes, warnings as a quoted list, the
workspaces that are up to date folded into ``<details>``, and the compute reminder last.
Every text from the plan is escaped, so a value cannot break a table, open a code span or
inject HTML into the comment.
"""

from __future__ import annotations

from reconciler.core.plan import Action, Change, Drift, Plan, Severity, Unreadable, WorkspacePlan
from reconciler.render._common import (
    COMPUTE_REMINDER,
    DESTROY_FLAG,
    INCOMPLETE,
    NO_CHANGES,
    NO_WORKSPACES,
    Summary,
    clean,
    incomplete_text,
    named,
    needs_block,
    orphaned_text,
    plural,
    safety_text,
    shared_warnings,
    shown_changes,
    up_to_date,
)

ACTION_MARK = {
    Action.CREATE: "\N{HEAVY PLUS SIGN}",
    Action.UPDATE: "\N{PENCIL}\N{VARIATION SELECTOR-16}",
    Action.DELETE: "\N{HEAVY MINUS SIGN}",
    Action.NOOP: "",
}
HIGH_MARK = "\N{LARGE RED CIRCLE} **high**"
TABLE_HEADER = "| | address | before | after | reason |\n|---|---|---|---|---|"

_ESCAPES = {
    "\\": "\\\\",
    "`": "\\`",
    "|": "\\|",
    "*": "\\*",
    "_": "\\_",
    "~": "\\~",
    "[": "\\[",
    "]": "\\]",
    "#": "\\#",
    "<": "&lt;",
    ">": "&gt;",
    "&": "&amp;",
}


def render(plan: Plan, *, color: bool = False) -> str:
    """The whole plan as Markdown, ending with a newline. ``color`` is ignored."""
    del color
    blocks = [_title(plan)]
    shared, plan = shared_warnings(plan)
    if shared:
        total = len(plan.workspaces)
        rows = [f"> - {escape(w)} ({escape(named(where, total=total))})" for w, where in shared]
        blocks.append("\n".join(["> **Warnings**", *rows]))
    blocks.extend(_unreadable(failed) for failed in plan.unreadable)
    blocks.extend(_workspace(ws) for ws in plan.workspaces if needs_block(ws))
    if plan.orphaned:
        blocks.append(
            f"> \N{WARNING SIGN}\N{VARIATION SELECTOR-16} {escape(orphaned_text(plan.orphaned))}"
        )
    current = up_to_date(plan.workspaces)
    if current:
        blocks.append(_up_to_date(current))
    if plan.has_changes:
        blocks.append(f"_{COMPUTE_REMINDER}_")
    return "\n\n".join(blocks) + "\n"


def escape(text: str) -> str:
    """Inline Markdown text that shows as itself, on one line (newlines become ``<br>``)."""
    out = "".join(_ESCAPES.get(char, char) for char in text)
    lines = out.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "<br>".join(clean(line) for line in lines)


def _title(plan: Plan) -> str:
    if plan.unreadable:
        title = f"## \N{CROSS MARK} pkgrepo plan: incomplete\n\n**{incomplete_text(plan)}**"
        if plan.has_changes:
            summary = Summary.of(plan)
            title += f"\n\nReadable workspaces: {summary.counts_text()} {summary.across_text()}."
            title += f"\n\n{_safety(plan)}"
        return title
    if not plan.workspaces:
        return f"## pkgrepo plan: no changes\n\n{NO_WORKSPACES}"
    if not plan.has_changes:
        return f"## pkgrepo plan: no changes\n\n{NO_CHANGES}"
    summary = Summary.of(plan)
    title = f"## pkgrepo plan: {summary.counts_text()} {summary.across_text()}"
    return f"{title}\n\n{_safety(plan)}"


def _safety(plan: Plan) -> str:
    mark = (
        "\N{WHITE HEAVY CHECK MARK}"
        if plan.safety().within_limits
        else "\N{WARNING SIGN}\N{VARIATION SELECTOR-16}"
    )
    verdict, counts = safety_text(plan)
    return f"{mark} **{escape(verdict)}.** {escape(counts)}."


def _unreadable(failed: Unreadable) -> str:
    header = f"### \N{CROSS MARK} {escape(failed.workspace)} ({escape(failed.host)})"
    return f"{header}\n\n**{INCOMPLETE}**: {escape(failed.error)}"


def _workspace(ws: WorkspacePlan) -> str:
    parts = [f"### {escape(ws.workspace)} ({escape(ws.host)})"]
    changes = shown_changes(ws)
    if changes:
        parts.append("\n".join([TABLE_HEADER, *(_row(change) for change in changes)]))
    else:
        parts.append("No changes.")
    notes: list[str] = []
    if ws.destructive is not None:
        notes.append(f"> **Needs `{DESTROY_FLAG}`**: {escape(ws.destructive)}")
    if ws.warnings:
        if notes:
            notes.append(">")
        notes.append("> **Warnings**")
        notes.extend(f"> - {escape(warning)}" for warning in ws.warnings)
    if notes:
        parts.append("\n".join(notes))
    return "\n\n".join(parts)


def _row(change: Change) -> str:
    reason = escape(change.reason)
    if change.drift is not Drift.NEW:
        reason = f"{reason} (drift: {escape(change.drift.value)})"
    if change.severity is Severity.HIGH:
        reason = f"{HIGH_MARK} {reason}"
    cells = [
        ACTION_MARK[change.action],
        escape(str(change.address)),
        "" if change.before is None else escape(change.before),
        "" if change.after is None else escape(change.after),
        reason,
    ]
    return "| " + " | ".join(cells) + " |"


def _up_to_date(current: list[WorkspacePlan]) -> str:
    items = "\n".join(f"- {escape(ws.workspace)} ({escape(ws.host)})" for ws in current)
    verb = "is" if len(current) == 1 else "are"
    summary = f"{plural(len(current), 'workspace')} {verb} up to date"
    return f"<details><summary>{summary}</summary>\n\n{items}\n\n</details>"
