"""How secret values are shown: never as themselves.

Pure. An index URL shows scheme, host and path with credentials as ``****``; a certificate
shows subject, expiry and fingerprint; anything else a salted digest. ``Scrubber`` removes
known secret values, in plain, URL-encoded and base64 forms, from any text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable

from reconciler.model import CERT, EXTRA_INDEX_URLS, INDEX_URL, SecretValue

MASK = "****"
_MIN_SCRUB_LENGTH = 4
_MIN_PIECE_LENGTH = 8


def mask_url(url: str) -> str:
    """``https://user:tok@host/simple?x=1`` becomes ``https://****@host/simple?****``."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:  # also raised for a port that is not a number
        return MASK
    if not parts.scheme or not parts.hostname:
        return MASK
    host = parts.hostname
    if port is not None:
        host = f"{host}:{port}"
    userinfo = f"{MASK}@" if (parts.username or parts.password) else ""
    query = f"?{MASK}" if parts.query else ""
    return f"{parts.scheme}://{userinfo}{host}{parts.path}{query}"


# Bounded repetitions throughout, so masking stays linear on hostile text.
_SCHEME = r"\b[a-z][a-z0-9+.-]{0,31}://"
_URL_USERINFO = re.compile(rf"(?i)({_SCHEME})[^/\s]{{1,512}}@")
_BARE_USERINFO = re.compile(r"(?i)(?<![\w/.:-])[\w.%+-]{1,128}:[^\s@/:]{1,256}@(?=[\w-])")
_URL_QUERY = re.compile(rf"(?i)({_SCHEME}[^\s?#]{{0,2048}})\?[^\s#'\"]{{1,4096}}")
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{4,4096}")
_NAMED = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|authorization|client_secret)"
    r"(['\"]?\s{0,4}[=:]\s{0,4}['\"]?)[^\s'\",;}&]{4,4096}"
)
_DATABRICKS_TOKEN = re.compile(r"\b(dapi|dose|dkea)[0-9a-zA-Z-]{8,256}")


def mask_credentials(text: str) -> str:
    """Mask what looks like a credential in free text (for messages pkgrepo did not write,
    such as an unexpected exception's): URL userinfo and query strings, bearer or basic
    credentials, Databricks tokens. A backstop behind ``Scrubber``, which removes the values
    pkgrepo knows of."""
    text = _URL_USERINFO.sub(rf"\1{MASK}@", text)
    text = _BARE_USERINFO.sub(f"{MASK}@", text)
    text = _URL_QUERY.sub(rf"\1?{MASK}", text)
    text = _BEARER.sub(rf"\1\2{MASK}", text)
    text = _NAMED.sub(rf"\1\2{MASK}", text)
    return _DATABRICKS_TOKEN.sub(MASK, text)


def url_credentials(url: str) -> str:
    """The credential part of a URL (userinfo and query), for comparing without showing."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    return f"{parts.username or ''}:{parts.password or ''}?{parts.query}"


def digest(value: str, salt: str) -> str:
    """A salted HMAC-SHA256 digest: shows whether two values differ, never what they are."""
    mac = hmac.new(salt.encode(), value.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "hmac-sha256:" + mac.hexdigest()


def describe(key: str, value: SecretValue, salt: str) -> str:
    """A one-line, display-safe description of a managed secret value."""
    text = value.plaintext
    if key == INDEX_URL:
        return mask_url(text)
    if key == EXTRA_INDEX_URLS:
        return " ".join(mask_url(u) for u in text.split()) or "(empty)"
    if key == CERT:
        from reconciler import certs  # cryptography is slow to import; only certs need it

        try:
            infos = certs.parse_bundle(text)
        except certs.CertificateError:
            return f"(not a certificate) {digest(text, salt)[:24]}"
        return "; ".join(
            f"{info.subject}, expires {info.not_after:%Y-%m-%d}, sha256 {info.short_fingerprint}"
            for info in infos
        )
    return digest(text, salt)[:24]


def _variants(value: str) -> set[str]:
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        urllib.parse.quote(value),
        base64.b64encode(value.encode()).decode(),
        base64.urlsafe_b64encode(value.encode()).decode(),
        value.encode("unicode_escape").decode("ascii", "replace"),
    }
    try:
        parts = urllib.parse.urlsplit(value)
        if parts.password:
            forms.add(parts.password)
            forms.add(urllib.parse.unquote(parts.password))
        if parts.username and parts.password:
            forms.add(f"{parts.username}:{parts.password}")
    except ValueError:
        pass
    return {form for form in forms if len(form) >= _MIN_SCRUB_LENGTH}


class Scrubber:
    """Replaces every registered secret, in its common encodings, with ``****``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        before = len(self._forms)
        for value in values:
            if value:
                self._forms |= _variants(value)
                for line in value.splitlines():
                    if len(line.strip()) >= 16:  # a PEM body line, a multi-line token
                        self._forms.add(line.strip())
                # A value with white space in it is cut there by messages that quote a
                # URL up to its first blank: its pieces are secret too.
                for piece in value.split():
                    if len(piece) >= _MIN_PIECE_LENGTH and piece != value:
                        self._forms |= _variants(piece)
        if len(self._forms) != before:
            ordered = sorted(self._forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(form) for form in ordered))

    def scrub(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)
