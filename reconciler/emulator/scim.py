"""Workspace SCIM: who a principal is and which groups it belongs to (``admins`` among them).

Routes (``api.ROUTES``):

- ``GET /api/2.0/preview/scim/v2/Me``: the caller (``WorkspaceClient().current_user.me()``).
- ``GET /api/2.0/preview/scim/v2/Users``, ``.../ServicePrincipals`` and ``.../Groups``: list,
  with ``filter``, ``attributes``, ``startIndex`` and ``count`` (``w.users.list``,
  ``w.service_principals.list``, ``w.groups.list``).

Shapes follow the SCIM API reference (docs.databricks.com/api/workspace/users/list: a
``ListResponse`` of ``totalResults``, ``startIndex``, ``itemsPerPage`` and ``Resources``; a
member of a group appears in its ``groups`` as a ``ComplexValue`` of ``display``, ``value``
and ``$ref``, as ``databricks.sdk.service.iam.ComplexValue`` reads it). Never kinder than the
service:

- Only ``<attribute> eq "<JSON string>"`` filters on the name attribute (``userName`` /
  ``applicationId``) and ``id`` are understood (RFC 7644 section 3.4.2.2: the comparison value
  is a JSON string); anything else is refused with 400 rather than guessed at.
- A caller who is not a workspace admin sees each principal's ``id`` and ``displayName``
  only ("Non-admin users: Retrieve a list of all users in the Databricks workspace, returning
  user display name and object ID only", the SCIM API's documented split as the DatabricksPS
  module quotes it), so a plain user cannot read who is an admin.
- Workspace admins are the members of ``admins`` ("Workspace admins have MANAGE permissions
  on all secret scopes in the workspace", docs.databricks.com .../secret-acl.html): the same
  membership ``backend._require`` honours.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.emulator import errors
from reconciler.emulator.identity import Principal, stable_id

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
SERVICE_PRINCIPAL_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MAX_COUNT = 10000
"""The SDK asks for 10000 a page (``UsersAPI.list``); more is cut to this."""

_FILTER = re.compile(r'^\s*([A-Za-z][A-Za-z0-9_.]*)\s+(?i:eq)\s+("(?:[^"\\]|\\.)*")\s*$', re.S)


def group_values(groups: Iterable[str]) -> list[dict[str, str]]:
    return [
        {
            "display": g,
            "value": stable_id(f"group:{g}"),
            "$ref": f"Groups/{stable_id(f'group:{g}')}",
        }
        for g in sorted(groups)
    ]


def resource(principal: Principal, *, full: bool = True) -> dict[str, Any]:
    """A principal as SCIM shows it; ``full=False``: what a non-admin caller sees."""
    schema = USER_SCHEMA if principal.kind == "user" else SERVICE_PRINCIPAL_SCHEMA
    answer: dict[str, Any] = {
        "schemas": [schema],
        "id": principal.id,
        "displayName": principal.display_name or principal.name,
    }
    if not full:
        return answer
    answer["active"] = True
    if principal.kind == "user":
        answer["userName"] = principal.name
        answer["emails"] = [{"value": principal.name, "type": "work", "primary": True}]
    else:
        answer["applicationId"] = principal.name
    answer["groups"] = group_values(principal.groups)
    return answer


def me(caller: Principal) -> dict[str, Any]:
    """``Me`` answers as a User, whoever calls: a service principal's ``userName`` is its
    application id (what ACLs name it by)."""
    answer = resource(caller)
    answer["schemas"] = [USER_SCHEMA]
    answer["userName"] = caller.name
    return answer


def list_principals(
    caller: Principal,
    principals: Iterable[Principal],
    query: Mapping[str, str],
    *,
    name_attribute: str,
) -> dict[str, Any]:
    """One page of ``principals`` matching the query's filter."""
    found = list(principals)
    wanted = query.get("filter")
    if wanted:
        attribute, value = _parse_filter(wanted, allowed=(name_attribute, "id"))
        if attribute == "id":
            found = [p for p in found if p.id == value]
        else:
            # userName/applicationId compare case-insensitively, as SCIM's caseExact=false
            # string attributes do (RFC 7643 section 2.4; userName is caseExact false).
            found = [p for p in found if p.name.casefold() == value.casefold()]
    start = _positive(query, "startIndex", 1)
    count = min(_positive(query, "count", 100), MAX_COUNT)
    page = found[start - 1 : start - 1 + count]
    full = caller.is_admin
    shown = [_only(resource(p, full=full), query.get("attributes")) for p in page]
    answer: dict[str, Any] = {
        "schemas": [LIST_SCHEMA],
        "totalResults": len(found),
        "startIndex": start,
        "itemsPerPage": len(shown),
    }
    if shown:  # like the rest of the service, an empty list is left out
        answer["Resources"] = shown
    return answer


def _only(item: dict[str, Any], attributes: str | None) -> dict[str, Any]:
    """RFC 7643 section 7: ``id`` is returned always; otherwise only what was asked for."""
    if not attributes:
        return item
    asked = {a.strip() for a in attributes.split(",") if a.strip()} | {"id", "schemas"}
    return {k: v for k, v in item.items() if k in asked}


def _parse_filter(text: str, *, allowed: tuple[str, ...]) -> tuple[str, str]:
    match = _FILTER.match(text)
    if match is None:
        raise errors.invalid("Unsupported or malformed filter expression.")
    attribute = match.group(1)
    if attribute not in allowed:
        raise errors.invalid(f"Filtering on '{attribute[:40]}' is not supported.")
    try:
        value = json.loads(match.group(2))
    except json.JSONDecodeError:
        raise errors.invalid("Malformed filter value.") from None
    if not isinstance(value, str):
        raise errors.invalid("Malformed filter value.")
    return attribute, value


def _positive(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        number = int(raw)
    except ValueError:
        raise errors.invalid(f"Invalid value for '{name}'.") from None
    return max(1, number)


def list_groups(groups: Iterable[str], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of groups (``displayName`` and ``id`` only: members are not emulated)."""
    names = sorted(groups)
    wanted = query.get("filter")
    if wanted:
        attribute, value = _parse_filter(wanted, allowed=("displayName", "id"))
        if attribute == "id":
            names = [g for g in names if stable_id(f"group:{g}") == value]
        else:
            names = [g for g in names if g == value]
    start = _positive(query, "startIndex", 1)
    count = min(_positive(query, "count", 100), MAX_COUNT)
    page = names[start - 1 : start - 1 + count]
    shown = [
        _only(
            {"schemas": [GROUP_SCHEMA], "id": stable_id(f"group:{g}"), "displayName": g},
            query.get("attributes"),
        )
        for g in page
    ]
    answer: dict[str, Any] = {
        "schemas": [LIST_SCHEMA],
        "totalResults": len(names),
        "startIndex": start,
        "itemsPerPage": len(shown),
    }
    if shown:
        answer["Resources"] = shown
    return answer
