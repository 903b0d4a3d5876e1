"""Drift report renderers: small pure functions from a ``DriftReport`` to one format's text.

Like the plan renderers beside them (one module per format, registered in a table), and
sharing their hygiene: every text from the report is already redacted by the planner and is
escaped again for its format, so a principal or host holding control characters cannot
rewrite a terminal, break a Markdown table or make the JUnit XML invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from reconciler.core.drift import DriftReport
from reconciler.render.drift import json as json_doc
from reconciler.render.drift import junit, markdown, text
from reconciler.render.drift._common import headline


class DriftRenderer(Protocol):
    def __call__(self, report: DriftReport, *, color: bool = False) -> str: ...


RENDERERS: Mapping[str, DriftRenderer] = MappingProxyType(
    {
        "text": text.render,
        "json": json_doc.render,
        "markdown": markdown.render,
        "junit": junit.render,
    }
)

FORMATS: tuple[str, ...] = tuple(RENDERERS)
"""The format names, in the order ``pkgrepo drift --format`` lists them."""


def render(report: DriftReport, fmt: str, *, color: bool = False) -> str:
    """The report in format ``fmt`` (one of ``FORMATS``). ``color`` only affects ``text``."""
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown drift format {fmt!r}; expected one of {FORMATS}") from None
    return renderer(report, color=color)


__all__ = ["FORMATS", "RENDERERS", "DriftRenderer", "headline", "render"]
