"""How a fleet run's results look: one line per workspace as it finishes, a summary table
at the end, and the same as one JSON document (pure: results in, text out)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from reconciler.core.results import Status, WorkspaceResult

_MARK = {
    Status.UP_TO_DATE: "ok",
    Status.CHANGES: "changes",
    Status.APPLIED: "applied",
    Status.FAILED: "FAILED",
    Status.INTERRUPTED: "INTERRUPTED",
    Status.SKIPPED: "skipped",
}


_APPLYING = (Status.APPLIED, Status.INTERRUPTED)
"""Results whose change count is what was applied, not what was planned."""


def change_count(result: WorkspaceResult) -> int:
    if result.plan is None:
        return 0
    return sum(1 for c in result.plan.changes if c.action.value != "no-op")


def line(phase: str, result: WorkspaceResult) -> str:
    """One plain line for a finished workspace (logs and non-terminal output)."""
    text = f"{phase} {result.workspace}: {_MARK[result.status]}"
    if result.status in (Status.APPLIED, Status.INTERRUPTED):
        text += f" ({result.applied} change(s))"
    elif result.status is Status.CHANGES:
        text += f" ({change_count(result)} change(s))"
    if result.status is Status.FAILED:
        # Why it failed is said once, in the plan or the results table at the end.
        text += " (why: below)"
    elif result.error:
        text += f": {result.error}"
    return f"{text} [{result.seconds:.1f}s]"


def summary(results: Sequence[WorkspaceResult], *, said: Collection[str] = ()) -> str:
    """A table: workspace, wave, result, changes, duration; then totals."""
    rows = [("WORKSPACE", "WAVE", "RESULT", "CHANGES", "SECONDS")]
    for r in results:
        changes = r.applied if r.status in _APPLYING else change_count(r)
        rows.append((r.workspace, str(r.wave), _MARK[r.status], str(changes), f"{r.seconds:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]
    counts = Counter(r.status for r in results)
    totals = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    lines.append(f"{len(results)} workspace(s): {totals or 'none selected'}")
    errors = [r for r in results if r.error]
    for r in errors:
        # A workspace whose error the plan above already named is not told twice.
        why = "could not be read (see the plan above)" if r.workspace in said else r.error
        lines.append(f"  {r.workspace}: {why}")
    return "\n".join(lines)


def document(results: Sequence[WorkspaceResult]) -> dict[str, Any]:
    counts = Counter(r.status.value for r in results)
    return {
        "workspaces": [
            {
                "workspace": r.workspace,
                "wave": r.wave,
                "result": r.status.value,
                "changes": r.applied if r.status in _APPLYING else change_count(r),
                "not_applied": list(r.not_applied),
                "seconds": round(r.seconds, 3),
                "error": r.error,
            }
            for r in results
        ],
        "totals": dict(sorted(counts.items())),
    }
