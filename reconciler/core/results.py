"""What running a fleet produces: each workspace's result, and a fleet's plans with what
each was planned from. Pure data (no I/O), so the pure parts (drift, reports, renderers) can
read results without importing the engine that makes them."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.core.model import Ledger, LiveState
from reconciler.core.plan import WorkspacePlan


@dataclass(frozen=True)
class Observation:
    """What a workspace's plan was made from: its live state and its ledger."""

    live: LiveState
    ledger: Ledger


class Status(enum.Enum):
    UP_TO_DATE = "up-to-date"
    CHANGES = "changes"
    APPLIED = "applied"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """Stopped by a cancel part way: some changes applied, the rest not."""
    SKIPPED = "skipped"


@dataclass(frozen=True)
class WorkspaceResult:
    workspace: str
    wave: int
    status: Status
    plan: WorkspacePlan | None = None
    error: str | None = None
    seconds: float = 0.0
    applied: int = 0
    not_applied: tuple[str, ...] = ()
    """Addresses of planned changes that were not applied (a cancel or a lost lease)."""


@dataclass
class FleetPlan:
    """Plans of the selected workspaces, with what each was planned from (for apply)."""

    salt: str
    results: list[WorkspaceResult]
    observations: dict[str, Observation] = field(default_factory=dict)

    @property
    def plans(self) -> list[WorkspacePlan]:
        return [r.plan for r in self.results if r.plan is not None]

    @property
    def failed(self) -> list[WorkspaceResult]:
        return [r for r in self.results if r.status is Status.FAILED]


Listener = Callable[[str, WorkspaceResult], None]
"""Called as each workspace finishes (``"plan"`` or ``"apply"``, its result)."""
