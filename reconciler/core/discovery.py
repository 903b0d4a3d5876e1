"""Turning what a Databricks account lists into workspace entries (the ``discover:`` rules).

Pure: the adapter lists the account's workspaces (``AccountWorkspace``), ``expand`` applies
the file's rules and returns the full desired state with a ``DiscoveryReport`` that says which
workspaces were found and which were skipped, and why. Nothing here reaches the network.

The account's answer is not trusted: every name, tag and deployment name it gives is checked
before it becomes part of an address, a label or a host. In particular a host is only ever
derived so that it stays under the domain the file (or the SDK's environment) names: the
fleet's client secret is sent to every derived host, so an account answer must not be able
to point it anywhere else.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from reconciler.core.model import (
    DeclaredEntry,
    DesiredState,
    DiscoveryRule,
    DiscoverySpec,
    WorkspaceSpec,
    frozen_map,
)

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
FIELDS = ("name", "id", "deployment_name", "region", "cloud", "status")
"""Placeholders a template may use, besides ``{tag:NAME}``."""
WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
HOST_VALUE = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*"
)
"""What may be put into a host: DNS labels joined by dots; no ``/``, ``:``, ``@`` or ``#``."""
_HOST_SUFFIX = re.compile(r"\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]{1,5})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_LABEL_VALUE = 256
MAX_WAVE = 1000
_SHOWN = 80
SHOWN_ORPHANS = 50
"""Orphaned workspaces explained one by one on stderr; the plan lists them all."""


@dataclass(frozen=True)
class AccountWorkspace:
    """One workspace as the account lists it (``provisioning.Workspace``), untrusted."""

    name: str
    deployment_name: str = ""
    workspace_id: int | None = None
    region: str = ""
    status: str = ""
    cloud: str = ""
    tags: Mapping[str, str] = field(default_factory=frozen_map)
    deployment_url: str | None = None
    """The SDK's URL for ``deployment_name`` in the account's cloud (used without a
    ``host`` template)."""

    def value(self, name: str) -> str | None:
        """A template placeholder's value, or None when the workspace has none."""
        if name.startswith("tag:"):
            return self.tags.get(name[4:])
        values = {
            "name": self.name,
            "id": "" if self.workspace_id is None else str(self.workspace_id),
            "deployment_name": self.deployment_name,
            "region": self.region,
            "cloud": self.cloud,
            "status": self.status,
        }
        found = values.get(name)
        return found if found else None


@dataclass(frozen=True)
class Skipped:
    name: str
    """As the account gives it, made printable."""
    reason: str


@dataclass(frozen=True)
class DiscoveryReport:
    """What discovery found in the account, for the plan and its reviewers."""

    account_id: str
    listed: int
    found: tuple[str, ...]
    skipped: tuple[Skipped, ...] = ()
    missing: tuple[str, ...] = ()
    """Entries of the file that extend a discovered workspace the account no longer lists:
    reported, never planned (so nothing is deleted because a workspace disappeared)."""


# -- templates (also checked offline by ``validate``) -------------------------------------------


def template_problem(template: str) -> str | None:
    """Why a label or wave template cannot work, or None."""
    for match in PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name.startswith("tag:") and len(name) > 4:
            continue
        if name not in FIELDS:
            known = ", ".join(f"{{{f}}}" for f in FIELDS)
            return f"unknown placeholder {match.group(0)}; use {known} or {{tag:NAME}}"
    stripped = PLACEHOLDER.sub("", template)
    if "{" in stripped or "}" in stripped:
        return "unbalanced `{` or `}`"
    return None


def host_template_problem(template: str) -> str | None:
    """Why a ``host`` template is unsafe or invalid, or None. A placeholder may sit in the
    path, or in the host name only before a fixed domain (``https://{deployment_name}.
    cloud.databricks.com``), so no account answer can move the host to another domain."""
    problem = template_problem(template)
    if problem:
        return problem
    scheme, sep, rest = template.partition("://")
    if not sep or scheme not in ("https", "http"):
        return "must start with https:// (or http:// for a local emulator)"
    netloc = rest.split("/", 1)[0]
    if not netloc:
        return "has no host name"
    if "@" in netloc or "?" in template or "#" in template:
        return "must not carry credentials, a query or a fragment"
    if scheme == "http" and not is_loopback(netloc):
        return "must use https: the client secret is sent to every workspace host"
    if "{" in netloc:
        after = netloc[netloc.rindex("}") + 1 :]
        if not _HOST_SUFFIX.fullmatch(after):
            return (
                "puts a placeholder in the host name without a fixed domain after it "
                "(e.g. `https://{deployment_name}.cloud.databricks.com`): the account's "
                "answer could send the credentials to any host"
            )
    return None


def is_loopback(netloc: str) -> bool:
    """``127.0.0.1:8020``, ``localhost``, ``[::1]:8020``: a local emulator, where plain http
    is allowed."""
    host = netloc.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1:].split("]", 1)[0] == "::1"
    return host.split(":", 1)[0] in ("127.0.0.1", "localhost")


def fill(template: str, ws: AccountWorkspace, *, host: bool = False) -> str:
    """The template with the workspace's values; raises ``ValueError`` naming what is
    missing or unusable."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        value = ws.value(name)
        if value is None:
            what = f"tag {name[4:]!r}" if name.startswith("tag:") else f"field {name}"
            raise ValueError(f"the account gives no {what}")
        if host and not HOST_VALUE.fullmatch(value):
            raise ValueError(f"{{{name}}} = {shown(value)} is not usable in a host name")
        if _CONTROL.search(value):
            raise ValueError(f"{{{name}}} holds control characters")
        return value

    return PLACEHOLDER.sub(one, template)


def shown(text: str) -> str:
    """Text from the account, safe to print: control characters escaped, length bounded."""
    escaped = _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)
    return repr(escaped[:_SHOWN] + ("..." if len(escaped) > _SHOWN else ""))


# -- expansion --------------------------------------------------------------------------------


def matches(rule: DiscoveryRule, ws: AccountWorkspace) -> bool:
    if rule.names and not any(fnmatch.fnmatchcase(ws.name, g) for g in rule.names):
        return False
    if rule.regions and not any(fnmatch.fnmatchcase(ws.region, g) for g in rule.regions):
        return False
    for tag, pattern in rule.tags.items():
        value = ws.tags.get(tag)
        if value is None or not fnmatch.fnmatchcase(value, pattern):
            return False
    return True


def expand(
    desired: DesiredState, listed: Sequence[AccountWorkspace]
) -> tuple[DesiredState, DiscoveryReport]:
    """The desired state with the discovered workspaces added, and what was skipped."""
    spec = desired.discovery
    if spec is None:
        return desired, DiscoveryReport("", 0, ())
    declared = {ws.name: ws for ws in desired.workspaces}
    hosts = {ws.host.rstrip("/"): ws.name for ws in desired.workspaces}
    named: list[tuple[str | None, AccountWorkspace]] = []
    for ws in listed:
        try:
            named.append((fill(spec.name_template, ws) if spec.name_template else ws.name, ws))
        except ValueError:
            named.append((None, ws))
    counts = Counter(name for name, _ in named)
    found: list[WorkspaceSpec] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for name, ws in sorted(named, key=lambda n: (n[1].name, n[1].workspace_id or 0, n[0] or "")):
        try:
            if name is None:
                raise _Skip(f"`discover.name` cannot be made: {_name_problem(spec, ws)}")
            made = _one(spec, name, ws, counts, declared)
        except _Skip as skip:
            skipped.append(Skipped(shown(ws.name), str(skip)))
            continue
        if made is None:  # the file declares it with a host: the file's entry is used
            seen.add(name)
            continue
        host = made.host.rstrip("/")
        if host in hosts:
            other = hosts[host]
            skipped.append(Skipped(shown(ws.name), f"its host is also {other}'s"))
            continue
        hosts[host] = made.name
        seen.add(made.name)
        found.append(made)
    listed_names = {name for name, _ in named}
    missing = tuple(sorted(n for n in spec.extends if n not in seen and n not in listed_names))
    expanded = replace(desired, workspaces=desired.workspaces + tuple(found))
    report = DiscoveryReport(
        account_id=spec.account.account_id,
        listed=len(listed),
        found=tuple(ws.name for ws in found),
        skipped=tuple(skipped),
        missing=missing,
    )
    return expanded, report


def orphan_reasons(
    spec: DiscoverySpec | None,
    report: DiscoveryReport,
    listed: Sequence[AccountWorkspace],
    orphaned: Sequence[str],
) -> list[str]:
    """For each orphaned workspace (managed once, named by neither the file nor discovery
    now), what the account says about it: no longer listed at all, or listed but skipped
    by the rules (and why). Never a reason to delete anything."""
    if spec is None or not orphaned:
        return []
    by_name: dict[str, AccountWorkspace] = {}
    for item in listed:
        try:
            name = fill(spec.name_template, item) if spec.name_template else item.name
        except ValueError:
            name = item.name
        by_name.setdefault(name, item)
    reasons = {skipped.name: skipped.reason for skipped in report.skipped}
    lines = []
    for name in orphaned[:SHOWN_ORPHANS]:
        ws = by_name.get(name)
        if ws is None:
            lines.append(
                f"{name}: managed by pkgrepo, no longer listed by account "
                f"{report.account_id}; reported as orphaned, nothing is deleted"
            )
        else:
            why = reasons.get(shown(ws.name), "not matched by the discovery rules")
            lines.append(
                f"{name}: managed by pkgrepo, still listed by account {report.account_id} "
                f"but skipped ({why}); reported as orphaned, nothing is deleted"
            )
    if len(orphaned) > SHOWN_ORPHANS:
        lines.append(f"... and {len(orphaned) - SHOWN_ORPHANS} more orphaned workspace(s)")
    return lines


class _Skip(Exception):
    """Why one workspace of the account is not managed."""


def _name_problem(spec: DiscoverySpec, ws: AccountWorkspace) -> str:
    try:
        fill(spec.name_template or "{name}", ws)
    except ValueError as exc:
        return str(exc)
    return "unknown"


def _one(
    spec: DiscoverySpec,
    name: str,
    ws: AccountWorkspace,
    counts: Counter[str | None],
    declared: Mapping[str, WorkspaceSpec],
) -> WorkspaceSpec | None:
    if counts[name] > 1:
        raise _Skip(f"{counts[name]} workspaces of the account have the name {shown(name)}")
    if not WORKSPACE_NAME.fullmatch(name):
        hint = "" if spec.name_template else '; set `discover.name: "{deployment_name}"`?'
        raise _Skip(
            f"{shown(name)} is not usable as a workspace name in plans (letters, digits, "
            f"`_`, `.`, `-`, at most 100 characters){hint}"
        )
    excluded = next((g for g in spec.exclude if fnmatch.fnmatchcase(ws.name, g)), None)
    if excluded is not None:
        raise _Skip(f"excluded by `{excluded}`")
    if ws.status not in spec.statuses:
        wanted = " or ".join(spec.statuses)
        raise _Skip(f"status {shown(ws.status or 'unknown')}, not {wanted}")
    if name in declared:
        return None
    entry = spec.extends.get(name)
    rule = next((r for r in spec.rules if matches(r, ws)), None)
    if rule is None and entry is None:
        raise _Skip("matches no `include` rule")
    rule = rule or DiscoveryRule()
    try:
        host = _host(spec, ws)
        labels = _labels(rule, ws)
        wave = _wave(rule, ws)
    except ValueError as exc:
        raise _Skip(str(exc)) from None
    made = replace(
        spec.template,
        name=name,
        host=host,
        labels=frozen_map({**spec.template.labels, **labels}),
        wave=spec.template.wave if wave is None else wave,
        auth=spec.account.auth,
    )
    return made if entry is None else _extend(made, entry)


def _host(spec: DiscoverySpec, ws: AccountWorkspace) -> str:
    if spec.host_template is not None:
        return fill(spec.host_template, ws, host=True).rstrip("/")
    if not HOST_VALUE.fullmatch(ws.deployment_name or "-"):
        raise ValueError(
            f"deployment name {shown(ws.deployment_name)} is not usable in a host name"
        )
    if not ws.deployment_url:
        raise ValueError("no host can be derived (set `discover.host`)")
    return ws.deployment_url.rstrip("/")


def _labels(rule: DiscoveryRule, ws: AccountWorkspace) -> dict[str, str]:
    labels: dict[str, str] = {}
    for label, template in rule.labels.items():
        try:
            value = fill(template, ws)
        except ValueError as exc:
            if "gives no tag" in str(exc):
                continue  # a missing tag leaves the label out
            raise ValueError(f"label {label}: {exc}") from None
        if len(value) > MAX_LABEL_VALUE:
            raise ValueError(f"label {label}: longer than {MAX_LABEL_VALUE} characters")
        labels[label] = value
    return labels


def _wave(rule: DiscoveryRule, ws: AccountWorkspace) -> int | None:
    if rule.wave is None:
        return None
    text = fill(rule.wave, ws)
    if not text.isdigit() or not 0 <= int(text) <= MAX_WAVE:
        raise ValueError(f"wave {shown(text)} is not a whole number from 0 to {MAX_WAVE}")
    return int(text)


def _extend(made: WorkspaceSpec, entry: DeclaredEntry) -> WorkspaceSpec:
    """The file's entry over the discovered workspace: what the entry writes wins; labels
    merge, the entry's over the discovered ones."""
    own = entry.spec
    return replace(
        own,
        host=made.host,
        labels=frozen_map({**made.labels, **own.labels}),
        wave=own.wave if "wave" in entry.written else made.wave,
        auth=own.auth if "auth" in entry.written else made.auth,
    )
