"""The renderer registry: every format, one entry point, no printing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from reconciler.core.plan import Plan
from reconciler.render import (
    FORMATS,
    RENDERERS,
    junit,
    markdown,
    plan_from_document,
    render,
    text,
)
from reconciler.render import json as json_doc
from tests.render.strategies import plans, small_plan


def test_formats() -> None:
    assert FORMATS == ("text", "json", "markdown", "junit")
    assert set(RENDERERS) == set(FORMATS)


def test_dispatch() -> None:
    plan = small_plan()
    assert render(plan, "text") == text.render(plan)
    assert render(plan, "text", color=True) == text.render(plan, color=True)
    assert render(plan, "json") == json_doc.render(plan)
    assert render(plan, "markdown") == markdown.render(plan)
    assert render(plan, "junit") == junit.render(plan)


def test_colour_only_affects_text() -> None:
    plan = small_plan()
    assert render(plan, "json", color=True) == render(plan, "json")
    assert render(plan, "markdown", color=True) == render(plan, "markdown")
    assert render(plan, "junit", color=True) == render(plan, "junit")


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown plan format 'html'"):
        render(small_plan(), "html")


def test_json_is_the_document() -> None:
    plan = small_plan()
    assert plan_from_document(json.loads(render(plan, "json"))) == plan


@pytest.mark.parametrize("fmt", FORMATS)
def test_renderers_return_and_never_print(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = render(small_plan(), fmt, color=True)
    assert out.endswith("\n")
    assert capsys.readouterr() == ("", "")


@given(plans())
def test_every_format_renders_any_plan_deterministically(plan: Plan) -> None:
    for fmt in FORMATS:
        assert render(plan, fmt) == render(plan, fmt)
