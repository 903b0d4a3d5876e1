"""One fleet run in a process of its own, for benchmarks: ``python -m bench.fleet_child FILE
plan|apply``. Prints one JSON line: wall and CPU seconds of the run (after imports), the
seconds discovery took, peak RSS, and the results by status. A process per run gives each
run its own peak memory and CPU, as a CI job would see them."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

from reconciler.commands import context
from reconciler.commands.context import open_session
from reconciler.core.results import Status
from reconciler.engine.apply import ApplyOptions


def main(argv: list[str]) -> int:
    path, mode = Path(argv[0]), argv[1]
    timed: dict[str, float] = {}
    discover = context.discover

    def timed_discover(*args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        try:
            return discover(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            timed["discovery"] = time.perf_counter() - started

    context.discover = timed_discover  # type: ignore[assignment]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    session = open_session(path)
    fleet_plan = session.fleet.plan(session.specs, salt="bench-discovery")
    results = fleet_plan.results
    if mode == "apply":
        results = session.fleet.apply(session.specs, fleet_plan, options=ApplyOptions())
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    failed = [r for r in results if r.status is Status.FAILED]
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": usage.ru_utime + usage.ru_stime - cpu_before,
                "discovery": timed.get("discovery", 0.0),
                "max_rss_kib": usage.ru_maxrss,
                "results": Counter(r.status.value for r in results),
                "failed": [f"{r.workspace}: {r.error}" for r in failed[:3]],
                "workspaces": len(results),
            }
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
