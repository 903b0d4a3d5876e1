"""Built-in policy checks: rules a desired state should follow before anyone plans it.

Pure (no I/O). A check sees the resolved ``DesiredState`` and, when the state came from a
file, the ``Provenance`` the loader recorded: where each value is written and whether it was a
literal or came from ``env``/``file``. Only that tells "a token typed into the file" from "a
token taken from the environment", which is the difference ``no-literal-credentials`` is about.

Each check has a stable id, a severity, and messages that say how to fix the finding. A
workspace may waive a check with a reason; a waiver naming an unknown check is itself an error
(it would otherwise silently waive nothing). Messages never show a secret: URLs go through
``redact.mask_url`` and certificates are described by subject and dates.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from reconciler.core import certs, diff
from reconciler.core.model import (
    CERT,
    EXTRA_INDEX_URLS,
    INDEX_URL,
    MAX_VALUE_BYTES,
    AclsMode,
    DesiredState,
    Ensure,
    Permission,
    WorkspaceSpec,
    frozen_map,
)
from reconciler.core.redact import looks_secret, mask_url

EXPIRY_WARNING_DAYS = 30
_PLACEHOLDER = re.compile(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*\}")
_MARKER = "\ue000"  # a private-use character: never in a real URL
_SECRET_QUERY_PARAM = re.compile(r"token|pass|secret|key|auth|sig|credential", re.IGNORECASE)
_FIELD_OF_KEY = {
    INDEX_URL: "repositories.index_url",
    EXTRA_INDEX_URLS: "repositories.extra_index_urls",
    CERT: "repositories.cert",
}


class Level(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


class Source(enum.Enum):
    """Where a value came from in the desired-state file."""

    LITERAL = "literal"
    ENV = "env"
    FILE = "file"
    PLACEHOLDER = "placeholder"
    """A literal string with ``${env:NAME}`` placeholders."""


@dataclass(frozen=True)
class FieldFact:
    """Where one value of one workspace is written, and how."""

    path: str
    """The JSON path where it is written: ``defaults.…`` when inherited from the defaults."""
    line: int
    column: int
    source: Source = Source.LITERAL
    template: str | None = field(default=None, repr=False)
    """For literal and placeholder strings, the text as written (placeholders unexpanded), so
    a check can see which part of a URL was typed into the file. Never displayed."""


@dataclass(frozen=True)
class Provenance:
    """What the loader knows about each workspace's values beyond the values themselves.

    ``fields`` maps a workspace name to field keys: ``host``, ``auth.token``,
    ``auth.client_secret``, ``repositories.index_url``, ``repositories.extra_index_urls``,
    ``repositories.extra_index_urls[N]``, ``repositories.cert``, ``acls``, ``acls.<principal>``,
    ``waivers.<check>``, and ``""`` for the workspace entry itself.
    """

    file: str
    fields: Mapping[str, Mapping[str, FieldFact]] = field(default_factory=frozen_map)

    def fact(self, workspace: str, key: str) -> FieldFact | None:
        return self.fields.get(workspace, {}).get(key)


@dataclass(frozen=True)
class Check:
    id: str
    severity: Level
    summary: str


CHECKS: tuple[Check, ...] = (
    Check("https-only", Level.ERROR, "index URLs use https (http only with a waiver)"),
    Check(
        "no-literal-credentials",
        Level.ERROR,
        "credentials come from env or file, never typed into the file",
    ),
    Check("users-read-only", Level.ERROR, "the `users` group gets at most READ"),
    Check("admin-manage", Level.ERROR, "`admins` keeps MANAGE on the scope (exact ACLs)"),
    Check("cert-valid", Level.ERROR, "pip-cert holds one or more X.509 PEM certificates"),
    Check("cert-expired", Level.ERROR, "no certificate in pip-cert has expired"),
    Check("cert-expiring", Level.WARNING, "no certificate expires within 30 days"),
    Check("extra-urls-unique", Level.ERROR, "extra index URLs hold no duplicates"),
    Check(
        "extra-urls-whitespace",
        Level.ERROR,
        "index URLs hold no white space or control characters",
    ),
    Check("value-size", Level.ERROR, "each secret value fits the service's 128 KB limit"),
    Check("hosts-distinct", Level.ERROR, "no two workspaces share a host"),
    Check(
        "public-pypi-extra",
        Level.WARNING,
        "public PyPI is not an extra index next to a private index_url (dependency confusion)",
    ),
    Check(
        "cert-validates-index",
        Level.ERROR,
        "pip-cert validates the certificate of the index it is declared for (a network check: "
        "verify, and the verify step of plan and apply)",
    ),
)
CHECK_IDS: frozenset[str] = frozenset(c.id for c in CHECKS)
WAIVER_UNKNOWN = "waiver-unknown"
"""Not a check of its own: reported for a waiver naming a check that does not exist."""
_SEVERITY = {c.id: c.severity for c in CHECKS} | {WAIVER_UNKNOWN: Level.ERROR}


@dataclass(frozen=True)
class Finding:
    """One policy finding, located where the offending value is written."""

    check: str
    severity: Level
    workspace: str
    path: str
    message: str
    line: int = 0
    column: int = 0
    """1-based; 0 when the state was not loaded from a file."""

    @property
    def sort_key(self) -> tuple[int, int, str]:
        """Where it is written; a stable sort keeps the check order for the rest."""
        return (self.line or 1 << 30, self.column, self.workspace)

    def format(self, file: str) -> str:
        """``FILE:LINE:COL: severity [check] workspace: message``."""
        where = f"{file}:{self.line}:{self.column}" if self.line else file
        return f"{where}: {self.severity.value} [{self.check}] {self.workspace}: {self.message}"


class _Context:
    """Builds findings for one workspace, locating them through the provenance."""

    def __init__(self, ws: WorkspaceSpec, provenance: Provenance | None) -> None:
        self.ws = ws
        self.provenance = provenance

    def fact(self, key: str) -> FieldFact | None:
        return self.provenance.fact(self.ws.name, key) if self.provenance else None

    def finding(self, check: str, key: str, message: str) -> Finding:
        fact = self.fact(key) or self.fact(key.partition("[")[0]) or self.fact("")
        if fact is None:
            path = f"workspaces.{self.ws.name}" + (f".{key}" if key else "")
            return Finding(check, _SEVERITY[check], self.ws.name, path, message)
        return Finding(
            check, _SEVERITY[check], self.ws.name, fact.path, message, fact.line, fact.column
        )


def evaluate(
    state: DesiredState, provenance: Provenance | None = None, *, now: dt.datetime
) -> tuple[Finding, ...]:
    """Every finding not waived, sorted by where it is written. ``now`` is timezone-aware."""
    found: list[Finding] = []
    cert_cache: dict[str, tuple[certs.CertInfo, ...] | str] = {}
    for ws in _specs(state):
        ctx = _Context(ws, provenance)
        checks: list[Callable[[_Context], Iterator[Finding]]] = [_waivers]
        if ws.ensure is Ensure.PRESENT:
            checks += [_urls, _literal_credentials, _acls, _value_size, _public_pypi_extra]
            checks.append(lambda c: _cert(c, now, cert_cache))
        for run in checks:
            found += [f for f in run(ctx) if f.check not in ws.waivers]
    found += _hosts_distinct(state, provenance)
    return tuple(sorted(found, key=lambda f: f.sort_key))


def _specs(state: DesiredState) -> tuple[WorkspaceSpec, ...]:
    """The workspaces, and with ``discover:`` what discovered workspaces are made from (the
    defaults with the account's auth, and each entry that extends one): checked offline."""
    if state.discovery is None:
        return state.workspaces
    extends = tuple(entry.spec for entry in state.discovery.extends.values())
    return (*state.workspaces, state.discovery.template, *extends)


def has_errors(findings: tuple[Finding, ...]) -> bool:
    return any(f.severity is Level.ERROR for f in findings)


MAX_NAMED = 5
"""How many workspaces a grouped finding names before counting the rest."""


def grouped(findings: Iterable[Finding]) -> list[tuple[Finding, tuple[str, ...]]]:
    """Findings that differ only in their workspace, as one: a mistake written once in
    ``defaults`` is merged into every workspace and found in each, and is reported once
    with the workspaces it affects. Order is kept (by the first of each group)."""
    groups: dict[tuple[object, ...], tuple[Finding, list[str]]] = {}
    for finding in findings:
        key = (
            finding.line,
            finding.column,
            finding.path,
            finding.check,
            finding.severity,
            finding.message,
        )
        if key in groups:
            groups[key][1].append(finding.workspace)
        else:
            groups[key] = (finding, [finding.workspace])
    return [(first, tuple(names)) for first, names in groups.values()]


def format_grouped(file: str, finding: Finding, workspaces: tuple[str, ...]) -> str:
    """``FILE:LINE:COL: severity [check] dev-a, dev-b and 38 more: message``."""
    if len(workspaces) <= 1:
        return finding.format(file)
    named = ", ".join(workspaces[:MAX_NAMED])
    more = len(workspaces) - MAX_NAMED
    who = f"{named} and {more} more" if more > 0 else named
    where = f"{file}:{finding.line}:{finding.column}" if finding.line else file
    return (
        f"{where}: {finding.severity.value} [{finding.check}] "
        f"{len(workspaces)} workspaces ({who}): {finding.message}"
    )


def _waivers(ctx: _Context) -> Iterator[Finding]:
    for check in ctx.ws.waivers:
        if check not in CHECK_IDS:
            known = ", ".join(sorted(CHECK_IDS))
            yield ctx.finding(
                WAIVER_UNKNOWN,
                f"waivers.{check}",
                f"waiver for unknown check {check!r}; known checks: {known}",
            )


def _extra_urls(ws: WorkspaceSpec) -> list[str]:
    value = ws.secrets.get(EXTRA_INDEX_URLS)
    return value.plaintext.split() if value else []


def _url_fields(ws: WorkspaceSpec) -> Iterator[tuple[str, str]]:
    """(field key, URL) for the index URL and each extra index URL."""
    index = ws.secrets.get(INDEX_URL)
    if index is not None:
        yield "repositories.index_url", index.plaintext
    for i, url in enumerate(_extra_urls(ws)):
        yield f"repositories.extra_index_urls[{i}]", url


def _bad_char(text: str) -> str | None:
    for ch in text:
        if ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp", "Zs"}:
            return f"U+{ord(ch):04X}"
    return None


def _urls(ctx: _Context) -> Iterator[Finding]:
    """https-only, extra-urls-whitespace, extra-urls-unique."""
    index = ctx.ws.secrets.get(INDEX_URL)
    if index is not None and (char := _bad_char(index.plaintext)):
        yield ctx.finding(
            "extra-urls-whitespace",
            "repositories.index_url",
            f"the index URL contains {char} (white space or a control character); pip would "
            "split or reject it. Remove it from the value",
        )
    extra = ctx.ws.secrets.get(EXTRA_INDEX_URLS)
    if extra is not None:
        text = extra.plaintext
        if text != " ".join(text.split()) or _bad_char(text.replace(" ", "")):
            yield ctx.finding(
                "extra-urls-whitespace",
                "repositories.extra_index_urls",
                "pip-extra-index-urls must be URLs separated by single spaces, with no other "
                "white space or control characters; list each URL as its own item",
            )
    seen: dict[str, int] = {}
    for i, url in enumerate(_extra_urls(ctx.ws)):
        key = f"repositories.extra_index_urls[{i}]"
        normal = url.rstrip("/")
        if normal in seen:
            yield ctx.finding(
                "extra-urls-unique",
                key,
                f"{mask_url(url)} repeats extra_index_urls[{seen[normal]}]; remove the duplicate",
            )
        seen.setdefault(normal, i)
    for key, url in _url_fields(ctx.ws):
        scheme = urllib.parse.urlsplit(url).scheme.lower() if "://" in url else ""
        if scheme != "https":
            shown = mask_url(url)
            yield ctx.finding(
                "https-only",
                key,
                f"{shown} does not use https, so packages (and any credentials) travel in "
                "clear text; use https, or waive with "
                "`waivers: [{check: https-only, reason: ...}]`",
            )


PUBLIC_PYPI_HOSTS = frozenset({"pypi.org", "www.pypi.org", "pypi.python.org"})


def _host_of(url: str) -> str:
    try:
        return (urllib.parse.urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def _public_pypi_extra(ctx: _Context) -> Iterator[Finding]:
    """public-pypi-extra: pip merges every index and takes the highest version, so a public
    PyPI next to a private index lets anyone publish a higher version of a private name."""
    index = ctx.ws.secrets.get(INDEX_URL)
    if index is None or _host_of(index.plaintext) in PUBLIC_PYPI_HOSTS:
        return
    for i, url in enumerate(_extra_urls(ctx.ws)):
        if _host_of(url) in PUBLIC_PYPI_HOSTS:
            yield ctx.finding(
                "public-pypi-extra",
                f"repositories.extra_index_urls[{i}]",
                f"{mask_url(url)} is public PyPI next to the private index "
                f"{mask_url(index.plaintext)}: pip merges all indexes and installs the highest "
                "version, so anyone can publish a higher version of a private package name "
                "there (dependency confusion). Proxy PyPI through the private index instead, or "
                "waive with a reason",
            )


def _literal_secret_in_url(template: str) -> bool:
    """Whether the credential part of a URL template holds text typed into the file.

    Placeholders become a marker first: their own ``:`` would split the user info wrongly."""
    marked = _PLACEHOLDER.sub(_MARKER, template)
    try:
        parts = urllib.parse.urlsplit(marked)
    except ValueError:
        return False
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        secret = password if colon else user
        if secret.replace(_MARKER, ""):
            return True
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_QUERY_PARAM.search(name) and value.replace(_MARKER, ""):
            return True
    # A token in the path (Artifactory: /api/pypi/<TOKEN>/simple), a host label or the
    # fragment, typed into the file rather than taken from a placeholder.
    pieces = (*(parts.hostname or "").split("."), *parts.path.split("/"), parts.fragment)
    return any(looks_secret(text) for piece in pieces for text in piece.split(_MARKER))


def _literal_credentials(ctx: _Context) -> Iterator[Finding]:
    """no-literal-credentials: needs the provenance; without it nothing is known."""
    for key, url in _url_fields(ctx.ws):
        fact = ctx.fact(key)
        if fact is None or fact.source not in {Source.LITERAL, Source.PLACEHOLDER}:
            continue
        if _literal_secret_in_url(fact.template if fact.template is not None else url):
            yield ctx.finding(
                "no-literal-credentials",
                key,
                f"{mask_url(url)} has credentials written in the file; take them from the "
                "environment instead, e.g. "
                "`https://${env:INDEX_USER}:${env:INDEX_TOKEN}@host/simple` or `{env: NAME}`",
            )
    for key in ("auth.token", "auth.client_secret"):
        fact = ctx.fact(key)
        if fact is not None and fact.source is Source.LITERAL:
            yield ctx.finding(
                "no-literal-credentials",
                key,
                f"{key} is written in the file; use `{{env: NAME}}` or `{{file: PATH}}`",
            )


def _acls(ctx: _Context) -> Iterator[Finding]:
    """users-read-only and admin-manage."""
    acls = ctx.ws.acls
    # Whether the service folds the case of principal names is not documented; `Users` is
    # held to the rule `users` is held to, so a spelling cannot slip past it.
    for principal, level in acls.items():
        if principal.lower() == "users" and level.rank > Permission.READ.rank:
            yield ctx.finding(
                "users-read-only",
                f"acls.{principal}",
                f"`{principal}` gets {level.value}, so every user of the workspace could "
                "change where packages come from; set `users: READ`",
            )
    if ctx.ws.acls_mode is AclsMode.EXACT and acls.get("admins") is not Permission.MANAGE:
        yield ctx.finding(
            "admin-manage",
            "acls.admins" if "admins" in acls else "acls",
            "the ACLs are exact and do not give `admins` MANAGE, so applying them would take "
            "the scope away from workspace admins; add `admins: MANAGE` (or set "
            "`acls_mode: additive`)",
        )


def _cert(
    ctx: _Context, now: dt.datetime, cache: dict[str, tuple[certs.CertInfo, ...] | str]
) -> Iterator[Finding]:
    """cert-valid, cert-expired, cert-expiring."""
    value = ctx.ws.secrets.get(CERT)
    if value is None:
        return
    key = "repositories.cert"
    text = value.plaintext
    if text not in cache:
        try:
            cache[text] = certs.parse_bundle(text)
        except certs.CertificateError as exc:
            cache[text] = str(exc)
    parsed = cache[text]
    if isinstance(parsed, str):
        yield ctx.finding(
            "cert-valid",
            key,
            f"pip-cert is not a PEM certificate bundle: {parsed}; give the CA certificate(s) "
            "in PEM form",
        )
        return
    if "PRIVATE KEY-----" in text:
        yield ctx.finding(
            "cert-valid",
            key,
            "pip-cert holds a private key, which every reader of the scope could read; keep "
            "only the CA certificate(s)",
        )
    soon = now + dt.timedelta(days=EXPIRY_WARNING_DAYS)
    for number, info in enumerate(parsed, start=1):
        label = f"certificate {number} ({info.subject})"
        if info.not_after <= now:
            yield ctx.finding(
                "cert-expired",
                key,
                f"{label} expired on {info.not_after:%Y-%m-%d}; pip would refuse the index. "
                "Replace it with the current CA certificate",
            )
        elif info.not_after <= soon:
            days = (info.not_after - now).days
            yield ctx.finding(
                "cert-expiring",
                key,
                f"{label} expires on {info.not_after:%Y-%m-%d}, in {days} days; add the "
                "renewed certificate to the bundle",
            )


def expiring_certificates(
    specs: Iterable[WorkspaceSpec], *, now: dt.datetime
) -> dict[str, list[str]]:
    """Per workspace, the ``cert-expiring`` findings on its pip-cert (not waived), as the
    warnings ``drift`` reports for it."""
    state = DesiredState(source="", workspaces=tuple(specs))
    found: dict[str, list[str]] = {}
    for finding in evaluate(state, now=now):
        if finding.check == "cert-expiring":
            found.setdefault(finding.workspace, []).append(f"pip-cert: {finding.message}")
    return found


def _value_size(ctx: _Context) -> Iterator[Finding]:
    for key, value in ctx.ws.secrets.items():
        size = len(value.plaintext.encode("utf-8", "surrogatepass"))
        if size > MAX_VALUE_BYTES:
            yield ctx.finding(
                "value-size",
                _FIELD_OF_KEY.get(key, f"secrets.{key}"),
                f"{key} is {size:,} bytes; the service stores at most {MAX_VALUE_BYTES:,} "
                "bytes per secret",
            )


def _normal_host(host: str) -> str:
    """A workspace host as the service sees it: scheme and host case-insensitive, a default
    port (``:443``) the same as none, trailing slashes ignored (``diff.normal_url``)."""
    return diff.normal_url(host).rstrip("/")


def _hosts_distinct(state: DesiredState, provenance: Provenance | None) -> Iterator[Finding]:
    first: dict[str, str] = {}
    for ws in state.workspaces:
        host = _normal_host(ws.host)
        if host in first and "hosts-distinct" not in ws.waivers:
            yield _Context(ws, provenance).finding(
                "hosts-distinct",
                "host",
                f"workspace {first[host]!r} has the same host; two entries would fight over "
                "one scope. Remove one of them",
            )
        first.setdefault(host, ws.name)
