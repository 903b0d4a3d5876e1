"""The JSON plan document: stable shape, valid against its schema, an exact inverse that
refuses anything malformed with ``PlanRefused`` and never another exception."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from reconciler.core.errors import PlanRefused
from reconciler.core.model import Ledger as LedgerState
from reconciler.core.model import LiveState, SecretValue, WorkspaceSpec, frozen_map
from reconciler.core.plan import Plan, make_plan
from reconciler.render import json as json_doc
from reconciler.render.json import load_schema, plan_from_document, to_document
from tests.render.strategies import json_values, plans, small_plan, up_to_date_plan

VALIDATOR = jsonschema.Draft202012Validator(load_schema())


def _doc(plan: Plan) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json_doc.render(plan))
    return loaded


def _refusal(doc: Any) -> str:
    with pytest.raises(PlanRefused) as caught:
        plan_from_document(doc)
    return str(caught.value)


# --- the document ----------------------------------------------------------------------


def test_small_plan_document() -> None:
    doc = _doc(small_plan())
    assert list(doc) == [
        "format_version",
        "kind",
        "salt",
        "has_changes",
        "complete",
        "summary",
        "safety",
        "workspaces",
        "unreadable",
        "orphaned",
    ]
    assert doc["format_version"] == "2" and doc["kind"] == "pkgrepo-plan"
    assert doc["complete"] is True and doc["unreadable"] == []
    assert doc["safety"]["within_limits"] is True and doc["safety"]["keys_changed"] == 1
    assert doc["has_changes"] is True
    assert doc["summary"] == {
        "create": 1,
        "update": 1,
        "delete": 1,
        "workspaces": 3,
        "workspaces_changed": 1,
        "unreadable": 0,
    }
    prod = doc["workspaces"][0]
    assert list(prod) == [
        "workspace",
        "host",
        "live_digest",
        "desired_digests",
        "warnings",
        "destructive",
        "managed_keys",
        "changes",
    ]
    assert prod["changes"][1] == {
        "address": "prod-eu/secret/pip-index-url",
        "kind": "secret",
        "name": "pip-index-url",
        "actions": ["update"],
        "before": "https://****@old.example.com/simple",
        "after": "https://****@new.example.com/simple",
        "reason": "modified outside pkgrepo at 2024-05-01 10:00:00 UTC",
        "drift": "modified-outside",
        "severity": "high",
    }
    assert prod["changes"][0]["actions"] == ["create"] and prod["changes"][0]["before"] is None
    assert prod["changes"][2]["actions"] == ["delete"] and prod["changes"][2]["after"] is None
    assert [w["workspace"] for w in doc["workspaces"]] == ["prod-eu", "dev", "staging"]


def test_text_form_is_stable() -> None:
    out = json_doc.render(small_plan())
    assert out.endswith("}\n")
    assert out.startswith('{\n  "format_version": "2",\n  "kind": "pkgrepo-plan",\n')
    assert out == json_doc.render(small_plan())


def test_no_changes_document() -> None:
    doc = _doc(up_to_date_plan("a", "b"))
    assert doc["has_changes"] is False
    assert doc["summary"] == {
        "create": 0,
        "update": 0,
        "delete": 0,
        "workspaces": 2,
        "workspaces_changed": 0,
        "unreadable": 0,
    }


def test_empty_plan_round_trips() -> None:
    plan = Plan((), salt="")
    assert plan_from_document(_doc(plan)) == plan


def test_real_plan_validates_and_round_trips() -> None:
    spec = WorkspaceSpec(
        name="prod-eu",
        host="https://adb-1.azuredatabricks.net",
        secrets=frozen_map({"pip-index-url": SecretValue("https://u:tok@repo.example/simple")}),
    )
    plan = Plan(
        (make_plan(spec, LiveState(scope_exists=False), LedgerState(), salt="s"),), salt="s"
    )
    out = json_doc.render(plan)
    assert "tok" not in out
    VALIDATOR.validate(json.loads(out))
    assert plan_from_document(json.loads(out)) == plan


@given(plans())
def test_documents_validate_against_the_schema(plan: Plan) -> None:
    VALIDATOR.validate(_doc(plan))


@given(plans())
def test_round_trip(plan: Plan) -> None:
    assert plan_from_document(json.loads(json_doc.render(plan))) == plan
    assert json_doc.render(plan_from_document(to_document(plan))) == json_doc.render(plan)


# --- the schema ------------------------------------------------------------------------


def test_schema_is_valid_draft_2020_12() -> None:
    schema = dict(load_schema())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _subschemas(node: Any, path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _subschemas(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _subschemas(value, f"{path}[{index}]")


def test_every_property_is_described_and_objects_are_closed() -> None:
    for path, node in _subschemas(load_schema()):
        for name, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}.properties.{name} has no description"
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} is open"


# --- refusing what is not a plan -------------------------------------------------------


@pytest.mark.parametrize("value", [None, [], "plan", 3, True, {}, {"format_version": "1"}])
def test_garbage_is_refused(value: Any) -> None:
    assert _refusal(value).startswith("plan file is not valid: $")


def _valid() -> dict[str, Any]:
    return _doc(small_plan())


def test_unknown_version_names_the_field() -> None:
    doc = _valid()
    doc["format_version"] = "3"
    assert _refusal(doc) == "plan file is not valid: $.format_version: '2' was expected"
    doc["format_version"] = "1"
    assert _refusal(doc) == (
        "plan file is not valid: $.format_version: written by an earlier pkgrepo (format 1); "
        "run `pkgrepo plan --out` again and review the new plan"
    )


def test_unknown_field_is_refused() -> None:
    doc = _valid()
    doc["workspaces"][0]["changes"][0]["extra"] = 1
    message = _refusal(doc)
    assert message.startswith("plan file is not valid: $.workspaces[0].changes[0]: ")
    assert "'extra' was unexpected" in message


def test_missing_field_is_refused() -> None:
    doc = _valid()
    del doc["workspaces"][0]["live_digest"]
    assert _refusal(doc) == (
        "plan file is not valid: $.workspaces[0]: 'live_digest' is a required property"
    )


def test_unknown_action_names_the_path() -> None:
    doc = _valid()
    doc["workspaces"][0]["changes"][2]["actions"] = ["replace"]
    assert _refusal(doc).startswith(
        "plan file is not valid: $.workspaces[0].changes[2].actions[0]: 'replace' is not one of"
    )


def test_create_with_a_before_is_refused() -> None:
    doc = _valid()
    doc["workspaces"][0]["changes"][0]["before"] = "x"
    assert _refusal(doc) == (
        "plan file is not valid: $.workspaces[0].changes[0].before: 'x' is not of type 'null'"
    )


def test_address_from_another_workspace_is_refused() -> None:
    doc = _valid()
    doc["workspaces"][0]["changes"][0]["address"] = "dev/secret/pip-extra-index-urls"
    assert _refusal(doc) == (
        "plan file is not valid: $.workspaces[0].changes[0].address: "
        '"dev/secret/pip-extra-index-urls" does not match workspace, kind and name '
        '("prod-eu/secret/pip-extra-index-urls")'
    )


def test_duplicate_address_is_refused() -> None:
    doc = _valid()
    changes = doc["workspaces"][0]["changes"]
    changes.append(copy.deepcopy(changes[0]))
    doc["summary"]["create"] += 1
    assert _refusal(doc) == (
        "plan file is not valid: $.workspaces[0].changes[3].address: "
        '"prod-eu/secret/pip-extra-index-urls" appears twice'
    )


def test_duplicate_workspace_is_refused() -> None:
    doc = _valid()
    doc["workspaces"][2]["workspace"] = "dev"
    assert _refusal(doc) == 'plan file is not valid: $.workspaces[2].workspace: "dev" appears twice'


def test_scope_with_a_name_is_refused() -> None:
    doc = _valid()
    change = doc["workspaces"][0]["changes"][0]
    change.update(kind="scope", address="prod-eu/scope")
    assert _refusal(doc).startswith(
        "plan file is not valid: $.workspaces[0].changes[0].name: '' was expected"
    )


def test_summary_must_agree() -> None:
    doc = _valid()
    doc["summary"]["delete"] = 0
    assert _refusal(doc) == (
        "plan file is not valid: $.summary.delete: is 0 but the changes make it 1"
    )


def test_has_changes_must_agree() -> None:
    doc = _doc(up_to_date_plan("a"))
    doc["has_changes"] = True
    assert _refusal(doc) == (
        "plan file is not valid: $.has_changes: is true but the changes make it false"
    )


def test_workspace_name_with_a_slash_is_refused() -> None:
    doc = _doc(up_to_date_plan("a"))
    doc["workspaces"][0]["workspace"] = "a/b"
    assert _refusal(doc).startswith("plan file is not valid: $.workspaces[0].workspace: 'a/b'")


def test_odd_keys_are_quoted_in_the_path() -> None:
    doc = _valid()
    doc["workspaces"][0]["desired_digests"]["pip cert"] = 5
    assert _refusal(doc) == (
        'plan file is not valid: $.workspaces[0].desired_digests["pip cert"]: '
        "5 is not of type 'string'"
    )


def test_long_values_are_not_echoed_in_full() -> None:
    doc = _valid()
    doc["salt"] = ["x" * 10_000]
    message = _refusal(doc)
    assert len(message) < 200 and message.endswith("...")


def test_deep_nesting_is_refused() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    doc = _valid()
    doc["workspaces"][0]["warnings"] = deep
    assert _refusal(doc).startswith("plan file is not valid: $")


def test_a_read_only_mapping_is_accepted() -> None:
    plan = small_plan()
    assert plan_from_document(frozen_map(_doc(plan))) == plan


@given(json_values)
@example(float("nan"))
@example({"format_version": "1", "kind": "pkgrepo-plan"})
def test_random_json_is_refused(value: Any) -> None:
    with pytest.raises(PlanRefused, match=r"^plan file is not valid: \$"):
        plan_from_document(value)


def _locations(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _locations(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _locations(value, (*path, index))


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = _doc(draw(plans()))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(_locations(doc))))
        if not where:
            continue
        parent: Any = doc
        for step in where[:-1]:
            parent = parent[step]
        last = where[-1]
        how = draw(st.sampled_from(["replace", "delete", "add", "append"]))
        if how == "replace":
            parent[last] = draw(json_values)
        elif how == "delete":
            del parent[last]
        elif how == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        elif isinstance(parent[last], list):
            parent[last].append(draw(json_values))
    return doc


@given(mutated_documents())
def test_mutated_documents_are_refused_or_exact(doc: dict[str, Any]) -> None:
    try:
        plan = plan_from_document(doc)
    except PlanRefused as refused:
        assert str(refused).startswith("plan file is not valid: $")
        event("refused")
        return
    event("accepted")
    # Whatever the reader accepts is exactly a document the writer produces.
    assert to_document(plan) == doc
    VALIDATOR.validate(doc)
