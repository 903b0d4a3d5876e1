"""The published JSON schemas, shipped as package data and read with ``importlib.resources``.

``reconciler/schemas/*.json`` is the copy the code reads, so an installed package finds it;
the top-level ``schemas/`` folder holds the same files for editors (``$schema`` comments in
desired-state files point there), and a test fails if the two differ.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

DESIRED_STATE = "desired-state.schema.json"
PLAN = "plan.schema.json"
DRIFT = "drift.schema.json"
VERIFY = "verify.schema.json"
NAMES = (DESIRED_STATE, PLAN, DRIFT, VERIFY)


def text(name: str) -> str:
    """The schema ``name`` (one of ``NAMES``) as published."""
    if name not in NAMES:
        raise ValueError(f"no schema named {name!r}")
    return (importlib.resources.files(__package__) / name).read_text(encoding="utf-8")


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The schema ``name`` parsed; callers must not mutate it."""
    document: dict[str, Any] = json.loads(text(name))
    return document
