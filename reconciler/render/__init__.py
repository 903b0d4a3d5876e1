"""Plan renderers: small pure functions from a ``Plan`` to the text of one format.

One module per format (``text``, ``json``, ``markdown``, ``junit``), each with
``render(plan, *, color=False) -> str``, registered in ``RENDERERS`` (octoDNS-style: adding a
format is adding a module and a line here). Renderers never print and never see a secret:
they show only the redacted ``before``/``after`` texts the plan holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from reconciler.core.plan import Plan
from reconciler.render import json as json_doc
from reconciler.render import junit, markdown, text
from reconciler.render.json import plan_from_document, to_document


class PlanRenderer(Protocol):
    def __call__(self, plan: Plan, *, color: bool = False) -> str: ...


RENDERERS: Mapping[str, PlanRenderer] = MappingProxyType(
    {
        "text": text.render,
        "json": json_doc.render,
        "markdown": markdown.render,
        "junit": junit.render,
    }
)

FORMATS: tuple[str, ...] = tuple(RENDERERS)
"""The format names, in the order ``--format`` lists them."""


def render(plan: Plan, fmt: str, *, color: bool = False) -> str:
    """The plan in format ``fmt`` (one of ``FORMATS``). ``color`` only affects ``text``."""
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown plan format {fmt!r}; expected one of {FORMATS}") from None
    return renderer(plan, color=color)


__all__ = [
    "FORMATS",
    "RENDERERS",
    "PlanRenderer",
    "plan_from_document",
    "render",
    "to_document",
]
