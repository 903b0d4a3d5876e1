"""Progress of a fleet run: a live display on a terminal, one plain line per workspace
otherwise (CI logs). Fed by the fleet's listener callback, from worker threads."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from reconciler.core import report
from reconciler.core.results import Status, WorkspaceResult
from reconciler.terminal import output


class FleetProgress:
    """``with FleetProgress(total) as progress: fleet.listener = progress``."""

    def __init__(self, total: int, *, live: bool | None = None, quiet: bool = False) -> None:
        self.total = total
        self.quiet = quiet
        self.live = sys.stderr.isatty() if live is None else live
        self._counts: dict[str, Counter[Status]] = {}
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> FleetProgress:
        if self.live and not self.quiet and self.total > 1:
            self._progress = Progress(
                TextColumn("{task.description:<6}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, phase: str, result: WorkspaceResult) -> None:
        with self._lock:
            counts = self._counts.setdefault(phase, Counter())
            counts[result.status] += 1
            if self._progress is None:
                if not self.quiet:
                    output.info(report.line(phase, result))
                return
            task = self._tasks.get(phase)
            if task is None:
                task = self._progress.add_task(phase, total=self.total, detail="")
                self._tasks[phase] = task
            failed = counts[Status.FAILED]
            detail = f"wave {result.wave}" + (f", {failed} failed" if failed else "")
            self._progress.update(task, advance=1, detail=detail)
            if result.status is Status.FAILED:
                self._progress.console.print(output.scrub(report.line(phase, result)))
