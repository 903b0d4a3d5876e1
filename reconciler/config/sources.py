"""Resolving a value: a literal, ``${env:NAME}`` placeholders, ``{env: NAME}`` or ``{file: PATH}``.

Resolution happens once, in memory, when the file is loaded; nothing resolved is written
anywhere. Whatever comes from the environment or a file is treated as secret (the caller
registers it with the output scrubber), and the messages raised here name the variable or the
file, never the value: a URL is shown through ``redact.mask_url`` at most.

Values are checked after resolution, not only as written: a URL from an environment variable
can carry a line break just as well as one typed into the file, and either would split the
space-separated ``pip-extra-index-urls`` or break pip's configuration.
"""

from __future__ import annotations

import enum
import os
import re
import stat
import unicodedata
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.core.policy import Source
from reconciler.core.redact import mask_url

FILE_READ_LIMIT = 1024 * 1024
"""Files larger than this are refused unread; up to it, ``value-size`` reports the size."""

_PLACEHOLDER = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_BAD_URL_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Zs"}


FILE_ROOTS_ENV = "PKGREPO_FILE_ROOTS"
"""Folders besides the desired-state file's own that ``{file: ...}`` may read from."""


class SourceKind(enum.Enum):
    """What a value is, which decides how it is checked."""

    URL = "url"
    CERT = "cert"
    SECRET = "secret"
    """A token or client secret: secret even when written literally."""
    TEXT = "text"


_WHAT = {
    SourceKind.URL: "URL",
    SourceKind.CERT: "PEM text",
    SourceKind.SECRET: "token",
    SourceKind.TEXT: "value",
}


class SourceError(Exception):
    """A value cannot be resolved or is malformed. The message is safe to show; ``secrets``
    holds what was read anyway, so the caller can still keep it from being printed."""

    def __init__(
        self, message: str, secrets: tuple[str, ...] = (), *, unset: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.secrets = secrets
        self.unset = unset
        """The environment variables that are missing (not set, or set empty), when that is
        the only thing wrong: offline validation reports these as notes, not errors."""


@dataclass(frozen=True)
class Resolved:
    value: str = field(repr=False)
    source: Source
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Values to register with the scrubber: the resolved value and the pieces it came from."""
    template: str | None = field(default=None, repr=False)
    """The literal text as written, placeholders unexpanded (for policy checks)."""


def source_of(raw: object) -> Source:
    """How a value is written, without resolving it."""
    if isinstance(raw, dict) and "env" in raw:
        return Source.ENV
    if isinstance(raw, dict) and "file" in raw:
        return Source.FILE
    if isinstance(raw, str) and "${" in raw:
        return Source.PLACEHOLDER
    return Source.LITERAL


def resolve(raw: object, kind: SourceKind, *, base_dir: Path, env: Mapping[str, str]) -> Resolved:
    """Resolve ``raw`` (already schema-checked) and check it for its ``kind``."""
    if isinstance(raw, dict) and "env" in raw:
        name = str(raw["env"])
        resolved = Resolved(_env(name, env), Source.ENV)
        origin = f"environment variable {name}"
    elif isinstance(raw, dict) and "file" in raw:
        resolved = Resolved(_file(str(raw["file"]), base_dir, kind, env), Source.FILE)
        origin = f"file {raw['file']}"
    elif isinstance(raw, str) and "${" in raw:
        resolved = _placeholders(raw, env)
        origin = "the value with its placeholders expanded"
    elif isinstance(raw, str):
        resolved = Resolved(raw, Source.LITERAL, template=raw)
        origin = "the value"
    else:
        raise SourceError("expected a string, {env: NAME} or {file: PATH}")
    secrets = _secrets(resolved, kind)
    try:
        _check(resolved.value, kind, origin)
    except SourceError as exc:
        if resolved.source is Source.FILE:
            # Never describe what a file holds: it may be any file, a secret one included.
            message = f"{origin} does not hold a valid {_WHAT[kind]} (its content is not shown)"
            raise SourceError(message, secrets) from None
        raise SourceError(str(exc), secrets) from None
    return Resolved(resolved.value, resolved.source, secrets, resolved.template)


def _secrets(resolved: Resolved, kind: SourceKind) -> tuple[str, ...]:
    if resolved.source is not Source.LITERAL:
        return (resolved.value, *resolved.secrets)
    if kind is SourceKind.SECRET:
        return (resolved.value,)
    if kind is SourceKind.URL:
        try:
            parts = urllib.parse.urlsplit(resolved.value)
            if parts.username or parts.password or parts.query:
                return (resolved.value,)
        except ValueError:
            return (resolved.value,)
    return ()


def _env(name: str, env: Mapping[str, str]) -> str:
    if name not in env:
        raise SourceError(f"environment variable {name} is not set", unset=(name,))
    if env[name] == "":
        raise SourceError(f"environment variable {name} is empty", unset=(name,))
    return env[name]


def _placeholders(raw: str, env: Mapping[str, str]) -> Resolved:
    if "${" in _PLACEHOLDER.sub("", raw):
        raise SourceError("malformed placeholder; write ${env:NAME} (letters, digits and _)")
    names = list(dict.fromkeys(_PLACEHOLDER.findall(raw)))
    missing = [name for name in names if name not in env]
    empty = [name for name in names if name in env and env[name] == ""]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        verb = "are" if len(missing) > 1 else "is"
        message = f"environment variable{plural} {', '.join(missing)} {verb} not set"
        raise SourceError(message, unset=(*missing, *empty))
    if empty:
        raise SourceError(f"environment variable {', '.join(empty)} is empty", unset=tuple(empty))
    value = _PLACEHOLDER.sub(lambda m: env[m.group(1)], raw)
    return Resolved(value, Source.PLACEHOLDER, tuple(env[n] for n in names), template=raw)


def _roots(base_dir: Path, env: Mapping[str, str]) -> list[Path]:
    extra = [Path(p) for p in env.get(FILE_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    roots = []
    for root in (base_dir, *extra):
        try:
            roots.append(root.resolve(strict=True))
        except (OSError, RuntimeError):
            continue  # a root that does not exist confines to nothing
    return roots


def _file(name: str, base_dir: Path, kind: SourceKind, env: Mapping[str, str]) -> str:
    try:
        path = (base_dir / name).resolve(strict=True)
    except ValueError:  # a NUL byte in the name
        raise SourceError("the file name holds a character no path can") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "link loop"
        raise SourceError(f"cannot read file {name} (looked in {base_dir}): {reason}") from None
    if not any(path.is_relative_to(root) for root in _roots(base_dir, env)):
        raise SourceError(
            f"file {name} is outside {base_dir}, the desired-state file's folder (links "
            f"followed); pkgrepo reads files only from there, or from the folders listed in "
            f"{FILE_ROOTS_ENV} (separated by {os.pathsep!r})"
        )
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SourceError(f"file {name} is not a regular file")
        if info.st_size > FILE_READ_LIMIT:
            raise SourceError(
                f"file {name} is {info.st_size:,} bytes; a secret value holds at most 128 KB"
            )
        with path.open("rb") as stream:
            data = stream.read(FILE_READ_LIMIT + 1)
    except OSError as exc:
        raise SourceError(
            f"cannot read file {name} (looked in {base_dir}): {exc.strerror or type(exc).__name__}"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError(
            f"file {name} does not hold a valid {_WHAT[kind]} (its content is not shown)"
        ) from None
    if kind is SourceKind.CERT:
        return text
    return text.removesuffix("\n").removesuffix("\r")


def _is_blank(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in _BAD_URL_CATEGORIES


def blank_problem(url: str) -> str | None:
    """Where ``url`` holds white space, a line break or a control character, or ``None``."""
    for index, char in enumerate(url, start=1):
        if _is_blank(char):
            what = (
                "a line break"
                if char in _LINE_BREAKS
                else "white space"
                if char.isspace() or unicodedata.category(char) == "Zs"
                else "a control character"
            )
            return (
                f"contains {what} (U+{ord(char):04X}) at character {index}; a URL may hold "
                "no white space or control characters"
            )
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an index or workspace URL, or ``None``. Shows no part of it."""
    if blank := blank_problem(url):
        return blank
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return "is not an absolute http(s) URL (e.g. https://pypi.example.com/simple)"
    return None


def _check(value: str, kind: SourceKind, origin: str) -> None:
    if kind is SourceKind.URL:
        problem = url_problem(value)
        if problem:
            # Show only what comes before a bad character: after a line break could be
            # anything, another secret included.
            shown = next((value[:i] for i, c in enumerate(value) if _is_blank(c)), value)
            raise SourceError(f"{origin} {problem}: {mask_url(shown)}")
    elif kind is SourceKind.CERT:
        if bad := _CONTROL.search(value):
            raise SourceError(f"{origin} contains control character U+{ord(bad.group()):04X}")
    else:
        for index, char in enumerate(value, start=1):
            if _is_blank(char):
                raise SourceError(
                    f"{origin} contains white space or a control character "
                    f"(U+{ord(char):04X}) at character {index}"
                )
