"""Fuzzing the loader: whatever the bytes, the outcome is a load or a ``ConfigError``."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import config
from reconciler.core import policy
from reconciler.core.errors import ConfigError

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "fleet.yaml").read_bytes()
ENV = {
    "DATABRICKS_TOKEN": "dapi-x",
    "ARTIFACTORY_USER": "u",
    "ARTIFACTORY_TOKEN": "t",
    "A": "https://a.example.com/simple",
    "B": "b\nc",
}
PUNCTUATION = list("{}[]:,-&*!|>'\"#?%@`\n\t abc01.~<$")
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
FIELDS = [
    "version",
    "workspaces",
    "defaults",
    "safety",
    "host",
    "auth",
    "profile",
    "token",
    "client_id",
    "client_secret",
    "labels",
    "wave",
    "ensure",
    "repositories",
    "index_url",
    "extra_index_urls",
    "cert",
    "acls",
    "acls_mode",
    "ignore",
    "waivers",
    "check",
    "reason",
    "env",
    "file",
    "admins",
    "users",
    "dev",
    "<<",
    "max_update_share",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "https://x.example.com/simple",
            "http://a.example.com",
            "${env:A}",
            "${env:B}",
            "${env:",
            "READ",
            "MANAGE",
            "present",
            "absent",
            "https-only",
            "certs/x.pem",
            "/dev/zero",
            ".",
            "A",
            "B",
            "",
            "\x00",
            "a b",
            "https://u:p@h.example.com",
        ]
    ),
    st.text(max_size=20),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5),
    ),
    max_leaves=30,
)


SOURCES = st.one_of(
    st.sampled_from(
        [
            "https://x.example.com/simple",
            "http://a.example.com",
            "https://${env:A}",
            "${env:A}",
            "${env:B}",
            "https://u:p@h.example.com/s?token=1",
            "https://[::1",
            "",
            "https://h.example.com:99999",
            {"env": "A"},
            {"env": "B"},
            {"env": "NOPE"},
            {"file": "fuzz.yaml"},
            {"file": "/dev/null"},
            {"file": "."},
            None,
        ]
    ),
    st.text(max_size=12),
)
WORKSPACE = st.fixed_dictionaries(
    {"host": st.sampled_from(["https://a.example.com", "http://127.0.0.1:8020/x", "https://a"])},
    optional={
        "auth": st.sampled_from(
            [
                {"profile": "p"},
                {"token": {"env": "A"}},
                {"token": "t"},
                {"client_id": "c", "client_secret": {"env": "B"}},
            ]
        ),
        "labels": st.dictionaries(
            st.sampled_from(["env", "team"]), st.none() | st.text(max_size=5)
        ),
        "wave": st.integers(0, 3),
        "ensure": st.sampled_from(["present", "absent"]),
        "repositories": st.fixed_dictionaries(
            {},
            optional={
                "index_url": SOURCES,
                "extra_index_urls": st.none() | st.lists(SOURCES, max_size=3),
                "cert": SOURCES,
            },
        ),
        "acls": st.dictionaries(
            st.sampled_from(["admins", "users", "x y"]),
            st.sampled_from(["READ", "WRITE", "MANAGE", None]),
        ),
        "acls_mode": st.sampled_from(["exact", "additive"]),
        "ignore": st.lists(st.sampled_from(["pip-index-url", "pip-cert"]), unique=True),
        "waivers": st.lists(
            st.fixed_dictionaries(
                {"check": st.sampled_from(["https-only", "cert-valid"]), "reason": st.just("r")}
            ),
            max_size=2,
        ),
    },
)


@settings(max_examples=300)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c.d", "e_f"]), WORKSPACE, max_size=4),
    WORKSPACE.map(lambda ws: {k: v for k, v in ws.items() if k != "host"}),
)
def test_plausible_workspaces(
    workdir: Path, workspaces: dict[str, Any], defaults: dict[str, Any]
) -> None:
    document = {"version": 1, "defaults": defaults, "workspaces": workspaces}
    outcome(workdir, yaml.safe_dump(document).encode())


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pkgrepo-fuzz-") as name:
        yield Path(name)


def outcome(workdir: Path, data: bytes) -> None:
    path = workdir / "fuzz.yaml"
    path.write_bytes(data)
    try:
        loaded = config.load(path, ENV)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError lists its problems"
        assert all(line.startswith(f"{path}:") for line in exc.problems)
        return
    policy.evaluate(loaded.desired, loaded.provenance, now=NOW)


@given(st.binary(max_size=3000))
def test_random_bytes(workdir: Path, data: bytes) -> None:
    outcome(workdir, data)


@given(st.text(alphabet=st.sampled_from(PUNCTUATION), max_size=300))
def test_random_yaml_punctuation(workdir: Path, text: str) -> None:
    outcome(workdir, text.encode())


@given(VALUES)
def test_random_documents(workdir: Path, value: Any) -> None:
    outcome(workdir, yaml.safe_dump(value, allow_unicode=True).encode())


@given(
    st.fixed_dictionaries(
        {"version": st.just(1)},
        optional={"workspaces": VALUES, "defaults": VALUES, "safety": VALUES},
    )
)
def test_random_top_level_fields(workdir: Path, document: dict[str, Any]) -> None:
    outcome(workdir, yaml.safe_dump(document).encode())


@given(
    st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), VALUES, max_size=4),
    VALUES,
)
def test_random_workspaces(workdir: Path, workspaces: dict[str, Any], defaults: Any) -> None:
    document = {"version": 1, "defaults": defaults, "workspaces": workspaces}
    outcome(workdir, yaml.safe_dump(document).encode())


INSERTS = st.one_of(
    st.binary(max_size=6),
    st.text(alphabet=st.sampled_from(PUNCTUATION), max_size=6).map(str.encode),
    st.sampled_from([b"null", b"[]", b"{}", b"*a", b"&a ", b"<<: ", b"${env:B}", b"\\n"]),
)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.integers(0, len(EXAMPLE)), st.integers(0, 8), INSERTS),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_example(workdir: Path, edits: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(EXAMPLE)
    for at, cut, insert in edits:
        data[at : at + cut] = insert
    outcome(workdir, bytes(data))
