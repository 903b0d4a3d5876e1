"""Export: write the desired-state YAML that reproduces live workspaces (pure).

The way in for a team that set its workspaces up by hand: read them once, get a file that
``pkgrepo plan`` shows as "no changes", commit it. The document is built here from what the
adapter read; the command does the reading and the writing.

A file in Git must never hold a secret, so credentials inside URLs (user info and query
values) become ``${env:NAME}`` placeholders and only the variable names are reported; the
values travel in ``Export.variables`` for the caller to register as secrets (and for tests).
A certificate becomes a file beside the YAML. A value ``secrets/get`` would not give
(outside a notebook or job) becomes ``{env: <WS>_PIP_INDEX_URL}`` with a comment saying why.
What the live workspace holds that policy would refuse (``users: WRITE``, an http index) is
reproduced as found, with a waiver whose reason says it was exported that way: the file
validates, and the review shows what to fix.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.core import certs, policy
from reconciler.core.model import (
    CERT,
    EXTRA_INDEX_URLS,
    INDEX_URL,
    MANAGED_KEYS,
    MARKER_KEY,
    AclsMode,
    Backend,
    DesiredState,
    Ensure,
    LiveState,
    Permission,
    SecretValue,
    WorkspaceSpec,
    frozen_map,
)
from reconciler.core.redact import looks_secret
from reconciler.render._common import clean

CERT_DIR = "certs"
_FIELD = {INDEX_URL: "index_url", EXTRA_INDEX_URLS: "extra_index_urls", CERT: "cert"}
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@/:+=?~-]*$")
_NOT_PLAIN = re.compile(
    r"^(?:[-+]?[0-9._]+(?:[eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o[0-7]+|y|n|yes|no|true|false|on"
    r"|off|null)$",
    re.IGNORECASE,
)
_PRINCIPAL = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class ExportTarget:
    """A workspace to export, as the user named it: host and auth are written as given
    (``auth`` is the YAML block, e.g. ``{"token": {"env": "PROD_TOKEN"}}``, never a
    resolved secret)."""

    name: str
    host: str
    auth: Mapping[str, Any] | None = None
    labels: Mapping[str, str] = field(default_factory=frozen_map)
    wave: int = 0


@dataclass(frozen=True)
class Variable:
    """An environment variable the exported file needs. ``value`` is known when it was cut
    out of a URL (the caller registers it as a secret; it is never written or shown)."""

    name: str
    purpose: str
    value: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Export:
    """The exported document, the files beside it, and what to tell the user."""

    text: str
    files: Mapping[str, str] = field(repr=False)
    """Path relative to the YAML's directory -> content (the certificates)."""
    variables: tuple[Variable, ...]
    notes: tuple[str, ...]
    """What the user should know: unreadable values, waivers, keys a plan would delete."""

    @property
    def env(self) -> dict[str, str]:
        """The known variable values (cut out of URLs), by name."""
        return {v.name: v.value for v in self.variables if v.value is not None}


def env_prefix(workspace: str) -> str:
    """``prod-eu`` -> ``PROD_EU``: the stem of a workspace's variable names."""
    stem = re.sub(r"[^A-Za-z0-9]+", "_", workspace).strip("_").upper()
    return stem if stem and not stem[0].isdigit() else f"WS_{stem}"


def cert_path(workspace: str) -> str:
    return f"{CERT_DIR}/{workspace}-pip-cert.pem"


class _Names:
    """Hands out variable names: one per distinct value within a workspace, unique across
    the file (``prod-eu`` and ``prod.eu`` would both want ``PROD_EU_...``)."""

    def __init__(self) -> None:
        self.variables: dict[str, Variable] = {}
        self._by_value: dict[tuple[str, str], str] = {}

    def secret(self, workspace: str, stem: str, value: str, purpose: str) -> str:
        known = self._by_value.get((workspace, value))
        if known is not None:
            return known
        name = self._free(stem)
        self.variables[name] = Variable(name, purpose, value)
        self._by_value[(workspace, value)] = name
        return name

    def unknown(self, stem: str, purpose: str) -> str:
        name = self._free(stem)
        self.variables[name] = Variable(name, purpose)
        return name

    def _free(self, stem: str) -> str:
        name, n = stem, 1
        while name in self.variables:
            n += 1
            name = f"{stem}_{n}"
        return name


def url_template(url: str, names: _Names, workspace: str, stem: str, what: str) -> str | None:
    """``url`` with every credential (user, password, query values, and host labels, path
    segments and a fragment that may be tokens) replaced by a ``${env:NAME}`` placeholder,
    cut textually so expanding them gives ``url`` back byte for byte. ``None`` when ``url``
    cannot be written as a valid index URL."""
    if url_unusable(url):
        return None

    def put(suffix: str, value: str, purpose: str) -> str:
        return (
            "${env:"
            + names.secret(workspace, f"{stem}_{suffix}", value, f"{purpose} in {what}")
            + "}"
        )

    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    host, colon, port = hostport.rpartition(":")
    if not colon or not port.isdigit() or "]" in port:
        host, colon, port = hostport, "", ""
    if not host.startswith("["):  # an IPv6 literal holds no name
        host = ".".join(
            put("HOST_TOKEN", label, "token in the host name") if looks_secret(label) else label
            for label in host.split(".")
        )
    if at:
        user, colon_, password = userinfo.partition(":")
        if colon_:
            user = put("USER", user, "user name") if user else ""
            password = put("TOKEN", password, "password or token") if password else ""
            userinfo = f"{user}:{password}"
        elif user:
            userinfo = put("TOKEN", user, "token")
    authority = f"{userinfo}{at}{host}{colon}{port}"
    path_end = min((i for i in (tail.find(c) for c in "?#") if i >= 0), default=len(tail))
    path, after_path = tail[:path_end], tail[path_end:]
    path = "/".join(
        put("PATH_TOKEN", segment, "token in the path") if looks_secret(segment) else segment
        for segment in path.split("/")
    )
    query, hash_, fragment = after_path.partition("#")
    if query:
        parts = []
        for part in query[1:].split("&"):
            key, eq, value = part.partition("=")
            if eq and value:
                param = re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_").upper() or "PARAM"
                purpose = f"query parameter {clean(key)!r}"
                parts.append(f"{key}={put(f'QUERY_{param}', value, purpose)}")
            elif part and not eq:
                parts.append(put("QUERY", part, "query"))
            else:
                parts.append(part)
        query = "?" + "&".join(parts)
    if fragment:
        fragment = put("FRAGMENT", fragment, "fragment")
    return f"{scheme}://{authority}{path}{query}{hash_}{fragment}"


def url_unusable(url: str) -> str | None:
    """Why a live URL cannot be written into a desired-state file as it is, or ``None``."""
    if any(c.isspace() or unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp", "Zs"} for c in url):
        return "holds white space or control characters"
    if "${" in url:
        return "holds `${`, which the file format reads as a placeholder"
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in {"http", "https"} or not rest:
        return "is not an absolute http(s) URL"
    return None


# -- one workspace ------------------------------------------------------------------------


@dataclass
class _Workspace:
    """The document entry of one workspace being built, with its comments and notes."""

    target: ExportTarget
    live: LiveState
    names: _Names
    data: dict[str, Any] = field(default_factory=dict)
    comments: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    values: dict[str, SecretValue] = field(default_factory=dict)
    """The live values that made it into the file, for the policy pass."""

    @property
    def name(self) -> str:
        return self.target.name

    def comment(self, path: tuple[str, ...], text: str) -> None:
        self.comments.setdefault(path, []).append(clean(text))

    def build(self) -> None:
        target, live = self.target, self.live
        self.data["host"] = target.host
        if target.auth:
            self.data["auth"] = _plain_data(target.auth)
        if target.labels:
            self.data["labels"] = dict(target.labels)
        if target.wave:
            self.data["wave"] = target.wave
        if not live.scope_exists:
            self.data["ensure"] = "absent"
            self.comment(
                ("ensure",),
                "the scope did not exist when this was exported; "
                "write `present` and the settings to create it",
            )
            return
        keyvault = live.backend is Backend.AZURE_KEYVAULT
        if keyvault:
            self.data["backend"] = "azure_keyvault"
            self.comment(
                ("backend",),
                f"backed by Azure Key Vault {live.keyvault or '(vault not reported)'}: "
                "its values are changed in Key Vault, pkgrepo manages the ACLs",
            )
        repositories: dict[str, Any] = {}
        ignore: list[str] = []
        for key in MANAGED_KEYS:
            secret = live.secrets.get(key)
            if secret is not None:
                self._repository(key, secret.value, repositories, ignore)
        if repositories:
            self.data["repositories"] = repositories
        self._acls()
        if ignore:
            self.data["ignore"] = ignore
        unmanaged = sorted(set(live.secrets) - set(MANAGED_KEYS) - {MARKER_KEY})
        if unmanaged and keyvault:
            listed = ", ".join(clean(k) for k in unmanaged)
            self.notes.append(
                f"{self.name}: the vault holds other secrets ({listed}), readable by every "
                "principal with READ on the scope; `pkgrepo plan` reports them"
            )
        elif unmanaged:
            listed = ", ".join(clean(k) for k in unmanaged)
            self.comment(
                ("host",),
                f"the scope also holds keys pkgrepo does not manage "
                f"({listed}); a plan of this file deletes them",
            )
            self.notes.append(
                f"{self.name}: the scope holds keys pkgrepo does not manage "
                f"({listed}); `pkgrepo plan` will show them as deletions"
            )

    def _repository(
        self, key: str, value: SecretValue | None, out: dict[str, Any], ignore: list[str]
    ) -> None:
        field_name = _FIELD[key]
        what = f"{self.name}'s {key}"
        if value is None and key == EXTRA_INDEX_URLS:
            # Its value is several URLs in one string: no single variable can carry it
            # through validation (extra URLs hold no white space), so the file leaves the
            # key alone and says how to take it over. The file validates as written.
            ignore.append(key)
            self.comment(
                ("ignore",),
                f"{key} could not be read: `secrets/get` answers only inside a Databricks "
                "notebook or job; pkgrepo leaves it alone here. To manage it, list its URLs "
                "under repositories.extra_index_urls (one per item) and drop it from ignore",
            )
            self.notes.append(
                f"{self.name}: {key} could not be read, so it is left alone (`ignore:`); "
                "list its URLs under extra_index_urls to manage it"
            )
            return
        if value is None:
            self._unknown(
                key,
                out,
                "could not be read: `secrets/get` answers only inside a Databricks notebook or job",
            )
            return
        text = value.plaintext
        if key == CERT:
            self._cert(text, out, ignore)
            return
        urls = [text] if key == INDEX_URL else text.split()
        if not urls:
            ignore.append(key)
            self.comment(
                ("ignore",),
                f"{key} exists but is empty; a file cannot say that, so "
                "pkgrepo leaves it alone here",
            )
            return
        prefix = env_prefix(self.name)
        templates: list[str] = []
        for index, url in enumerate(urls, start=1):
            stem = f"{prefix}_INDEX" if key == INDEX_URL else f"{prefix}_EXTRA_INDEX_{index}"
            shown = what if key == INDEX_URL else f"{what} (URL {index})"
            template = url_template(url, self.names, self.name, stem, shown)
            if template is None:
                reason = url_unusable(url) or "cannot be written"
                self._unknown(key, out, f"the live value {reason}")
                return
            templates.append(template)
        out[field_name] = templates[0] if key == INDEX_URL else templates
        self.values[key] = SecretValue(" ".join(urls)) if key != INDEX_URL else value

    def _cert(self, text: str, out: dict[str, Any], ignore: list[str]) -> None:
        """Only certificates are exported. Anything else (a private key, say) is left out
        and reported, never copied to a file; with no certificate at all the key is
        listed under ``ignore`` so the exported file neither rewrites nor deletes it."""
        bundle, other = certs.certificates_only(text)
        try:
            certs.parse_bundle(bundle)
        except certs.CertificateError:
            bundle = ""
        if not bundle or _CONTROL.search(bundle):
            ignore.append(CERT)
            self.comment(
                ("ignore",),
                f"{CERT} holds no valid certificate; it was left out of the export "
                "(pkgrepo leaves it alone here): check what it holds",
            )
            self.notes.append(
                f"{self.name}: {CERT} holds no valid certificate and was left out; every "
                "user who can read the scope can read it: check what it holds"
            )
            return
        if other:
            self.notes.append(
                f"{self.name}: {CERT} also holds something that is not a certificate (a "
                "private key, say); only its certificates were exported. Every user who can "
                "read the scope can read that value: remove it"
            )
        self.files[cert_path(self.name)] = bundle
        out[_FIELD[CERT]] = {"file": cert_path(self.name)}
        self.values[CERT] = SecretValue(bundle)

    def _unknown(self, key: str, out: dict[str, Any], why: str) -> None:
        field_name = _FIELD[key]
        var = self.names.unknown(
            f"{env_prefix(self.name)}_{key.replace('-', '_').upper()}",
            f"the value of {self.name}'s {key}",
        )
        out[field_name] = [{"env": var}] if key == EXTRA_INDEX_URLS else {"env": var}
        path = ("repositories", field_name)
        self.comment(path, f"{key} {why}. Set {var} to its value")
        if key == EXTRA_INDEX_URLS:
            self.comment(path, "or list each URL as its own item")
        if key == CERT:
            self.comment(
                path,
                f"or save the PEM as {cert_path(self.name)} and write "
                f"{{file: {cert_path(self.name)}}}",
            )
        self.notes.append(f"{self.name}: {key} {why}; set {var} to its value")

    def _acls(self) -> None:
        acls: dict[str, str] = {}
        skipped: list[str] = []
        for principal, permission in sorted(self.live.acls.items()):
            if _PRINCIPAL.match(principal):
                acls[principal] = permission.value
            else:
                skipped.append(clean(principal))
        if acls:
            self.data["acls"] = acls
        if skipped:
            self.data["acls_mode"] = "additive"
            self.comment(
                ("acls_mode",),
                "additive: some principals' names cannot be written "
                f"in this file ({', '.join(skipped)})",
            )
            self.notes.append(
                f"{self.name}: ACLs made additive; principal names a file "
                f"cannot hold: {', '.join(skipped)}"
            )

    def spec(self) -> WorkspaceSpec:
        """What the file says, with the live values, for the policy pass."""
        acls = {p: Permission(v) for p, v in self.data.get("acls", {}).items()}
        return WorkspaceSpec(
            name=self.name,
            host=self.target.host,
            ensure=Ensure(self.data.get("ensure", "present")),
            secrets=frozen_map(self.values),
            acls=frozen_map(acls),
            acls_mode=AclsMode(self.data.get("acls_mode", "exact")),
            backend=Backend.AZURE_KEYVAULT if "backend" in self.data else None,
        )

    def waive(self, findings: Sequence[policy.Finding], day: str) -> None:
        checks = list(dict.fromkeys(f.check for f in findings if f.severity is policy.Level.ERROR))
        if not checks:
            return
        summaries = {c.id: c.summary for c in policy.CHECKS}
        self.data["waivers"] = [
            {
                "check": check,
                "reason": f"exported as found in the live workspace on {day}; fix it and remove "
                "this waiver",
            }
            for check in checks
        ]
        for check in checks:
            self.comment(
                ("waivers",),
                f"{check}: the live workspace breaks the rule '{summaries.get(check, check)}'",
            )
        self.notes.append(
            f"{self.name}: exported as found, breaking policy "
            f"({', '.join(checks)}); waived in the file for review"
        )


def _plain_data(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_data(v) for k, v in value.items()}
    return value


# -- the file -----------------------------------------------------------------------------


def build(
    workspaces: Sequence[tuple[ExportTarget, LiveState]], *, now: dt.datetime, source: str = ""
) -> Export:
    """The document reproducing ``workspaces`` (each as given and as read), checked to parse
    back to the same data. ``source`` says where they came from, for the header."""
    seen: set[str] = set()
    names = _Names()
    built: list[_Workspace] = []
    for target, live in workspaces:
        if target.name in seen:
            raise ValueError(f"workspace {target.name!r} is exported twice")
        seen.add(target.name)
        entry = _Workspace(target, live, names)
        entry.build()
        built.append(entry)
    state = DesiredState(source="(export)", workspaces=tuple(w.spec() for w in built))
    findings = policy.evaluate(state, None, now=now)
    day = f"{now:%Y-%m-%d}"
    for entry in built:
        entry.waive(
            [f for f in findings if f.workspace == entry.name and f.check != "hosts-distinct"], day
        )
    data: dict[str, Any] = {"version": 1, "workspaces": {w.name: w.data for w in built}}
    comments = {
        ("workspaces", w.name, *path): lines for w in built for path, lines in w.comments.items()
    }
    variables = tuple(names.variables.values())
    text = _header(built, variables, source, day) + _emit(data, comments)
    if yaml.safe_load(text) != data:  # the emitter is ours: prove it wrote what we meant
        raise RuntimeError("export: the YAML written does not read back as the same data")
    files = {path: content for w in built for path, content in w.files.items()}
    notes = tuple(note for w in built for note in w.notes)
    return Export(text=text, files=frozen_map(files), variables=variables, notes=notes)


def _header(
    built: Sequence[_Workspace], variables: Sequence[Variable], source: str, day: str
) -> str:
    lines = [
        f"# Exported by `pkgrepo export` on {day} from {len(built)} live "
        f"workspace{'s' if len(built) != 1 else ''}{f' ({clean(source)})' if source else ''}.",
        "# It reproduces them as they were read: with the variables below set, `pkgrepo plan`",
        "# shows no changes (outside a notebook, values show as unverifiable until the first",
        "# apply records them in the ledger). No secret is written here.",
    ]
    if variables:
        lines.append("#")
        lines.append("# Environment variables this file needs:")
        width = max(len(v.name) for v in variables)
        lines.extend(f"#   {v.name.ljust(width)}  {clean(v.purpose)}" for v in variables)
    lines.append("")
    return "\n".join(lines) + "\n"


def scalar(value: object) -> str:
    """One YAML scalar: plain when that reads back as the same string, else JSON-quoted
    (a JSON string is a valid YAML double-quoted scalar)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.match(text) and not _NOT_PLAIN.match(text):
        return text
    return json.dumps(text, ensure_ascii=True)


def _flow(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return scalar(value)


_FLOW_KEYS = frozenset({"auth", "labels", "ignore"})


def _emit(
    data: Mapping[str, Any],
    comments: Mapping[tuple[str, ...], list[str]],
    path: tuple[str, ...] = (),
    indent: int = 0,
) -> str:
    pad = " " * indent
    out: list[str] = []
    for key, value in data.items():
        here = (*path, key)
        out.extend(f"{pad}# {line}" for line in comments.get(here, []))
        head = f"{pad}{scalar(key)}:"
        if (
            isinstance(value, Mapping)
            and value
            and key not in _FLOW_KEYS
            and not (set(value) <= {"env", "file"})
        ):
            out.append(head)
            out.append(_emit(value, comments, here, indent + 2).rstrip("\n"))
        elif isinstance(value, list) and value and key not in _FLOW_KEYS:
            out.append(head)
            for item in value:
                if isinstance(item, Mapping) and len(item) > 1:
                    lines = _emit(item, comments, here, indent + 4).rstrip("\n").split("\n")
                    out.append(f"{pad}  - {lines[0].lstrip()}")
                    out.extend(lines[1:])
                else:
                    out.append(f"{pad}  - {_flow(item)}")
        else:
            out.append(f"{head} {_flow(value)}")
    return "\n".join(out) + "\n"
