"""The schema: each rule gives a located, readable problem; the schema itself is complete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler import config, schemas
from reconciler.core import policy
from tests.config.loading import WriteFile, problems

HEAD = "version: 1\nworkspaces:\n  dev:\n    host: https://dev.example.com\n"
"""A valid file to append workspace fields to: they start on line 5."""


def only(write: WriteFile, tail: str) -> list[str]:
    return problems(write(HEAD + tail))


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            "    repos: {}\n",
            "5:5: workspaces.dev.repos: unknown field 'repos'; allowed here: acls, acls_mode, "
            "auth, backend, ensure, host, ignore, labels, repositories, tier, waivers, wave",
        ),
        (
            "    lables: {}\n",
            "5:5: workspaces.dev.lables: unknown field 'lables'; did you mean 'labels'?",
        ),
        (
            "    repositories:\n      index: https://x.example.com/simple\n",
            "6:7: workspaces.dev.repositories.index: unknown field 'index'; "
            "did you mean 'index_url'?",
        ),
        (
            "    auth: {token: {envv: X}}\n",
            "5:20: workspaces.dev.auth.token.envv: unknown field 'envv'; did you mean 'env'?",
        ),
        (
            "    waivers: [{check: https-only, reason: r, until: 2030}]\n",
            "5:46: workspaces.dev.waivers[0].until: unknown field 'until'; "
            "allowed here: check, reason",
        ),
        ("    wave: -1\n", "5:11: workspaces.dev.wave: must be at least 0 (got -1)"),
        ("    wave: 1001\n", "5:11: workspaces.dev.wave: must be at most 1000 (got 1001)"),
        (
            "    wave: first\n",
            "5:11: workspaces.dev.wave: expected an integer, got a string",
        ),
        (
            "    ensure: gone\n",
            '5:13: workspaces.dev.ensure: must be one of "present", "absent" (got \'gone\')',
        ),
        (
            "    acls: {users: ADMIN}\n",
            '5:19: workspaces.dev.acls.users: must be one of "READ", "WRITE", "MANAGE" '
            "(got 'ADMIN')",
        ),
        (
            "    acls_mode: loose\n",
            '5:16: workspaces.dev.acls_mode: must be one of "exact", "additive" (got \'loose\')',
        ),
        (
            "    ignore: [pip-certs]\n",
            '5:14: workspaces.dev.ignore[0]: must be one of "pip-index-url", '
            '"pip-extra-index-urls", "pip-cert" (got \'pip-certs\')',
        ),
        (
            "    ignore: [pip-cert, pip-cert]\n",
            "5:13: workspaces.dev.ignore: entries must be unique",
        ),
        (
            "    waivers: [{check: https-everywhere, reason: r}]\n",
            '5:23: workspaces.dev.waivers[0].check: must be one of "https-only", '
            '"no-literal-credentials", "users-read-only", "admin-manage", "cert-valid", '
            '"cert-expired", "cert-expiring", "extra-urls-unique", "extra-urls-whitespace", '
            '"value-size", "hosts-distinct", "public-pypi-extra", "cert-validates-index" '
            "(got 'https-everywhere')",
        ),
        (
            "    waivers: [{check: https-only}]\n",
            "5:15: workspaces.dev.waivers[0]: missing required field 'reason'",
        ),
        (
            "    waivers: [{check: https-only, reason: ' '}]\n",
            "5:43: workspaces.dev.waivers[0].reason: must not be blank",
        ),
        (
            "    labels: {tier: 1}\n",
            "5:20: workspaces.dev.labels.tier: expected a string or null, got an integer; "
            "quote it if it is text",
        ),
        (
            "    labels: {critical: yes}\n",
            "5:24: workspaces.dev.labels.critical: expected a string or null, got true or "
            "false; quote it if it is text",
        ),
        (
            "    labels: {-x: a}\n",
            "5:14: workspaces.dev.labels.-x: a label name is letters, digits, `_`, `.`, `/` "
            "and `-`, starting with a letter or digit, at most 63 characters",
        ),
        (
            "    auth: {profile: a, token: b}\n",
            "5:11: workspaces.dev.auth: auth takes exactly one of `{profile: NAME}`, "
            "`{token: VALUE}` or `{client_id: VALUE, client_secret: VALUE}`; leave auth out "
            "to use the databricks-sdk default chain",
        ),
        (
            "    auth: {client_id: a}\n",
            "5:11: workspaces.dev.auth: auth takes exactly one of `{profile: NAME}`, "
            "`{token: VALUE}` or `{client_id: VALUE, client_secret: VALUE}`; leave auth out "
            "to use the databricks-sdk default chain",
        ),
        (
            "    auth: {token: {env: 1TOKEN}}\n",
            "5:25: workspaces.dev.auth.token.env: an environment variable name is letters, "
            "digits and `_`, not starting with a digit",
        ),
        (
            "    repositories: {cert: {env: A, file: b}}\n",
            "5:26: workspaces.dev.repositories.cert: expected a string, `{env: NAME}` or "
            "`{file: PATH}`",
        ),
        (
            "    repositories: {index_url: 443}\n",
            "5:31: workspaces.dev.repositories.index_url: expected a string, `{env: NAME}` or "
            "`{file: PATH}`; quote it if it is text",
        ),
        (
            "    repositories: {index_url: pypi.example.com/simple}\n",
            "5:31: workspaces.dev.repositories.index_url: expected an absolute http(s) URL "
            "without white space, e.g. `https://pypi.example.com/simple`, or `{env: NAME}` / "
            "`{file: PATH}`",
        ),
        (
            "    repositories: {extra_index_urls: https://x.example.com}\n",
            "5:38: workspaces.dev.repositories.extra_index_urls: expected a list or null, "
            "got a string",
        ),
    ],
)
def test_schema_rules(write: WriteFile, tail: str, expected: str) -> None:
    assert only(write, tail) == [f"pkgrepo.yaml:{expected}"]


def test_top_level_rules(write: WriteFile) -> None:
    path = write(
        """
        version: 2
        extra: 1
        defaults:
          host: https://x.example.com
        safety: {max_update_share: 1.5, max_delete_workspaces: -1}
        workspaces:
          -bad:
            host: https://a.example.com
          ok:
            wave: 0
          also.ok_1:
            host: ftp://b.example.com
        """
    )
    assert problems(path) == [
        "pkgrepo.yaml:1:10: version: this pkgrepo reads format version 1; set `version: 1`",
        "pkgrepo.yaml:2:1: extra: unknown field 'extra'; allowed here: defaults, discover, "
        "safety, verify, version, workspaces",
        "pkgrepo.yaml:4:3: defaults.host: `host` cannot be a default: each workspace names its own",
        "pkgrepo.yaml:5:28: safety.max_update_share: must be at most 1 (got 1.5)",
        "pkgrepo.yaml:5:56: safety.max_delete_workspaces: must be at least 0 (got -1)",
        "pkgrepo.yaml:7:3: workspaces.-bad: a workspace name is letters, digits, `_`, `.` and "
        "`-`, starts with a letter or digit and has at most 100 characters (it becomes part "
        "of addresses and URLs)",
        "pkgrepo.yaml:10:5: workspaces.ok: missing required field 'host'",
        'pkgrepo.yaml:12:11: workspaces["also.ok_1"].host: expected the workspace URL, e.g. '
        "`https://adb-1234567890123456.7.azuredatabricks.net` (no credentials, query or "
        "white space)",
    ]


def test_workspaces_of_the_wrong_shape(write: WriteFile) -> None:
    assert problems(write("version: 1\nworkspaces: [dev]\nsafety: {}\n")) == [
        "pkgrepo.yaml:2:13: workspaces: expected a mapping, got a list"
    ]
    assert problems(write("version: 1\nworkspaces: {dev: null, b: 3}\n")) == [
        "pkgrepo.yaml:2:19: workspaces.dev: expected a mapping, got null",
        "pkgrepo.yaml:2:28: workspaces.b: expected a mapping, got an integer",
    ]


def test_missing_version_and_workspaces(write: WriteFile) -> None:
    assert problems(write("safety: {}\n")) == [
        "pkgrepo.yaml:1:1: (root): a desired-state file needs `workspaces:`, `discover:` or both",
        "pkgrepo.yaml:1:1: (root): missing required field 'version'",
    ]


def test_null_is_allowed_where_it_removes_a_default(write: WriteFile) -> None:
    path = write(
        HEAD + "    repositories: {index_url: null, cert: ~, extra_index_urls: null}\n"
        "    acls: {users: null}\n    labels: {env: null}\n"
    )
    assert config.load(path, {}).desired.workspace("dev").secrets == {}


def test_every_problem_in_a_file_is_reported_at_once(write: WriteFile) -> None:
    path = write(
        """
        version: 1
        workspaces:
          a:
            host: https://a.example.com
            wave: x
            repositories: {index_url: {env: MISSING_A}}
          b:
            host: https://b.example.com
            repositories: {index_url: {env: MISSING_B}}
            acls: {users: ALL}
          c:
            host: https://c.example.com
            auth: {token: {env: MISSING_C}}
          c2:
            host: https://c.example.com
            unknown: 1
        """
    )
    assert problems(path) == [
        "pkgrepo.yaml:5:11: workspaces.a.wave: expected an integer, got a string",
        'pkgrepo.yaml:10:19: workspaces.b.acls.users: must be one of "READ", "WRITE", '
        "\"MANAGE\" (got 'ALL')",
        "pkgrepo.yaml:13:19: workspaces.c.auth.token: environment variable MISSING_C is not set",
        "pkgrepo.yaml:16:5: workspaces.c2.unknown: unknown field 'unknown'; allowed here: "
        "acls, acls_mode, auth, backend, ensure, host, ignore, labels, repositories, tier, "
        "waivers, wave",
    ]


def _properties(node: Any, where: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield f"{where}.properties.{name}", sub
        for key, sub in node.items():
            yield from _properties(sub, f"{where}.{key}")
    elif isinstance(node, list):
        for index, sub in enumerate(node):
            yield from _properties(sub, f"{where}[{index}]")


def _schema() -> dict[str, Any]:
    return schemas.load(schemas.DESIRED_STATE)


def test_the_schema_is_valid_draft_2020_12() -> None:
    schema = _schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_property_is_described_with_examples() -> None:
    schema = _schema()
    defs = schema["$defs"]
    missing = []
    for where, prop in _properties(schema):
        target = defs[prop["$ref"].rsplit("/", 1)[1]] if "$ref" in prop else {}
        described = "description" in prop or "description" in target
        examples = "examples" in prop or "examples" in target or "const" in prop
        if not (described and examples):
            missing.append(where)
    assert missing == []


def test_every_object_is_closed() -> None:
    """``additionalProperties: false`` on every object with fixed fields."""
    open_objects = []
    for where, node in _walk(_schema()):
        if "properties" in node and node.get("additionalProperties") is not False:
            open_objects.append(where)
    assert open_objects == []


def _walk(node: Any, where: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, sub in node.items():
            yield from _walk(sub, f"{where}.{key}")
    elif isinstance(node, list):
        for index, sub in enumerate(node):
            yield from _walk(sub, f"{where}[{index}]")


def test_waivable_checks_in_the_schema_are_the_policy_checks() -> None:
    assert set(_schema()["$defs"]["checkId"]["enum"]) == policy.CHECK_IDS


def test_examples_in_the_schema_validate_where_they_are_whole_documents() -> None:
    schema = _schema()
    validator = Draft202012Validator(schema)
    for name in ("workspace", "defaults", "repositories", "auth", "acls", "safety"):
        sub = Draft202012Validator({**schema["$defs"][name], "$defs": schema["$defs"]})
        for example in schema["$defs"][name]["examples"]:
            assert list(sub.iter_errors(example)) == [], (name, example)
    assert validator.is_valid(
        {"version": 1, "workspaces": schema["properties"]["workspaces"]["examples"][0]}
    )
