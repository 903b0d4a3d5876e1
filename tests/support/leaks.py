"""Looking for planted secret values in anything pkgrepo shows or writes.

A value counts as found in any of the forms it could travel in: as itself, URL-encoded
(``quote``, ``quote_plus``), JSON-escaped, or base64 (standard and URL-safe) -- including
base64 of the value embedded at any byte offset inside a longer base64 text, and inside
base64 or percent-encoded runs that decode to text containing it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


@dataclass(frozen=True)
class Finding:
    where: str
    """Which output: ``stdout``, ``stderr``, ``log``, or a file name."""
    name: str
    """Which planted value (its description, never the value)."""
    form: str

    def __str__(self) -> str:
        return f"{self.where}: {self.name} ({self.form})"


def _embedded_base64(value: bytes) -> dict[str, str]:
    """The base64 characters that depend on ``value`` alone, for each of the three byte
    alignments it can have inside a longer base64 text."""
    forms: dict[str, str] = {}
    for offset in range(3):
        for alphabet, encode in (
            ("base64", base64.b64encode),
            ("base64url", base64.urlsafe_b64encode),
        ):
            encoded = encode(b"\0" * offset + value).decode().rstrip("=")
            start = (8 * offset + 5) // 6
            end = (8 * (offset + len(value))) // 6
            core = encoded[start:end]
            if len(core) >= 8:
                forms[f"{alphabet} at offset {offset}"] = core
    return forms


def forms_of(value: str) -> dict[str, str]:
    """Form name -> the text the value takes in that form."""
    forms = {
        "plain": value,
        "url-encoded": urllib.parse.quote(value, safe=""),
        "url-encoded (plus)": urllib.parse.quote_plus(value),
        "json-escaped": json.dumps(value)[1:-1],
    }
    forms.update(_embedded_base64(value.encode()))
    return {name: text for name, text in forms.items() if text}


def _decoded_runs(text: str) -> Iterable[tuple[str, str]]:
    """Base64 runs and percent-encoded text, decoded (what else a value could hide in)."""
    if "%" in text:
        yield "percent-decoded", urllib.parse.unquote(text)
    for match in _B64_RUN.finditer(text):
        run = match.group()
        for label, decode in (
            ("base64-decoded", base64.b64decode),
            ("base64url-decoded", base64.urlsafe_b64decode),
        ):
            try:
                raw = decode(run + "=" * (-len(run) % 4))
            except (binascii.Error, ValueError):
                continue
            yield label, raw.decode("utf-8", "replace")


class Scanner:
    """Finds planted values (name -> value) in text."""

    def __init__(self, planted: Mapping[str, str]) -> None:
        self.planted = dict(planted)
        self._forms = {name: forms_of(value) for name, value in planted.items()}

    def scan(self, where: str, data: str | bytes) -> list[Finding]:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        found = self._direct(where, text, "")
        for label, decoded in _decoded_runs(text):
            found += self._direct(where, decoded, f" after {label}")
        return sorted(set(found), key=str)

    def _direct(self, where: str, text: str, suffix: str) -> list[Finding]:
        return [
            Finding(where, name, form + suffix)
            for name, forms in self._forms.items()
            for form, shown in forms.items()
            if shown in text
        ]
