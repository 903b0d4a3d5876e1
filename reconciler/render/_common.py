"""What every plan renderer shares: the summary counts, the wording, and text hygiene.

Plan texts are already redacted; they can still hold characters a terminal or a Markdown
viewer would act on (a principal named with an escape sequence, say), so renderers pass them
through ``clean`` first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import click

from reconciler.core.plan import Action, Change, Plan, WorkspacePlan

COMPUTE_REMINDER = "Changes reach compute after a notebook is reattached or a job is rerun."
NO_CHANGES = "No changes. Every workspace matches the desired state."
NO_WORKSPACES = "No changes. No workspaces were planned."
INCOMPLETE = "could not be read: its changes are unknown"


def orphaned_text(names: tuple[str, ...]) -> str:
    """What an orphaned workspace is and what to do about it, one line."""
    listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    one = len(names) == 1
    return (
        f"{plural(len(names), 'orphaned workspace')}: {listed}. pkgrepo managed "
        f"{'it' if one else 'them'} (the ledger directory or the fleet record names "
        f"{'it' if one else 'them'}) and neither the file nor the account's discovery names "
        f"{'it' if one else 'them'} now: nothing checks, rotates or deletes "
        f"{'its' if one else 'their'} secrets now, and nothing is deleted because of this. "
        "Declare one with `ensure: absent` to delete its scope, or remove it from the "
        "ledger directory or fleet record once it is handled."
    )


def incomplete_text(plan: Plan) -> str:
    """The headline of a plan that could not read every workspace (never "no changes")."""
    total = len(plan.workspaces) + len(plan.unreadable)
    return (
        f"Plan incomplete: {len(plan.unreadable)} of {plural(total, 'workspace')} "
        "could not be read, so what they would change is unknown."
    )


DESTROY_FLAG = "--allow-destroy"


@dataclass(frozen=True)
class Summary:
    create: int
    update: int
    delete: int
    workspaces: int
    workspaces_changed: int
    unreadable: int = 0

    @classmethod
    def of(cls, plan: Plan) -> Summary:
        counts = plan.counts()
        return cls(
            create=counts[Action.CREATE],
            update=counts[Action.UPDATE],
            delete=counts[Action.DELETE],
            workspaces=len(plan.workspaces),
            workspaces_changed=sum(1 for ws in plan.workspaces if ws.has_changes),
            unreadable=len(plan.unreadable),
        )

    def counts_text(self) -> str:
        """``2 to create, 1 to update, 0 to delete`` (Terraform's wording)."""
        return f"{self.create} to create, {self.update} to update, {self.delete} to delete"

    def across_text(self) -> str:
        """``across 2 workspaces`` or, when some are up to date, ``across 2 of 3 workspaces``."""
        if self.workspaces_changed == self.workspaces and not self.unreadable:
            return f"across {plural(self.workspaces, 'workspace')}"
        if self.unreadable:
            return f"across {self.workspaces_changed} of {self.workspaces} readable workspaces"
        return f"across {self.workspaces_changed} of {plural(self.workspaces, 'workspace')}"


def safety_text(plan: Plan) -> tuple[str, str]:
    """``("Safety: within limits", "3 of 9 managed keys change ...")``: the verdict apply
    will reach and the counts behind it, shown before anyone confirms."""
    safety = plan.safety()
    counts = safety.counts_text()
    return f"Safety: {safety.verdict_text()}", counts[:1].upper() + counts[1:]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def shown_changes(ws: WorkspacePlan) -> list[Change]:
    """The changes a person reads: no-ops are left out, as Terraform leaves them out."""
    return [c for c in ws.changes if c.action is not Action.NOOP]


MAX_WARNED = 10
"""How many workspaces a shared warning names before counting the rest."""


def shared_warnings(plan: Plan) -> tuple[list[tuple[str, list[str]]], Plan]:
    """Warnings that concern more than one workspace (a missing ledger key concerns the
    whole fleet), each once with the workspaces it concerns, and the plan without them, so
    a block is not opened per workspace to repeat the same line."""
    where: dict[str, list[str]] = {}
    for ws in plan.workspaces:
        for warning in dict.fromkeys(ws.warnings):
            where.setdefault(warning, []).append(ws.workspace)
    shared = {w: names for w, names in where.items() if len(names) > 1}
    if not shared:
        return [], plan
    stripped = tuple(
        replace(ws, warnings=tuple(w for w in ws.warnings if w not in shared))
        for ws in plan.workspaces
    )
    return list(shared.items()), replace(plan, workspaces=stripped)


def named(workspaces: list[str], *, total: int) -> str:
    """``every workspace`` or ``dev-a, dev-b and 3 more``."""
    if len(workspaces) == total:
        return f"all {total} workspaces"
    shown = workspaces[:MAX_WARNED]
    more = len(workspaces) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def needs_block(ws: WorkspacePlan) -> bool:
    """A workspace gets its own block when it changes or has something to say."""
    return ws.has_changes or bool(ws.warnings) or ws.destructive is not None


def up_to_date(workspaces: Iterable[WorkspacePlan]) -> list[WorkspacePlan]:
    return [ws for ws in workspaces if not needs_block(ws)]


_INVISIBLE = frozenset(
    "\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)
"""Line separators and bidirectional controls, which reorder or hide what a reader sees."""


def clean(text: str) -> str:
    """One display line: control characters (newlines, ESC, DEL, C1) become visible escapes."""
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or 0x7F <= code < 0xA0 or char in _INVISIBLE:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


class Painter:
    """Colours text for a terminal (``color``), or leaves it as it is."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(
        self, text: str, *, fg: str | None = None, bold: bool = False, dim: bool = False
    ) -> str:
        if not self.color:
            return text
        return click.style(text, fg=fg, bold=bold or None, dim=dim or None)
