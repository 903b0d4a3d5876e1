"""How long ``pkgrepo --help`` and ``pkgrepo --version`` take: what a user waits for at a
prompt and what a pre-commit hook pays per run. Target (issue 9): ``--help`` under 0.3 s.

Each is run as a new process, as a user runs it; best and median of 7 rounds.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

ROUNDS = 7
TARGET_SECONDS = 0.3


def _time(args: list[str]) -> list[float]:
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "reconciler", *args], check=True, capture_output=True)
        rounds.append(time.perf_counter() - start)
    return rounds


def run() -> str:
    rows = []
    for args in (["--help"], ["--version"], ["validate", "--help"]):
        rounds = _time(args)
        best, median = min(rounds), statistics.median(rounds)
        verdict = "meets it" if median < TARGET_SECONDS else "misses it"
        target = f"{TARGET_SECONDS} s ({verdict})" if args == ["--help"] else ""
        rows.append(f"| `pkgrepo {' '.join(args)}` | {best:.3f} s | {median:.3f} s | {target} |")
    return (
        "## CLI start-up\n\n"
        "A new process per run (`python -m reconciler ...`), best and median of "
        f"{ROUNDS}. `--help` lists commands without importing them or `databricks-sdk`.\n\n"
        "| command | best | median | target |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
