"""What every plan renderer shares: the summary counts, the wording, and text hygiene.

Plan texts are already redacted; they can still hold characters a terminal or a Markdown
viewer would act on (a principal named with an escape sequence, say), so renderers pass them
through ``clean`` first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.plan import Action, Change, Plan, WorkspacePlan

COMPUTE_REMINDER = "Changes reach compute after a notebook is reattached or a job is rerun."
NO_CHANGES = "No changes. Every workspace matches the desired state."
NO_WORKSPACES = "No changes. No workspaces were planned."
DESTROY_FLAG = "--allow-destroy"


@dataclass(frozen=True)
class Summary:
    create: int
    update: int
    delete: int
    workspaces: int
    workspaces_changed: int

    @classmethod
    def of(cls, plan: Plan) -> Summary:
        counts = plan.counts()
        return cls(
            create=counts[Action.CREATE],
            update=counts[Action.UPDATE],
            delete=counts[Action.DELETE],
            workspaces=len(plan.workspaces),
            workspaces_changed=sum(1 for ws in plan.workspaces if ws.has_changes),
        )

    def counts_text(self) -> str:
        """``2 to create, 1 to update, 0 to delete`` (Terraform's wording)."""
        return f"{self.create} to create, {self.update} to update, {self.delete} to delete"

    def across_text(self) -> str:
        """``across 2 workspaces`` or, when some are up to date, ``across 2 of 3 workspaces``."""
        if self.workspaces_changed == self.workspaces:
            return f"across {plural(self.workspaces, 'workspace')}"
        return f"across {self.workspaces_changed} of {plural(self.workspaces, 'workspace')}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def shown_changes(ws: WorkspacePlan) -> list[Change]:
    """The changes a person reads: no-ops are left out, as Terraform leaves them out."""
    return [c for c in ws.changes if c.action is not Action.NOOP]


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
