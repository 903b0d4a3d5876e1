"""The one thread pool pkgrepo runs independent work in: workspaces of a fleet (plan,
apply, drift, export, force-unlock) and the package-index probes of ``verify``. The
adapter's I/O pool, for the concurrent reads of one workspace, is the only other."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_parallel(items: Sequence[T], one: Callable[[T], R], parallelism: int) -> list[R]:
    """``one`` over ``items``, at most ``parallelism`` at a time; results in input order."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(items)))) as pool:
        return list(pool.map(one, items))
