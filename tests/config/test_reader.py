"""Reading YAML: hostile and broken input fails with a located message, never a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler import config
from reconciler.config import reader
from tests.config.loading import WriteFile, load, problems

GOOD = """
version: 1
workspaces:
  dev:
    host: https://dev.example.com
"""


def test_file_over_the_size_limit_is_refused_unread(write: WriteFile) -> None:
    path = write(b"#" * (config.MAX_FILE_BYTES + 1))
    assert problems(path) == [
        "pkgrepo.yaml:1:1: (file): the file is 5.0 MiB; desired-state files may be at most 5 MiB"
    ]


def test_parse_refuses_oversized_bytes_too() -> None:
    with pytest.raises(config.InvalidConfig) as caught:
        reader.parse(b" " * (config.MAX_FILE_BYTES + 1), "big.yaml")
    assert "at most 5 MiB" in caught.value.problems[0]


def test_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [
        "nope.yaml:1:1: (file): cannot read the file: No such file or directory"
    ]


def test_directory_and_fifo_are_not_read(tmp_path: Path) -> None:
    assert problems(tmp_path) == [f"{tmp_path.name}:1:1: (file): not a regular file"]
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # opening it would block forever
    assert problems(fifo) == ["pipe.yaml:1:1: (file): not a regular file"]


def test_alias_bomb_is_refused(write: WriteFile) -> None:
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = write("version: 1\n" + "\n".join(levels) + "\n")
    assert problems(path) == [
        "pkgrepo.yaml:6:8: e[0]: aliases expand to more than 10,000 values; "
        "use `defaults` instead of anchors for shared settings"
    ]


def test_modest_anchors_and_merge_keys_work(write: WriteFile) -> None:
    path = write(
        """
        version: 1
        workspaces:
          a: &base
            host: https://a.example.com
            wave: 3
            acls: &acls {admins: MANAGE, users: READ}
          b:
            <<: *base
            host: https://b.example.com
          c:
            host: https://c.example.com
            acls: *acls
        """
    )
    state = load(path).desired
    assert [(w.name, w.host, w.wave) for w in state.workspaces] == [
        ("a", "https://a.example.com", 3),
        ("b", "https://b.example.com", 3),
        ("c", "https://c.example.com", 0),
    ]
    assert dict(state.workspace("c").acls) == dict(state.workspace("a").acls)


def test_alias_to_an_enclosing_anchor_is_refused(write: WriteFile) -> None:
    path = write("version: 1\nworkspaces: &w {a: *w}\n")
    assert problems(path) == [
        "pkgrepo.yaml:2:20: workspaces.a: alias *w has no anchor before it",
    ]


def test_deep_flow_nesting_is_refused(write: WriteFile) -> None:
    path = write("version: 1\nworkspaces: " + "[" * 50 + "]" * 50 + "\n")
    (line,) = problems(path)
    assert line == "pkgrepo.yaml:2:45: workspaces" + "[0]" * 32 + (
        ": the document nests deeper than 32 levels"
    )


def test_nesting_bomb_is_refused(write: WriteFile) -> None:
    (line,) = problems(write("version: 1\nworkspaces: " + "[" * 1_000_000 + "\n"))
    assert line.endswith(": the document nests deeper than 32 levels")


def test_deep_block_nesting_is_refused(write: WriteFile) -> None:
    text = "version: 1\nworkspaces:\n" + "".join(
        "  " * depth + f"k{depth}:\n" for depth in range(1, 40)
    )
    (line,) = problems(write(text))
    assert line.startswith("pkgrepo.yaml:35:67: workspaces.k1.k2")
    assert line.endswith("k32: the document nests deeper than 32 levels")


def test_non_utf8_bytes_are_located(write: WriteFile) -> None:
    path = write(b"version: 1\nworkspaces:\n  dev:\n    host: https://h\xff.example.com\n")
    assert problems(path) == [
        "pkgrepo.yaml:4:20: (file): the file is not UTF-8: byte 0xff cannot be decoded; "
        "save the file as UTF-8"
    ]


def test_utf16_is_not_utf8(write: WriteFile) -> None:
    path = write(GOOD.encode("utf-16"))
    assert problems(path) == [
        "pkgrepo.yaml:1:1: (file): the file is not UTF-8: byte 0xff cannot be decoded; "
        "save the file as UTF-8"
    ]


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\x00", "control character U+0000"),
        ("\x1b", "control character U+001B"),
        ("\x7f", "control character U+007F"),
        ("\x85", "control character U+0085"),
        ("\u2028", "line separator U+2028"),
        ("\ufeff", "byte order mark U+FEFF"),
    ],
)
def test_raw_control_characters_are_refused(write: WriteFile, char: str, name: str) -> None:
    path = write(f"version: 1\nworkspaces:\n  dev:\n    host: https://h{char}.example.com\n")
    assert problems(path) == [f"pkgrepo.yaml:4:20: (file): {name} is not allowed in the file"]


def test_a_leading_byte_order_mark_is_fine(write: WriteFile) -> None:
    path = write(b"\xef\xbb\xbf" + GOOD.lstrip().encode())
    assert load(path).desired.workspace("dev").host == "https://dev.example.com"


def test_escaped_control_character_in_a_value(write: WriteFile) -> None:
    path = write(
        """
        version: 1
        workspaces:
          dev:
            host: https://dev.example.com
            labels: {team: "data\\u0007eng"}
        """
    )
    assert problems(path) == [
        "pkgrepo.yaml:5:20: workspaces.dev.labels.team: the value contains control character "
        "U+0007 at character 5; control characters are not allowed",
    ]


@pytest.mark.parametrize(
    ("escaped", "message"),
    [
        ("\\n", "contains a line break (U+000A) at character 32"),
        ("\\r", "contains a line break (U+000D) at character 32"),
        ("\\t", "contains white space (U+0009) at character 32"),
        (" ", "contains white space (U+0020) at character 32"),
        ("\\u00a0", "contains white space (U+00A0) at character 32"),
        ("\\u2029", "contains a line break (U+2029) at character 32"),
    ],
)
def test_white_space_or_control_characters_inside_a_literal_url(
    write: WriteFile, escaped: str, message: str
) -> None:
    path = write(
        "version: 1\nworkspaces:\n  dev:\n    host: https://dev.example.com\n"
        "    repositories:\n"
        f'      extra_index_urls: ["https://pypi.example.com/simple{escaped}https://evil.example.com"]\n'
    )
    found = problems(path)
    assert found == [
        f"pkgrepo.yaml:6:26: workspaces.dev.repositories.extra_index_urls[0]: {message}; "
        "a URL may hold no white space or control characters"
    ]


def test_invisible_characters_inside_a_literal_url(write: WriteFile) -> None:
    head = "version: 1\nworkspaces:\n  dev:\n    host: https://dev.example.com\n"
    zero_width = write(head + '    repositories: {index_url: "https://x.example.com/\\u200b"}\n')
    assert problems(zero_width) == [
        "pkgrepo.yaml:5:31: workspaces.dev.repositories.index_url: the value contains a "
        "control character (U+200B) at character 23; a URL may hold no white space or "
        "control characters: https://x.example.com/",
    ]
    nul = write(head + '    repositories: {index_url: "https://x.example.com/\\x00"}\n')
    assert problems(nul) == [
        "pkgrepo.yaml:5:31: workspaces.dev.repositories.index_url: the value contains "
        "control character U+0000 at character 23; control characters are not allowed",
    ]


def test_duplicate_keys_are_errors_at_every_level(write: WriteFile) -> None:
    path = write(
        """
        version: 1
        workspaces:
          dev:
            host: https://a.example.com
            host: https://b.example.com
          dev:
            host: https://c.example.com
        version: 1
        """
    )
    assert problems(path) == [
        "pkgrepo.yaml:5:5: workspaces.dev.host: duplicate key 'host'; it is already set on line 4",
        "pkgrepo.yaml:6:3: workspaces.dev: duplicate key 'dev'; it is already set on line 3",
        "pkgrepo.yaml:8:1: version: duplicate key 'version'; it is already set on line 1",
    ]


def test_more_than_one_document(write: WriteFile) -> None:
    path = write(GOOD + "---\nversion: 1\n")
    assert problems(path) == [
        "pkgrepo.yaml:5:1: (root): the file holds more than one YAML document (`---`); keep one"
    ]


def test_syntax_error_is_located(write: WriteFile) -> None:
    path = write("version: 1\nworkspaces: {dev: \n")
    assert problems(path) == [
        "pkgrepo.yaml:3:1: (file): YAML syntax error: did not find expected node content "
        "(while parsing a flow node)"
    ]


def test_unsupported_tags(write: WriteFile) -> None:
    path = write("version: !!python/object:os.system 1\nworkspaces: !!set {a}\n")
    assert problems(path) == [
        "pkgrepo.yaml:1:10: version: the tag !!python/object:os.system is not supported; remove it",
        "pkgrepo.yaml:2:13: workspaces: the tag !!set is not supported; remove it",
        "pkgrepo.yaml:2:21: workspaces.a: expected a mapping, got null",
    ]


def test_complex_keys_are_refused(write: WriteFile) -> None:
    path = write("version: 1\nworkspaces:\n  ? [a, b]\n  : {host: https://a.example.com}\n")
    assert problems(path) == ["pkgrepo.yaml:3:5: workspaces: mapping keys must be plain strings"]


def test_unreadable_numbers(write: WriteFile) -> None:
    path = write(
        "version: 1\nsafety: {max_update_share: .nan}\nworkspaces:\n  dev:\n"
        "    host: https://a.example.com\n    wave: " + "9" * 5000 + "\n"
    )
    assert problems(path) == [
        "pkgrepo.yaml:2:28: safety.max_update_share: expected a finite number",
        "pkgrepo.yaml:6:11: workspaces.dev.wave: cannot read this value as int",
    ]


def test_dates_stay_text(write: WriteFile) -> None:
    path = write(GOOD + "    labels: {since: 2024-01-31}\n")
    assert dict(load(path).desired.workspace("dev").labels) == {"since": "2024-01-31"}


def test_empty_file_and_wrong_root(write: WriteFile) -> None:
    assert problems(write("")) == [
        "pkgrepo.yaml:1:1: (root): the file is empty; it needs `version: 1` and `workspaces:`"
    ]
    assert problems(write("# only a comment\n")) == [
        "pkgrepo.yaml:1:1: (root): the file is empty; it needs `version: 1` and `workspaces:`"
    ]
    assert problems(write("- a\n- b\n")) == [
        "pkgrepo.yaml:1:1: (root): expected a mapping, got a list"
    ]


def test_pure_python_parser_gives_the_same_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    text = GOOD.lstrip().encode() + b"    wave: x\n"
    with_c = reader.parse(text, "f.yaml")
    monkeypatch.setattr(reader, "_events", reader._PurePythonParser)
    pure = reader.parse(text, "f.yaml")
    assert pure.values == with_c.values
    assert pure.keys == with_c.keys
    assert pure.data == with_c.data
