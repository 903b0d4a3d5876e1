"""Run every benchmark module and write the results to BENCHMARKS.md.

``python -m bench`` runs all; ``python -m bench emulator config`` runs the modules whose name
contains one of the words. Numbers are measurements on the machine that ran them, with its
core count and Python version recorded in the header.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import pkgutil
import platform
import sys
from pathlib import Path

import bench


def main(argv: list[str]) -> int:
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    if argv:
        names = [n for n in names if any(word in n for word in argv)]
    sections = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(f"bench.{name}")
        sections.append(module.run().strip())
    header = (
        "# Benchmarks\n\n"
        "Written by `make bench` (`python -m bench`). Targets come from the issues; every\n"
        "number below was measured by the run recorded here, not typed by hand.\n\n"
        f"- run: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n"
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}\n"
    )
    path = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
    if argv and path.exists():
        # A partial run replaces only its own sections.
        kept = [s for s in path.read_text().split("\n## ")[1:]]
        titles = {s.splitlines()[0].lstrip("# ").strip() for s in sections}
        kept = ["## " + s.strip() for s in kept if s.splitlines()[0].strip() not in titles]
        sections = kept + sections
    path.write_text(header + "\n" + "\n\n".join(sections) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
