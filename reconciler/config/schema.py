"""Checking a document against ``schemas/desired-state.schema.json``.

One schema serves the editor (completion and hover through a YAML language server) and this
validator, so the two never disagree. jsonschema's own messages quote whole values (which
could hold a URL with credentials) and read poorly for ``anyOf``; so each error is turned into
a short message here, preferring the schema's ``errorMessage`` (the ajv-errors keyword the
YAML language server also shows), and located by its JSON path: an unknown field at its key,
anything else at its value.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from reconciler import schemas
from reconciler.config.problems import JsonPath, Problem, shown_key
from reconciler.config.reader import Document
from reconciler.config.sources import blank_problem

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}
_OWN_MESSAGE = {"required", "additionalProperties", "dependentRequired"}


def schema_text() -> str:
    return schemas.text(schemas.DESIRED_STATE)


@functools.cache
def _validator() -> Any:
    schema = schemas.load(schemas.DESIRED_STATE)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def check(document: Document, file: str) -> list[Problem]:
    """Every way ``document`` breaks the schema, as located problems."""
    problems: list[Problem] = []
    for error in _validator().iter_errors(document.data):
        problems.extend(_problems(error, (), document, file))
    problems.extend(_hosts_required(document, file))
    return sorted(problems, key=lambda p: (p.line, p.column))


def _hosts_required(document: Document, file: str) -> Iterator[Problem]:
    """``host`` is required in every workspace, unless the file discovers workspaces from an
    account (an entry without a host then extends the discovered workspace of its name)."""
    data = document.data
    if not isinstance(data, dict) or "discover" in data:
        return
    workspaces = data.get("workspaces")
    if not isinstance(workspaces, dict):
        return
    for name, entry in workspaces.items():
        if isinstance(entry, dict) and "host" not in entry:
            path: JsonPath = ("workspaces", name)
            message = "missing required field 'host'"
            yield Problem.at(file, document.position(path), path, message)


def _problems(
    error: ValidationError, base: JsonPath, document: Document, file: str
) -> Iterator[Problem]:
    path: JsonPath = (*base, *error.relative_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        for key in error.instance:
            if key not in allowed:
                key_path = (*path, key)
                position = document.position(key_path, key=True)
                yield Problem.at(file, position, key_path, _unknown_field(path, key, allowed))
        return
    if "propertyNames" in error.relative_schema_path and isinstance(error.instance, str):
        key_path = (*path, error.instance)
        position = document.position(key_path, key=True)
        yield Problem.at(file, position, key_path, _message(error, path, document))
        return
    if error.validator in {"anyOf", "oneOf"} and "errorMessage" not in schema:
        branch = _relevant_branch(error)
        if branch:
            for sub in branch:
                yield from _problems(sub, path, document, file)
            return
    yield Problem.at(file, document.position(path), path, _message(error, path, document))


def _relevant_branch(error: ValidationError) -> list[ValidationError]:
    """For ``anyOf: [null, X]`` and the like: the errors of the one alternative the value
    was meant to be (the others failed on type alone); else errors carrying a message."""
    branches: dict[object, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    meant = [
        errors
        for errors in branches.values()
        if not all(e.validator == "type" and not e.relative_path for e in errors)
    ]
    if len(meant) == 1:
        return meant[0]
    for errors in branches.values():
        explained = [e for e in errors if isinstance(e.schema, dict) and "errorMessage" in e.schema]
        if explained:
            return explained[:1]
    return []


def _unknown_field(path: JsonPath, key: str, allowed: list[str]) -> str:
    if path == ("defaults",) and key == "host":
        return "`host` cannot be a default: each workspace names its own"
    if shown_key(key) != key:
        return (
            "unknown field (its name is not shown: it looks like a value, not a field "
            f"name); allowed here: {', '.join(allowed)}"
        )
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown field {key!r}; did you mean {close[0]!r}?"
    return f"unknown field {key!r}; allowed here: {', '.join(allowed)}"


_SHOWN_FIELDS = frozenset(
    {"version", "ensure", "acls_mode", "wave", "check", "max_update_share", "max_delete_workspaces"}
)
"""Fields whose values are never secret, so an error may quote them. Every other value is
described by its type."""
_SHOWN_UNDER = frozenset({"acls", "ignore", "waivers"})
"""Anything under these is never secret: principal names and permissions, key names, check
ids and reasons."""


def _show(value: object, path: JsonPath = ()) -> str:
    """A value as safe to echo: only where the field is known not to hold a secret, and
    then short non-URL strings, numbers, booleans, null; else its type."""
    known = any(part in _SHOWN_UNDER for part in path) or (bool(path) and path[-1] in _SHOWN_FIELDS)
    if not known:
        return _json_type(value)
    if isinstance(value, str):
        if len(value) > 40 or "://" in value or "@" in value or not value.isprintable():
            return "a string"
        return repr(value)
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return _TYPE_NAMES["object" if isinstance(value, dict) else "array"]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return _TYPE_NAMES["object" if isinstance(value, dict) else "array"]


def _message(error: ValidationError, path: JsonPath, document: Document) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind: Any = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    hint = ""
    if kind == "type" and "string" in value and path in document.scalars:
        hint = "; quote it if it is text"
    url_pattern = kind == "pattern" and "://" in str(value) and isinstance(instance, str)
    if url_pattern and (blank := blank_problem(instance)):
        return blank  # more precise than the URL pattern's message
    custom = schema.get("errorMessage")
    if isinstance(custom, str) and kind not in _OWN_MESSAGE:
        return custom + hint
    if kind == "required" and isinstance(instance, dict):
        missing = [repr(name) for name in value if name not in instance]
        plural = "s" if len(missing) > 1 else ""
        return f"missing required field{plural} {', '.join(missing)}"
    if kind == "type":
        types = [value] if isinstance(value, str) else list(value)
        expected = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        return f"expected {expected}, got {_json_type(instance)}{hint}"
    if kind == "enum":
        options = ", ".join(json.dumps(option) for option in value if option is not None)
        return f"must be one of {options} (got {_show(instance, path)})"
    if kind == "const":
        return f"must be {json.dumps(value)} (got {_show(instance, path)})"
    if kind == "minimum":
        return f"must be at least {value} (got {_show(instance, path)})"
    if kind == "maximum":
        return f"must be at most {value} (got {_show(instance, path)})"
    if kind == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if kind == "maxLength":
        return f"must be at most {value} characters"
    if kind == "pattern":
        if value == "\\S":
            return "must not be blank"
        return "contains characters not allowed here (control characters or a bad form)"
    if kind == "uniqueItems":
        return "entries must be unique"
    if kind in {"minProperties", "maxProperties"}:
        return f"has the wrong number of fields ({kind} {value})"
    return f"is invalid ({kind})"
