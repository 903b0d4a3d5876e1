"""How secret values are shown: never as themselves.

Pure. What a plan may show of a URL is decided here, so that it is safe by construction:
the scheme and the host always (a host label that looks like a token is ``****``), path
segments only when they look like a path and not like a secret (else ``****``), user info,
query and fragment never (each ``****`` when present). A certificate shows subject, expiry
and fingerprint; any other value a digest keyed with a secret derived from
``PKGREPO_LEDGER_KEY``, or nothing when there is no such key (a digest under a published
salt can be reversed offline for a guessable value). ``Scrubber`` removes known secret
values, in plain, lowercased, URL-encoded and base64 forms, from any text.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable

from reconciler.core.model import CERT, EXTRA_INDEX_URLS, INDEX_URL, SecretValue

MASK = "****"
HIDDEN = "(value hidden: not a certificate, and no PKGREPO_LEDGER_KEY to key a digest)"
_MIN_SCRUB_LENGTH = 4
_MIN_PIECE_LENGTH = 8
_MAX_PIECES = 256
"""Lines and words of one value registered one by one: a private key has about 30 lines;
the service caps a value at 128 KB, and a hostile answer must not make every later line of
output crawl."""
_CERTIFICATE_BLOCK = re.compile(
    r"-----BEGIN (?:TRUSTED )?CERTIFICATE-----"
    r"[A-Za-z0-9+/=\s]{0,65536}?"
    r"-----END (?:TRUSTED )?CERTIFICATE-----"
)


def without_certificates(value: str) -> str:
    """``value`` without its PEM certificate blocks. A certificate is public (pip-cert holds
    the CA bundle that signs the index); what else a bundle holds, a private key above all,
    stays secret. Scrubbing a large bundle line by line would only slow every output line."""
    if "-----BEGIN" not in value:
        return value
    return _CERTIFICATE_BLOCK.sub("", value)


_PATH_LIKE = re.compile(r"[A-Za-z0-9._~+-]*")
_RUN_SEPARATORS = re.compile(r"[._~+-]")
_TOKEN_PREFIXES = (
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "gldt-",
    "akcp",
    "cmvm",
    "dapi",
    "eyj",
    "xox",
    "npm_",
    "pypi-ag",
)
"""Prefixes of well-known token formats (GitHub, GitLab, Artifactory API keys and reference
tokens, Databricks, JWTs, Slack, npm, PyPI)."""
_MAX_SHOWN_PART = 64
_MIN_PREFIXED_TOKEN = 16
"""Real tokens of the prefixed formats are longer; ``dapi-docs`` or ``npm_mirror`` are
names."""
_SHORTEST_TOKEN_RUN = 12
"""The shortest run of letters and digits that ``looks_secret`` can call a token (the
threshold of its mixed-case rule; its other rules need longer runs)."""


def looks_secret(part: str) -> bool:
    """Whether a host label or path segment may be a token rather than a name.

    Errs on the side of hiding: anything with characters a path name would not use
    (``%``, ``:``, ``=``, ...), a known token prefix, or a long run of mixed letters and
    digits. Names such as ``api``, ``pypi-remote``, ``whl``, ``adb-1234567890123456``
    pass."""
    if not part:
        return False
    if len(part) > _MAX_SHOWN_PART or not _PATH_LIKE.fullmatch(part):
        return True
    if len(part) >= _MIN_PREFIXED_TOKEN and part.lower().startswith(_TOKEN_PREFIXES):
        return True
    for run in _RUN_SEPARATORS.split(part):
        if len(run) < _SHORTEST_TOKEN_RUN:  # no rule below holds for it: a name's word
            continue
        digits = sum(c.isdigit() for c in run)
        letters = sum(c.isalpha() for c in run)
        mixed_case = any(c.isupper() for c in run) and any(c.islower() for c in run)
        if len(run) >= 24 and letters and (digits or mixed_case):
            return True
        if len(run) >= _SHORTEST_TOKEN_RUN and digits >= 2 and mixed_case:
            return True
        if len(run) >= 16 and digits >= 3 and letters >= 3:
            return True
    return False


def _shown_host(host: str) -> str:
    return ".".join(MASK if looks_secret(label) else label for label in host.split("."))


def _shown_path(path: str) -> str:
    return "/".join(MASK if looks_secret(segment) else segment for segment in path.split("/"))


def mask_url(url: str) -> str:
    """``https://user:tok@host/api/pypi/<TOKEN>/simple?x=1#f`` becomes
    ``https://****@host/api/pypi/****/simple?****#****``. The host is lowercased (hosts are
    case-insensitive), so compare shown URLs as they are."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:  # also raised for a port that is not a number
        return MASK
    if not parts.scheme or not parts.hostname:
        return MASK
    host = _shown_host(parts.hostname)
    if port is not None:
        host = f"{host}:{port}"
    userinfo = f"{MASK}@" if "@" in parts.netloc else ""
    query = f"?{MASK}" if parts.query or url.split("#", 1)[0].endswith("?") else ""
    fragment = f"#{MASK}" if parts.fragment or "#" in url else ""
    return f"{parts.scheme.lower()}://{userinfo}{host}{_shown_path(parts.path)}{query}{fragment}"


def url_secrets(url: str) -> set[str]:
    """Every part of a URL that may be a secret, for the scrubber: user info, query and its
    values, fragment, and host labels and path segments that look like tokens."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return set()
    found = {parts.query, parts.fragment}
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        found |= {userinfo, password if colon else user}
    for _, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        found.add(value)
    host = parts.netloc.rpartition("@")[2].rpartition(":")[0] or parts.netloc.rpartition("@")[2]
    for piece in (*host.split("."), *parts.path.split("/")):
        if looks_secret(piece):
            found.add(piece)
            found.add(urllib.parse.unquote(piece))
    return {f for f in found if f}


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


def digest(value: str, key: str) -> str:
    """A keyed HMAC-SHA256 digest: shows whether two values differ, never what they are.
    ``key`` must be secret (see ``keys``): a digest under a public key can be reversed by
    guessing."""
    mac = hmac.new(key.encode(), value.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "hmac-sha256:" + mac.hexdigest()


@functools.lru_cache(maxsize=256)
def describe(key: str, value: SecretValue, digest_key: str | None) -> str:
    """A one-line, display-safe description of a managed secret value. ``digest_key`` is
    the secret display key (``keys.derive(ledger key, keys.DISPLAY_DIGEST)``); without one,
    a value that is neither a URL nor a certificate is not described at all.

    Kept for the last few hundred values: a fleet declares the same few values for
    thousands of workspaces, and a certificate bundle is parsed once, not per workspace."""
    text = value.plaintext
    if key == INDEX_URL:
        return mask_url(text)
    if key == EXTRA_INDEX_URLS:
        return " ".join(mask_url(u) for u in text.split()) or "(empty)"
    shown = digest(text, digest_key)[:24] if digest_key else HIDDEN
    if key == CERT:
        from reconciler.core import certs  # cryptography is slow to import; only certs need it

        try:
            infos = certs.parse_bundle(text)
        except certs.CertificateError:
            return f"(not a certificate) {shown}"
        return "; ".join(
            f"{info.subject}, expires {info.not_after:%Y-%m-%d}, sha256 {info.short_fingerprint}"
            for info in infos
        )
    return shown


def _variants(value: str) -> set[str]:
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        urllib.parse.quote(value),
        base64.b64encode(value.encode()).decode(),
        base64.urlsafe_b64encode(value.encode()).decode(),
        base64.b64encode(value.lower().encode()).decode(),
        value.encode("unicode_escape").decode("ascii", "replace"),
    }
    return {form for form in forms if len(form) >= _MIN_SCRUB_LENGTH}


def _url_part_variants(value: str) -> set[str]:
    """The secret-looking parts of every URL in ``value`` (a token in a path or host label
    of a URL that came whole from the environment), in plain and encoded forms."""
    forms: set[str] = set()
    for url in value.split():
        if "://" in url:
            for part in url_secrets(url):
                forms |= _variants(part) | _variants(urllib.parse.unquote(part))
    return forms


class Scrubber:
    """Replaces every registered secret, in its common encodings and in any letter case
    (hosts are lowercased on the way to a plan), with ``****``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._stale = False
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        before = len(self._forms)
        for given in values:
            value = without_certificates(given)
            if value.strip():
                self._forms |= _variants(value) | _url_part_variants(value)
                # A value with white space in it is cut there by messages that quote a
                # URL up to its first blank: its pieces are secret too.
                for piece in value.split()[:_MAX_PIECES]:
                    if len(piece) >= _MIN_PIECE_LENGTH and piece != value:
                        self._forms |= _variants(piece)
                for line in value.splitlines()[:_MAX_PIECES]:
                    if len(line.strip()) >= 16:  # a private key's body, a multi-line token
                        self._forms.add(line.strip())
        if len(self._forms) != before:
            self._stale = True  # compiled at the next scrub: many adds, one compile

    def scrub(self, text: str) -> str:
        if not text:
            return text
        if self._stale:
            ordered = sorted(self._forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(form) for form in ordered), re.IGNORECASE)
            self._stale = False
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)
