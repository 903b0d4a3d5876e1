"""Reading desired-state YAML defensively, remembering where every value is written.

A desired-state file is reviewed like code but may be hostile or simply broken, and YAML
parsers will happily build a billion-element structure from a few hundred bytes of anchors and
aliases, silently keep the last of two duplicate keys, and recurse until the interpreter gives
up. So, before YAML sees the file, its size, encoding and characters are checked; then the
values are composed here from parser events (libyaml's when available: it is several times
faster) rather than by ``yaml.safe_load``, which lets this module:

- record the line and column of every value and every mapping key, by JSON path, so each
  later problem can say ``FILE:LINE:COL``;
- report duplicate keys, unsupported tags and control characters as located problems;
- refuse nesting deeper than ``MAX_DEPTH`` and aliases that expand to more than
  ``MAX_ALIAS_VALUES`` values in total.

Problems that leave nothing to read further (size, encoding, syntax, depth, alias bombs) are
fatal: ``read`` raises ``InvalidConfig`` at once. The others are collected in the
``Document`` so the schema can still report everything else in the same run.
"""

from __future__ import annotations

import hashlib
import math
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from reconciler.config.problems import FILE_PATH, InvalidConfig, JsonPath, Problem, shown_key

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 32
MAX_ALIAS_VALUES = 10_000
MAX_VALUES = 150_000
"""Values (scalars, lists, maps) in one file: several thousand workspaces' worth (a fleet
workspace takes 10 to 20). Each is kept with its position, so a file of millions of tiny
values would cost hundreds of MiB; larger fleets split across files."""

Position = tuple[int, int]
"""1-based line and column."""

_FORBIDDEN_IN_FILE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]"
)
_CONTROL_IN_VALUE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{name}" for name in ("null", "bool", "int", "float", "str")}
_TIMESTAMP_TAG = f"{_TAG}timestamp"
_CHAR_NAMES = {
    0xFEFF: "byte order mark U+FEFF",
    0x2028: "line separator U+2028",
    0x2029: "paragraph separator U+2029",
}


@dataclass(frozen=True)
class Document:
    """The values of a YAML file with the position of each."""

    data: object
    values: Mapping[JsonPath, Position]
    """Where each value starts; paths inside an alias map to the alias."""
    keys: Mapping[JsonPath, Position]
    """Where the key of each mapping entry is written."""
    scalars: Mapping[JsonPath, str]
    """The text as written of every scalar that is not a string (for "quote it" hints)."""
    problems: tuple[Problem, ...]
    sha256: str = ""
    """The SHA-256 of the bytes read: a saved plan records it to refuse a different file."""

    def position(self, path: JsonPath, *, key: bool = False) -> Position:
        """The position of ``path`` (of its key when ``key``), else of its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))


class _Fatal(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Events(Protocol):
    def get_event(self) -> Event | None: ...
    def peek_event(self) -> Event | None: ...


class _PurePythonParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


def _events(text: str) -> _Events:
    try:
        from yaml._yaml import CParser
    except ImportError:
        return _PurePythonParser(text)
    return CParser(text)


def _position_in(text: str, index: int) -> Position:
    before = text[:index]
    breaks = list(_LINE_BREAK.finditer(before))
    line_start = breaks[-1].end() if breaks else 0
    return len(breaks) + 1, index - line_start + 1


def _char_name(char: str) -> str:
    return _CHAR_NAMES.get(ord(char), f"control character U+{ord(char):04X}")


def read(path: Path, display: str) -> Document:
    """Read and compose ``path``; ``display`` is the file name used in problems."""

    def fatal(message: str) -> InvalidConfig:
        return InvalidConfig([Problem(display, 1, 1, FILE_PATH, message)])

    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise fatal("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise fatal(_too_big(info.st_size))
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise fatal(f"cannot read the file: {exc.strerror or exc}") from None
    return parse(data, display)


def _too_big(size: int) -> str:
    return (
        f"the file is {size / 2**20:.1f} MiB; desired-state files may be at most "
        f"{MAX_FILE_BYTES // 2**20} MiB"
    )


def parse(data: bytes, display: str) -> Document:
    """Compose YAML ``data``; raises ``InvalidConfig`` for problems that stop reading."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidConfig([Problem(display, 1, 1, FILE_PATH, _too_big(len(data)))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position_in(data[: exc.start].decode("utf-8"), exc.start)
        message = (
            f"the file is not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded; "
            "save the file as UTF-8"
        )
        raise InvalidConfig([Problem(display, line, column, FILE_PATH, message)]) from None
    text = text.removeprefix("\ufeff")
    if found := _FORBIDDEN_IN_FILE.search(text):
        line, column = _position_in(text, found.start())
        message = f"{_char_name(found.group())} is not allowed in the file"
        raise InvalidConfig([Problem(display, line, column, FILE_PATH, message)])
    builder = _Builder(_events(text), display)
    try:
        value = builder.document()
    except _Fatal as exc:
        raise InvalidConfig([exc.problem]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        detail = exc.problem or "cannot parse"
        context = f" ({exc.context})" if exc.context else ""
        message = f"YAML syntax error: {detail}{context}"
        if "maximum nesting depth" in detail:  # libyaml's own limit, met before ours
            message = f"the document nests deeper than {MAX_DEPTH} levels"
        raise InvalidConfig([Problem(display, line, column, FILE_PATH, message)]) from None
    except yaml.YAMLError as exc:
        message = f"YAML syntax error: {type(exc).__name__}"
        raise InvalidConfig([Problem(display, 1, 1, FILE_PATH, message)]) from None
    return Document(
        value,
        builder.values,
        builder.keys,
        builder.scalars,
        tuple(builder.problems),
        sha256=hashlib.sha256(data).hexdigest(),
    )


@dataclass(frozen=True)
class _Anchored:
    value: object
    size: int
    """How many values the anchored node holds, itself included: what an alias costs."""


class _Builder:
    """Composes plain Python values (dict, list, str, int, float, bool, None) from events."""

    def __init__(self, events: _Events, file: str) -> None:
        self.events = events
        self.file = file
        self.values: dict[JsonPath, Position] = {}
        self.keys: dict[JsonPath, Position] = {}
        self.scalars: dict[JsonPath, str] = {}
        self.problems: list[Problem] = []
        self.anchors: dict[str, _Anchored] = {}
        self.alias_budget = MAX_ALIAS_VALUES
        self.value_budget = MAX_VALUES
        self.constructor = SafeConstructor()
        self.resolve_tag: Callable[[type[ScalarNode], str, tuple[bool, bool]], str] = (
            Resolver().resolve
        )

    def problem(self, position: Position, path: JsonPath, message: str) -> None:
        self.problems.append(Problem.at(self.file, position, path, message))

    def fatal(self, position: Position, path: JsonPath, message: str) -> _Fatal:
        return _Fatal(Problem.at(self.file, position, path, message))

    def next(self) -> Event:
        event = self.events.get_event()
        if event is None:  # the parser ends every stream with StreamEndEvent
            raise self.fatal((1, 1), (), "unexpected end of the YAML stream")
        return event

    def peek(self) -> Event | None:
        return self.events.peek_event()

    def document(self) -> object:
        self.next()  # StreamStartEvent
        if isinstance(self.peek(), StreamEndEvent):
            return None
        start = self.next()
        if not isinstance(start, DocumentStartEvent):
            raise self.fatal(_pos(start), (), "expected a YAML document")
        value, _ = self.node((), 0)
        self.next()  # DocumentEndEvent
        following = self.peek()
        if isinstance(following, DocumentStartEvent | DocumentEndEvent):
            raise self.fatal(
                _pos(following),
                (),
                "the file holds more than one YAML document (`---`); keep one",
            )
        return value

    def node(self, path: JsonPath, depth: int) -> tuple[object, int]:
        """The value at ``path`` and its size in values (for the alias budget)."""
        event = self.next()
        position = _pos(event)
        if depth > MAX_DEPTH:
            raise self.fatal(position, path, f"the document nests deeper than {MAX_DEPTH} levels")
        self.value_budget -= 1
        if self.value_budget < 0:
            raise self.fatal(
                position,
                path,
                f"the file holds more than {MAX_VALUES:,} values; split the fleet across files",
            )
        self.values[path] = position
        if isinstance(event, AliasEvent):
            return self.alias(event, position, path)
        if isinstance(event, ScalarEvent):
            value: object = self.scalar(event, position, path)
            size = 1
        elif isinstance(event, SequenceStartEvent):
            self.check_tag(event.tag, "seq", position, path)
            value, size = self.sequence(path, depth)
        elif isinstance(event, MappingStartEvent):
            self.check_tag(event.tag, "map", position, path)
            value, size = self.mapping(path, depth)
        else:
            raise self.fatal(position, path, f"unexpected YAML event {type(event).__name__}")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.anchors[anchor] = _Anchored(value, size)
        return value, size

    def alias(self, event: AliasEvent, position: Position, path: JsonPath) -> tuple[object, int]:
        anchored = self.anchors.get(str(event.anchor))
        if anchored is None:
            self.problem(position, path, f"alias *{event.anchor} has no anchor before it")
            return None, 1
        self.alias_budget -= anchored.size
        if self.alias_budget < 0:
            raise self.fatal(
                position,
                path,
                f"aliases expand to more than {MAX_ALIAS_VALUES:,} values; "
                "use `defaults` instead of anchors for shared settings",
            )
        return anchored.value, anchored.size

    def check_tag(self, tag: str | None, kind: str, position: Position, path: JsonPath) -> None:
        if tag not in (None, "!", f"{_TAG}{kind}"):
            self.problem(position, path, f"the tag {_shown_tag(tag)} is not supported; remove it")

    def sequence(self, path: JsonPath, depth: int) -> tuple[list[object], int]:
        items: list[object] = []
        size = 1
        while not isinstance(self.peek(), SequenceEndEvent):
            value, count = self.node((*path, len(items)), depth + 1)
            items.append(value)
            size += count
        self.next()
        return items, size

    def mapping(self, path: JsonPath, depth: int) -> tuple[dict[str, object], int]:
        result: dict[str, object] = {}
        merges: list[tuple[object, Position]] = []
        size = 1
        while not isinstance(self.peek(), MappingEndEvent):
            key_event = self.next()
            where = _pos(key_event)
            if not isinstance(key_event, ScalarEvent):
                self.problem(where, path, "mapping keys must be plain strings")
                self.skip(key_event, path, depth)
                self.node((*path, "<key>"), depth + 1)
                continue
            key = key_event.value
            if key_event.anchor is not None:
                self.anchors[key_event.anchor] = _Anchored(key, 1)
            if bad := _CONTROL_IN_VALUE.search(key):
                self.problem(where, path, f"the key contains {_char_name(bad.group())}")
            if key == "<<" and key_event.tag is None and key_event.implicit[0]:
                value, count = self.node((*path, key), depth + 1)
                merges.append((value, where))
                size += count
                continue
            if key in result:
                first = self.keys[(*path, key)]
                self.problem(
                    where,
                    (*path, key),
                    f"duplicate key {shown_key(key)!r}; it is already set on line {first[0]}",
                )
                self.node((*path, key, -1), depth + 1)
                continue
            self.keys[(*path, key)] = where
            result[key], count = self.node((*path, key), depth + 1)
            size += count
        self.next()
        for value, where in merges:
            self.merge(result, value, where, path)
        return result, size

    def skip(self, event: Event, path: JsonPath, depth: int) -> None:
        """Consume the rest of a node that started with ``event`` (a complex key)."""
        if isinstance(event, SequenceStartEvent):
            self.sequence((*path, "<key>"), depth + 1)
        elif isinstance(event, MappingStartEvent):
            self.mapping((*path, "<key>"), depth + 1)

    def merge(
        self, result: dict[str, object], value: object, where: Position, path: JsonPath
    ) -> None:
        """YAML merge keys (``<<: *base``): entries not set explicitly come from the merged
        mappings, earlier ones first."""
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                self.problem(where, path, "`<<` merges a mapping or a list of mappings")
                continue
            for key, item in source.items():
                if key not in result:
                    result[key] = item
                    self.keys.setdefault((*path, key), where)
                    self.values.setdefault((*path, key), where)

    def scalar(self, event: ScalarEvent, position: Position, path: JsonPath) -> object:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolve_tag(ScalarNode, event.value, event.implicit)
        if tag == _TIMESTAMP_TAG:
            tag = f"{_TAG}str"  # dates stay text: no field holds a date
        if tag not in _SCALAR_TAGS:
            self.problem(position, path, f"the tag {_shown_tag(tag)} is not supported; remove it")
            return None
        node = ScalarNode(tag, event.value, None, None, event.style)
        try:
            value: object = SafeConstructor.yaml_constructors[tag](self.constructor, node)
        except (ValueError, OverflowError, yaml.YAMLError):
            self.problem(position, path, f"cannot read this value as {tag.removeprefix(_TAG)}")
            return None
        if isinstance(value, str):
            if bad := _CONTROL_IN_VALUE.search(value):
                self.problem(
                    position,
                    path,
                    f"the value contains {_char_name(bad.group())} at character "
                    f"{bad.start() + 1}; control characters are not allowed",
                )
        else:
            self.scalars[path] = event.value
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(position, path, "expected a finite number")
        return value


def _pos(event: Event) -> Position:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _shown_tag(tag: str | None) -> str:
    return str(tag).replace(_TAG, "!!")
