"""Hostile and broken desired-state files, through the command line a user runs.

``tests/config`` fuzzes ``config.load`` itself; here the same kinds of input go through
``pkgrepo validate`` and ``pkgrepo plan`` (``reconciler.cli.main``): whatever the bytes, the
answer is exit 1 with one readable message (no trace, no "unexpected error"), in bounded time
(pytest-timeout) and bounded memory (tracemalloc peak), and ``plan`` never reaches out to any
workspace for a file it cannot load.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import config
from reconciler.core.errors import ConfigError
from tests.reliability.harness import Result, run_process, subprocess_env, write_fleet
from tests.support.cli import run_cli

MiB = 1024 * 1024
MEMORY_BOUND = 128 * MiB
"""Peak Python allocation allowed for any input the reader accepts to parse (5 MiB at
most): 25 times the file, room for positions and the schema check."""
LOCATED = re.compile(r"^\S.*:\d+:\d+: \S.*$")
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with a valid fleet file whose hosts are a closed loopback port."""
    monkeypatch.chdir(tmp_path)
    write_fleet(tmp_path, "http://127.0.0.1:9", 20)
    return tmp_path


def assert_refused(run: Result, command: str, file: str) -> None:
    """Exit 1, and the one message a user reads: for ``validate`` a summary line on stderr
    after located findings on stdout; for ``plan`` an ``error:`` with located problems."""
    assert "Traceback" not in run.text, run.text[-3000:]
    assert "unexpected error" not in run.text, run.text[-3000:]
    assert run.code == 1, run.text[-3000:]
    if command == "validate":
        assert re.fullmatch(rf"{re.escape(file)}: invalid, [^\n]+\n", run.err), run.err[-2000:]
        assert run.out and all(LOCATED.match(line) for line in run.out.splitlines()), run.out
    else:
        assert run.out == "", run.out[-2000:]
        first, *rest = run.err.splitlines()
        assert first.startswith("error: "), run.err[-2000:]
        assert all(LOCATED.match(line) for line in [first[len("error: ") :], *rest]), run.err


def loads(path: Path) -> bool:
    """Whether the file is valid as ``validate`` sees it: a value whose environment
    variable is unset is a note there, not an error (``plan`` needs it)."""
    try:
        config.load(path, require_env=False)
    except ConfigError:
        return False
    return True


def check_both(workdir: Path, data: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "fuzz.yaml").write_bytes(data)
    if loads(workdir / "fuzz.yaml"):
        return  # a valid file: planning it would reach for its hosts; not this test's job
    for command in ("validate", "plan"):
        assert_refused(run_cli(capsys, *[command, "fuzz.yaml"]), command, "fuzz.yaml")
    run = run_cli(capsys, *["validate", "fuzz.yaml", "--format", "json"])
    assert run.code == 1 and json.loads(run.out)["valid"] is False, run.text[-2000:]


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.binary(max_size=4000))
def test_random_bytes(workdir: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    check_both(workdir, data, capsys)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(
        [
            "https://u:p@x.example/simple",
            "${env:NOPE}",
            "${env:",
            "MANAGE",
            "absent",
            {"env": "RELIA_INDEX_TOKEN"},
            {"file": "/dev/zero"},
            {"file": "."},
            "http://127.0.0.1:9/x",
        ]
    ),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.sampled_from(
                [
                    "version",
                    "workspaces",
                    "defaults",
                    "host",
                    "auth",
                    "token",
                    "repositories",
                    "index_url",
                    "acls",
                    "wave",
                    "ensure",
                    "ignore",
                    "safety",
                    "<<",
                ]
            )
            | st.text(max_size=6),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=40,
)


@pytest.mark.timeout(120)
@FUZZ
@given(document=DOCUMENTS, version=st.sampled_from([None, 1, 2, "1"]))
def test_random_yaml_documents(
    workdir: Path, capsys: pytest.CaptureFixture[str], document: Any, version: Any
) -> None:
    if version is not None and isinstance(document, dict):
        document = {"version": version, **document}
    check_both(workdir, yaml.safe_dump(document, allow_unicode=True).encode(), capsys)


EDITS = st.lists(
    st.tuples(
        st.floats(0, 1),
        st.integers(0, 12),
        st.one_of(
            st.binary(max_size=8),
            st.sampled_from(
                [
                    b"\x00",
                    b"\t",
                    b": ",
                    b"- ",
                    b"*a",
                    b"&a ",
                    b"{",
                    b"]",
                    b"!!python/object:os.system",
                    b"\xff\xfe",
                    b"\r",
                    b"${env:NOPE}",
                    b"<<: *a",
                    b"\n  ws00:\n",
                ]
            ),
        ),
    ),
    min_size=1,
    max_size=4,
)


@pytest.mark.timeout(120)
@FUZZ
@given(edits=EDITS)
def test_mutated_valid_file(
    workdir: Path, capsys: pytest.CaptureFixture[str], edits: list[tuple[float, int, bytes]]
) -> None:
    data = bytearray((workdir / "pkgrepo.yaml").read_bytes())
    for where, cut, insert in edits:
        at = int(where * len(data))
        data[at : at + cut] = insert
    check_both(workdir, bytes(data), capsys)


def test_the_unmutated_fleet_file_is_valid(workdir: Path) -> None:
    """The fuzzers mutate a file that loads: otherwise they would test nothing."""
    assert loads(workdir / "pkgrepo.yaml")


# -- resource bombs, with a memory bound -------------------------------------------------------

HEAD = b"version: 1\nworkspaces:\n  ws00:\n    host: http://127.0.0.1:9/ws00\n"


def _comment() -> bytes:
    return HEAD + b"#" + b"x" * (5 * MiB - len(HEAD) - 2) + b"\n"


def _long_value() -> bytes:
    tail = b"'}\n"
    head = HEAD + b"    labels: {x: '"
    return head + b"y" * (5 * MiB - len(head) - len(tail)) + tail


def _alias_bomb() -> bytes:
    lines = [b"version: 1", b'l0: &l0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [b"l%d: &l%d [%s]" % (i, i, b",".join([b"*l%d" % (i - 1)] * 9)) for i in range(1, 9)]
    return b"\n".join(lines) + b"\n"


def _merge_bomb() -> bytes:
    lines = [b"version: 1", b"m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}"]
    lines += [
        b"m%d: &m%d {<<: [%s]}" % (i, i, b",".join([b"*m%d" % (i - 1)] * 9)) for i in range(1, 9)
    ]
    return b"\n".join(lines) + b"\n"


def _deep() -> bytes:
    return b"version: 1\nworkspaces: " + b"[" * 100_000 + b"]" * 100_000 + b"\n"


def _oversized() -> bytes:
    return b"#" * (5 * MiB + 1)


def _many_items() -> bytes:
    body = b"version: 1\nworkspaces: ["
    return body + b"1," * ((5 * MiB - len(body) - 3) // 2) + b"1]\n"


def _many_keys() -> bytes:
    head = HEAD + b"    labels:\n"
    rows = b"".join(b"      k%07d: v\n" % i for i in range((5 * MiB - len(head)) // 18))
    return head + rows


BOMBS: list[Any] = [
    pytest.param(_comment, id="5MiB-comment"),
    pytest.param(_long_value, id="5MiB-value"),
    pytest.param(_alias_bomb, id="alias-bomb"),
    pytest.param(_merge_bomb, id="merge-key-bomb"),
    pytest.param(_deep, id="100k-nesting"),
    pytest.param(_oversized, id="5MiB-plus-one"),
    pytest.param(_many_items, id="2.6M-list-items", marks=pytest.mark.slow),
    pytest.param(_many_keys, id="290k-keys", marks=pytest.mark.slow),
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("make", BOMBS)
def test_bombs_are_refused_in_bounded_memory(
    workdir: Path, capsys: pytest.CaptureFixture[str], make: Callable[[], bytes]
) -> None:
    (workdir / "bomb.yaml").write_bytes(make())
    tracemalloc.start()
    try:
        run = run_cli(capsys, *["validate", "bomb.yaml"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert run.code == 1
    assert "Traceback" not in run.text and "unexpected error" not in run.text
    assert re.fullmatch(r"bomb\.yaml: invalid, [^\n]+\n", run.err), run.err[-500:]
    assert peak < MEMORY_BOUND, f"peak {peak / MiB:.0f} MiB"


# -- files that are not files -------------------------------------------------------------------


NOT_FILES = [
    (command, kind)
    for command in ("validate", "plan", "apply")
    for kind in ("fifo", "directory", "dev-zero", "missing", "dangling-link")
    if (command, kind) != ("apply", "fifo")
]  # in a process of its own: see below


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("command", "kind"), NOT_FILES)
def test_not_a_regular_file(
    workdir: Path, command: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _special(workdir, kind)
    run = run_cli(capsys, *[command, str(path)])
    assert run.code == 1, run.text  # usage errors exit 1, never 2 ("changes")
    assert "Traceback" not in run.text and "unexpected error" not in run.text
    assert run.err.strip(), "no message"
    assert run.out == "" or command == "validate"


@pytest.mark.timeout(60)
def test_apply_on_a_fifo_answers_instead_of_blocking(workdir: Path) -> None:
    """A FIFO never written to: opening it to sniff for a plan file would block for good."""
    fifo = _special(workdir, "fifo")
    try:
        run = run_process(["apply", str(fifo), "--auto-approve"], env=subprocess_env(), timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("pkgrepo apply blocked on a FIFO")
    assert run.code == 1 and "regular file" in run.err


def _special(workdir: Path, kind: str) -> Path:
    path = workdir / f"special-{kind}"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dangling-link":
        path.symlink_to(workdir / "nowhere")
    return path
