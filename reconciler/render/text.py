"""The plan as a person reads it in a terminal, in Terraform's manner.

One block per workspace that changes (or has a warning), one line per change::

    workspace prod-eu (https://adb-1.7.azuredatabricks.net)
      + prod-eu/secret/pip-cert: CN=Corp Root CA, expires 2030-01-01, sha256 ab:cd  # new key
      ~ prod-eu/acl/users: MANAGE -> READ  # set to MANAGE outside pkgrepo (acl-changed) [high]

then one line for the workspaces that are up to date, and Terraform's summary line. Colour
(``click.style``) only when asked for; the caller decides whether the stream is a terminal.
"""

from __future__ import annotations

from reconciler.core.model import Kind
from reconciler.core.plan import Action, Change, Drift, Plan, Severity, Unreadable, WorkspacePlan
from reconciler.render._common import (
    COMPUTE_REMINDER,
    DESTROY_FLAG,
    INCOMPLETE,
    NO_CHANGES,
    NO_WORKSPACES,
    Painter,
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

MAX_NAMES = 10
"""How many up-to-date workspaces are named before the rest are counted."""

_ACTION_COLOR = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.DELETE: "red"}
_NONE = "(none)"


def render(plan: Plan, *, color: bool = False) -> str:
    """The whole plan as text, ending with a newline."""
    paint = Painter(color)
    lines: list[str] = []
    shared, plan = shared_warnings(plan)
    for warning, where in shared:
        who = named(where, total=len(plan.workspaces))
        lines.append(paint(f"! warning ({clean(who)}): {clean(warning)}", fg="yellow"))
    if shared:
        lines.append("")
    for ws in plan.workspaces:
        if needs_block(ws):
            lines.extend(_workspace(ws, paint))
            lines.append("")
    for failed in plan.unreadable:
        lines.extend(_unreadable(failed, paint))
        lines.append("")
    if plan.orphaned:
        lines.append(paint(f"! {clean(orphaned_text(plan.orphaned))}", fg="yellow", bold=True))
        lines.append("")
    current = up_to_date(plan.workspaces)
    if current:
        total = len(plan.workspaces) + len(plan.unreadable)
        lines.append(_up_to_date_line(current, total=total))
        lines.append("")
    lines.extend(_summary(plan, paint))
    return "\n".join(lines) + "\n"


def change_line(change: Change, *, color: bool = False) -> str:
    """One change on one line (no indentation), as the plan shows it."""
    return _change(change, Painter(color))


def _workspace(ws: WorkspacePlan, paint: Painter) -> list[str]:
    header = f"workspace {clean(ws.workspace)} ({clean(ws.host)})"
    lines = [paint(header, bold=True)]
    changes = shown_changes(ws)
    lines.extend("  " + _change(change, paint) for change in changes)
    if not changes:
        lines.append("  no changes")
    if ws.destructive is not None:
        note = f"! needs {DESTROY_FLAG}: {clean(ws.destructive)}"
        lines.append("  " + paint(note, fg="red", bold=True))
    lines.extend("  " + paint(f"! warning: {clean(w)}", fg="yellow") for w in ws.warnings)
    return lines


def _unreadable(failed: Unreadable, paint: Painter) -> list[str]:
    header = f"workspace {clean(failed.workspace)} ({clean(failed.host)})"
    note = f"! {INCOMPLETE}: {clean(failed.error)}"
    return [paint(header, bold=True), "  " + paint(note, fg="red", bold=True)]


def _change(change: Change, paint: Painter) -> str:
    symbol = change.action.symbol
    head = f"{symbol} {clean(str(change.address))}"
    if change.action in _ACTION_COLOR:
        head = paint(head, fg=_ACTION_COLOR[change.action])
    value = _value(change)
    note = clean(change.reason)
    if change.drift is not Drift.NEW:
        note = f"{note} ({change.drift.value})"
    line = f"{head}{': ' + value if value else ''}  " + paint(f"# {note}", dim=True)
    if change.severity is Severity.HIGH:
        line += " " + paint("[high]", fg="red", bold=True)
    return line


def _value(change: Change) -> str:
    before = _NONE if change.before is None else clean(change.before)
    after = _NONE if change.after is None else clean(change.after)
    if change.address.kind is Kind.SCOPE and change.action is not Action.UPDATE:
        return ""  # "+ prod-eu/scope" says it all
    if change.action is Action.CREATE:
        return after
    if change.action is Action.DELETE:
        return before
    if change.action is Action.NOOP and change.before == change.after:
        return after
    return f"{before} -> {after}"


def _up_to_date_line(current: list[WorkspacePlan], *, total: int) -> str:
    names = [clean(ws.workspace) for ws in current[:MAX_NAMES]]
    more = len(current) - len(names)
    listed = ", ".join(names) + (f" and {more} more" if more else "")
    if len(current) == total and total > 1:
        return f"All {total} workspaces up to date: {listed}"
    verb = "is" if len(current) == 1 else "are"
    return f"{plural(len(current), 'workspace')} {verb} up to date: {listed}"


def _summary(plan: Plan, paint: Painter) -> list[str]:
    if plan.unreadable:
        lines = [paint(incomplete_text(plan), fg="red", bold=True)]
        if plan.has_changes:
            summary = Summary.of(plan)
            lines.append(f"Readable workspaces: {summary.counts_text()} {summary.across_text()}.")
            lines.append(_safety(plan, paint))
            lines.append(COMPUTE_REMINDER)
        return lines
    if not plan.workspaces:
        return [paint(NO_WORKSPACES, fg="green", bold=True)]
    if not plan.has_changes:
        return [paint(NO_CHANGES, fg="green", bold=True)]
    summary = Summary.of(plan)
    line = f"Plan: {summary.counts_text()} {summary.across_text()}."
    return [paint(line, bold=True), _safety(plan, paint), COMPUTE_REMINDER]


def _safety(plan: Plan, paint: Painter) -> str:
    ok = plan.safety().within_limits
    verdict, counts = safety_text(plan)
    return paint(clean(f"{verdict}. {counts}."), fg="green" if ok else "red", bold=not ok)
