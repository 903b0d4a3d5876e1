"""Benchmarks for ``make bench``. Each ``bench/bench_*.py`` module exposes ``run() -> str``
returning a Markdown section; ``python -m bench`` runs them all and writes BENCHMARKS.md."""
