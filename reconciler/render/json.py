"""The plan as a stable JSON document, for CI bots and plan files, and back again.

The document is described by ``schemas/plan.schema.json`` (format version 1), in the manner of
``terraform show -json``: fixed key order, ``indent=2``, a final newline, and only what the
plan already holds in redacted form. ``plan_from_document`` is the exact inverse of
``to_document``; it is what reads a plan file, so it trusts nothing: any document that is not
one ``to_document`` could have written is refused with ``PlanRefused`` naming the first
problem and its JSON path.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
import jsonschema.exceptions

from reconciler import schemas
from reconciler.core.errors import PlanRefused
from reconciler.core.model import Address, Kind, Thresholds, frozen_map
from reconciler.core.plan import (
    Action,
    Change,
    Drift,
    Plan,
    Safety,
    Severity,
    Unreadable,
    WorkspacePlan,
)
from reconciler.render._common import Summary

FORMAT_VERSION = "2"
DOCUMENT_KIND = "pkgrepo-plan"

_MAX_SHOWN = 120
"""Longest piece of the offending document quoted back in an error."""
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def render(plan: Plan, *, color: bool = False) -> str:
    """The document as text: ``indent=2``, fixed key order, ending with a newline.
    ``color`` is accepted for a uniform renderer signature and ignored."""
    del color
    return json.dumps(to_document(plan), indent=2) + "\n"


def to_document(plan: Plan) -> dict[str, Any]:
    """The plan as plain JSON data, keys in the documented order."""
    summary = Summary.of(plan)
    return {
        "format_version": FORMAT_VERSION,
        "kind": DOCUMENT_KIND,
        "salt": plan.salt,
        "has_changes": plan.has_changes,
        "complete": plan.complete,
        "summary": {
            "create": summary.create,
            "update": summary.update,
            "delete": summary.delete,
            "workspaces": summary.workspaces,
            "workspaces_changed": summary.workspaces_changed,
            "unreadable": summary.unreadable,
        },
        "safety": _safety_document(plan.safety()),
        "workspaces": [_workspace_document(ws) for ws in plan.workspaces],
        "unreadable": [
            {"workspace": u.workspace, "host": u.host, "error": u.error} for u in plan.unreadable
        ],
        "orphaned": list(plan.orphaned),
    }


def _safety_document(safety: Safety) -> dict[str, Any]:
    limits = safety.thresholds
    needs = []
    if safety.destructive:
        needs.append("--allow-destroy")
    if safety.force_reasons:
        needs.append("--force")
    rotation = safety.rotation
    return {
        "within_limits": safety.within_limits,
        "needs": needs,
        "reasons": [*safety.destructive, *safety.force_reasons],
        "managed_keys": safety.managed_keys,
        "keys_changed": safety.keys_changed,
        "scopes_deleted": list(safety.scopes_deleted),
        "rotation": (
            None if rotation is None else {"key": rotation.key, "workspaces": rotation.workspaces}
        ),
        "limits": {
            "max_update_share": limits.max_update_share,
            "max_delete_workspaces": limits.max_delete_workspaces,
            "max_rotation_share": limits.max_rotation_share,
        },
    }


def _workspace_document(ws: WorkspacePlan) -> dict[str, Any]:
    return {
        "workspace": ws.workspace,
        "host": ws.host,
        "live_digest": ws.live_digest,
        "desired_digests": dict(sorted(ws.desired_digests.items())),
        "warnings": list(ws.warnings),
        "destructive": ws.destructive,
        "managed_keys": ws.managed_keys,
        "changes": [_change_document(change) for change in ws.changes],
    }


def _change_document(change: Change) -> dict[str, Any]:
    return {
        "address": str(change.address),
        "kind": change.address.kind.value,
        "name": change.address.name,
        "actions": [change.action.value],
        "before": change.before,
        "after": change.after,
        "reason": change.reason,
        "drift": change.drift.value,
        "severity": change.severity.value,
    }


def load_schema() -> Mapping[str, Any]:
    """The plan document's JSON Schema (draft 2020-12), parsed once (``schemas.load``)."""
    return schemas.load(schemas.PLAN)


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def plan_from_document(doc: Mapping[str, Any]) -> Plan:
    """Rebuild the ``Plan`` a document was rendered from.

    Accepts anything ``json.loads`` can return; whatever is not a valid plan document
    (wrong shape, unknown field, inconsistent summary, an address that does not belong to
    its workspace) raises ``PlanRefused("plan file is not valid: <path>: <problem>")``.
    """
    if isinstance(doc, Mapping) and not isinstance(doc, dict):
        doc = dict(doc)
    if isinstance(doc, dict) and doc.get("format_version") == "1":
        raise _refused(
            "$.format_version",
            "written by an earlier pkgrepo (format 1); run `pkgrepo plan --out` again "
            "and review the new plan",
        )
    try:
        error = jsonschema.exceptions.best_match(_validator().iter_errors(doc))
    except RecursionError:
        raise _refused("$", "nested too deeply") from None
    if error is not None:
        raise _refused(_json_path(error.absolute_path), _shorten(error.message))
    limits = doc["safety"]["limits"]
    plan = Plan(
        workspaces=tuple(
            _workspace_from(ws, f"$.workspaces[{i}]") for i, ws in enumerate(doc["workspaces"])
        ),
        salt=doc["salt"],
        unreadable=tuple(
            Unreadable(u["workspace"], u["host"], u["error"]) for u in doc["unreadable"]
        ),
        orphaned=tuple(doc["orphaned"]),
        thresholds=Thresholds(
            max_update_share=float(limits["max_update_share"]),
            max_delete_workspaces=int(limits["max_delete_workspaces"]),
            max_rotation_share=float(limits["max_rotation_share"]),
        ),
    )
    _check_consistent(doc, plan)
    return plan


def _workspace_from(doc: Mapping[str, Any], path: str) -> WorkspacePlan:
    name = doc["workspace"]
    changes: list[Change] = []
    seen: set[Address] = set()
    for index, item in enumerate(doc["changes"]):
        change = _change_from(name, item, f"{path}.changes[{index}]")
        if change.address in seen:
            raise _refused(
                f"{path}.changes[{index}].address", f"{_quote(str(change.address))} appears twice"
            )
        seen.add(change.address)
        changes.append(change)
    return WorkspacePlan(
        workspace=name,
        host=doc["host"],
        changes=tuple(changes),
        live_digest=doc["live_digest"],
        desired_digests=frozen_map(doc["desired_digests"]),
        warnings=tuple(doc["warnings"]),
        destructive=doc["destructive"],
        managed_keys=doc["managed_keys"],
    )


def _change_from(workspace: str, doc: Mapping[str, Any], path: str) -> Change:
    address = Address(workspace, Kind(doc["kind"]), doc["name"])
    if doc["address"] != str(address):
        raise _refused(
            f"{path}.address",
            f"{_quote(doc['address'])} does not match workspace, kind and name "
            f"({_quote(str(address))})",
        )
    return Change(
        address=address,
        action=Action(doc["actions"][0]),
        before=doc["before"],
        after=doc["after"],
        reason=doc["reason"],
        drift=Drift(doc["drift"]),
        severity=Severity(doc["severity"]),
    )


def _check_consistent(doc: Mapping[str, Any], plan: Plan) -> None:
    names: set[str] = set()
    for index, ws in enumerate(plan.workspaces):
        if ws.workspace in names:
            raise _refused(
                f"$.workspaces[{index}].workspace", f"{_quote(ws.workspace)} appears twice"
            )
        names.add(ws.workspace)
    expected = to_document(plan)
    for key, value in expected["summary"].items():
        found = doc["summary"][key]
        if found != value:
            raise _refused(f"$.summary.{key}", f"is {found} but the changes make it {value}")
    for key in ("complete", "safety"):
        if doc[key] != expected[key]:
            raise _refused(f"$.{key}", "does not agree with the changes and limits it lists")
    if doc["has_changes"] != expected["has_changes"]:
        raise _refused(
            "$.has_changes",
            f"is {_dumps(doc['has_changes'])} but the changes "
            f"make it {_dumps(expected['has_changes'])}",
        )


def _refused(path: str, problem: str) -> PlanRefused:
    return PlanRefused(f"plan file is not valid: {path}: {problem}")


def _json_path(parts: Iterable[str | int]) -> str:
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.match(part):
            path += f".{part}"
        else:
            path += f"[{_quote(part)}]"
    return path


def _dumps(value: object) -> str:
    return json.dumps(value)


def _quote(text: str) -> str:
    return _shorten(json.dumps(text))


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
