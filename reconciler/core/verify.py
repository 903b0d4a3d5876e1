"""Does the package index a workspace is told to use actually answer? The verdicts.

Pure (no I/O). ``probe.py`` goes out and reports what it saw as a ``ProbeObservation``; this
module groups workspaces into the distinct (index URL, extra index URLs, certificate)
combinations to probe, turns each observation into a verdict a platform engineer can act on
("credentials refused", "certificate has expired", "answers HTML that is not a simple
index"), and sums the verdicts up per combination.

Nothing here ever holds a URL with its credentials in a displayed field: observations carry
the masked URL only (``redact.mask_url``), and combinations keep the real values inside
``SecretValue``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from reconciler.core.model import (
    CERT,
    EXTRA_INDEX_URLS,
    INDEX_URL,
    Ensure,
    SecretValue,
    WorkspaceSpec,
)
from reconciler.core.redact import mask_url

EXPIRY_WARNING_DAYS = 30
"""Same window as the ``cert-expiring`` policy check."""
DEFAULT_PROJECT = "pip"
"""The project whose page is fetched: every index that mirrors PyPI has it."""
DEFAULT_TIMEOUT_SECONDS = 10.0
PYPI_SIMPLE = "https://pypi.org/simple/"
"""What pip uses when no index URL is declared (and so what a declared pip-cert must
validate then)."""
PUBLIC_PYPI_HOSTS = frozenset({"pypi.org", "www.pypi.org", "pypi.python.org"})
WAIVABLE = frozenset({"cert-validates-index"})
"""The verify checks a workspace may waive (``waivers:``, like the policy checks): a declared
pip-cert that does not validate its index. An index that refuses the credentials or does not
answer is never waivable: nothing would install from it."""


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    WAIVED = "waived"
    """Failed a check that every workspace concerned waives (with a reason)."""


class Failure(enum.Enum):
    """What went wrong before any page could be judged."""

    BAD_URL = "bad-url"
    TIMEOUT = "timeout"
    CONNECT = "connect"
    TLS = "tls"
    REDIRECT_OTHER_HOST = "redirect-other-host"
    TOO_MANY_REDIRECTS = "too-many-redirects"
    TOO_LARGE = "too-large"
    PROTOCOL = "protocol"


@dataclass(frozen=True)
class TlsFacts:
    """The index host's certificate as the probe saw it."""

    trust: str
    """What the chain was checked against: ``pip-cert`` or ``system trust store``."""
    verified: bool
    error: str | None = None
    """Why the chain or the name does not validate (OpenSSL's words), when it does not."""
    subject: str | None = None
    issuer: str | None = None
    not_after: dt.datetime | None = None


@dataclass(frozen=True)
class PageFacts:
    """One answer of the index, as far as the Simple Repository API is concerned."""

    status: int
    content_type: str = ""
    api: str | None = None
    """``json`` (PEP 691), ``html`` (PEP 503), or ``None`` when neither."""
    distributions: int = 0
    """Links whose file names are distributions pip would consider (a project page)."""
    projects: int = 0
    """Projects listed (the index root page)."""
    repository_version: str | None = None
    parse_error: str | None = None


@dataclass(frozen=True)
class ProbeObservation:
    """What ``probe.observe`` saw for one URL. Every text is already display-safe."""

    url: str
    """The masked URL."""
    project: str
    has_credentials: bool
    elapsed_ms: int = 0
    tls: TlsFacts | None = None
    failure: Failure | None = None
    detail: str = ""
    """Display-safe words on ``failure`` (never an exception's text: those quote URLs)."""
    redirect_to: str | None = None
    """The other origin a redirect pointed at (scheme, host, port; no credentials)."""
    project_page: PageFacts | None = None
    index_page: PageFacts | None = None
    """Fetched only when the project page answers 404."""


@dataclass(frozen=True)
class UrlVerdict:
    role: str
    """``index_url``, ``extra_index_urls[N]``, or ``index_url (pip's default)``."""
    url: str
    outcome: Outcome
    reason: str
    check: str | None = None
    """Which check failed: ``tls``, ``cert-validates-index``, ``credentials``, ``reachable``,
    ``redirect``, ``simple-api``."""
    tls: TlsFacts | None = None
    elapsed_ms: int = 0


@dataclass(frozen=True)
class Waiver:
    """A workspace's waiver of a verify check, with its reason from the file."""

    workspace: str
    check: str
    reason: str


@dataclass(frozen=True)
class Combination:
    """One distinct (index URL, extra index URLs, certificate) and who declares it."""

    number: int
    index_url: SecretValue | None
    extra_index_urls: tuple[SecretValue, ...]
    cert: SecretValue | None
    workspaces: tuple[str, ...]
    waivers: tuple[Waiver, ...] = ()
    """The waivers of verify checks (``WAIVABLE``) its workspaces declare."""

    @property
    def shown(self) -> str:
        """The combination as a reviewer may see it: masked URLs, and whether a cert is set."""
        index = mask_url(self.index_url.plaintext) if self.index_url else "pip's default"
        extra = f" + {len(self.extra_index_urls)} extra" if self.extra_index_urls else ""
        cert = ", pip-cert" if self.cert else ""
        return f"{index}{extra}{cert}"

    def targets(self) -> tuple[tuple[str, str], ...]:
        """(role, URL) of every index pip will read with these settings."""
        found: list[tuple[str, str]] = []
        if self.index_url is not None:
            found.append(("index_url", self.index_url.plaintext))
        elif self.cert is not None or self.extra_index_urls:
            # pip still reads PyPI, and a declared pip-cert replaces the trust store for it.
            found.append(("index_url (pip's default)", PYPI_SIMPLE))
        for number, url in enumerate(self.extra_index_urls):
            found.append((f"extra_index_urls[{number}]", url.plaintext))
        return tuple(found)


@dataclass(frozen=True)
class CombinationResult:
    combination: int
    shown: str
    workspaces: tuple[str, ...]
    urls: tuple[UrlVerdict, ...]
    elapsed_ms: int = 0
    waivers: tuple[Waiver, ...] = ()

    def failures_by_workspace(self) -> dict[str, tuple[UrlVerdict, ...]]:
        """Per workspace, the failed verdicts it does not waive (only those with any)."""
        failed = [u for u in self.urls if u.outcome is Outcome.FAILED]
        if not failed:
            return {}
        waived = {(w.workspace, w.check) for w in self.waivers}
        found: dict[str, tuple[UrlVerdict, ...]] = {}
        for ws in self.workspaces:
            left = tuple(u for u in failed if (ws, u.check) not in waived)
            if left:
                found[ws] = left
        return found

    def failing_workspaces(self) -> tuple[str, ...]:
        return tuple(self.failures_by_workspace())

    def waived(self) -> tuple[Waiver, ...]:
        """The waivers that excuse a failure of this combination."""
        failed = {u.check for u in self.urls if u.outcome is Outcome.FAILED}
        return tuple(w for w in self.waivers if w.check in failed)

    def url_outcome(self, url: UrlVerdict) -> Outcome:
        """``url``'s outcome for this combination: a failure every workspace concerned
        waives is ``WAIVED``."""
        if url.outcome is not Outcome.FAILED:
            return url.outcome
        waivers = {w.workspace for w in self.waivers if w.check == url.check}
        return Outcome.WAIVED if waivers >= set(self.workspaces) else Outcome.FAILED

    @property
    def outcome(self) -> Outcome:
        if any(u.outcome is Outcome.FAILED for u in self.urls):
            return Outcome.FAILED if self.failures_by_workspace() else Outcome.WAIVED
        if not self.urls or all(u.outcome is Outcome.SKIPPED for u in self.urls):
            return Outcome.SKIPPED
        return Outcome.OK


@dataclass(frozen=True)
class Report:
    results: tuple[CombinationResult, ...] = ()
    probes: int = 0
    """How many combinations were probed (each once, however many workspaces share it)."""
    skipped: str | None = None
    """Why nothing was probed (``--skip-verify``), when nothing was."""
    notes: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> tuple[CombinationResult, ...]:
        return tuple(r for r in self.results if r.outcome is Outcome.FAILED)

    @property
    def ok(self) -> bool:
        return not self.failed

    def failed_workspaces(self) -> tuple[str, ...]:
        """The workspaces with a failure they do not waive: what plan and apply refuse."""
        return tuple(sorted({ws for r in self.failed for ws in r.failing_workspaces()}))

    def failures_by_workspace(self) -> dict[str, tuple[UrlVerdict, ...]]:
        """Per workspace, the failed verdicts (not waived) on the indexes it would use."""
        found: dict[str, tuple[UrlVerdict, ...]] = {}
        for res in self.failed:
            for ws, failures in res.failures_by_workspace().items():
                found[ws] = found.get(ws, ()) + failures
        return found

    def waivers_by_workspace(self) -> dict[str, tuple[Waiver, ...]]:
        """Per workspace, the waivers that excused a failure of its indexes."""
        found: dict[str, tuple[Waiver, ...]] = {}
        for res in self.results:
            for waiver in res.waived():
                found[waiver.workspace] = (*found.get(waiver.workspace, ()), waiver)
        return found


def _key(spec: WorkspaceSpec) -> tuple[str | None, tuple[str, ...], str | None] | None:
    if spec.ensure is Ensure.ABSENT:
        return None
    index = spec.secrets.get(INDEX_URL)
    extra = spec.secrets.get(EXTRA_INDEX_URLS)
    cert = spec.secrets.get(CERT)
    extras = tuple(extra.plaintext.split()) if extra else ()
    if index is None and not extras and cert is None:
        return None
    return (index.plaintext if index else None, extras, cert.plaintext if cert else None)


def combinations(specs: Iterable[WorkspaceSpec]) -> tuple[Combination, ...]:
    """The distinct repository settings of ``specs``, in order of first appearance.
    Workspaces that declare none (or are to be destroyed) have nothing to verify."""
    groups: dict[tuple[str | None, tuple[str, ...], str | None], list[WorkspaceSpec]] = {}
    for spec in specs:
        key = _key(spec)
        if key is not None:
            groups.setdefault(key, []).append(spec)
    found: list[Combination] = []
    for number, ((index, extras, cert), members) in enumerate(groups.items(), start=1):
        found.append(
            Combination(
                number=number,
                index_url=SecretValue(index) if index is not None else None,
                extra_index_urls=tuple(SecretValue(u) for u in extras),
                cert=SecretValue(cert) if cert is not None else None,
                workspaces=tuple(spec.name for spec in members),
                waivers=tuple(
                    Waiver(spec.name, check, reason)
                    for spec in members
                    for check, reason in sorted(spec.waivers.items())
                    if check in WAIVABLE
                ),
            )
        )
    return tuple(found)


class _Verdict(Protocol):
    """The shape of ``judge``'s local helper."""

    def __call__(self, outcome: Outcome, reason: str, check: str | None = ...) -> UrlVerdict: ...


def _tls_words(tls: TlsFacts) -> str:
    error = tls.error or "the certificate does not validate"
    return f"TLS: {error} (checked against the {tls.trust})"


def judge(role: str, obs: ProbeObservation) -> UrlVerdict:
    """The verdict on one URL from what the probe saw."""

    def verdict(outcome: Outcome, reason: str, check: str | None = None) -> UrlVerdict:
        return UrlVerdict(role, obs.url, outcome, reason, check, obs.tls, obs.elapsed_ms)

    if obs.failure is Failure.BAD_URL:
        return verdict(Outcome.FAILED, obs.detail or "not an http(s) URL", "reachable")
    if obs.tls is not None and not obs.tls.verified:
        check = "cert-validates-index" if obs.tls.trust == "pip-cert" else "tls"
        return verdict(
            Outcome.FAILED,
            f"{_tls_words(obs.tls)}; pip would refuse this index (credentials were not sent)",
            check,
        )
    if obs.failure is Failure.TIMEOUT:
        return verdict(Outcome.FAILED, f"no answer in time ({obs.detail})", "reachable")
    if obs.failure is Failure.CONNECT:
        return verdict(Outcome.FAILED, f"cannot connect: {obs.detail}", "reachable")
    if obs.failure is Failure.TLS:
        return verdict(Outcome.FAILED, f"TLS: {obs.detail}", "tls")
    if obs.failure is Failure.REDIRECT_OTHER_HOST:
        return verdict(
            Outcome.FAILED,
            f"redirects to another host ({obs.redirect_to}); not followed, and the "
            "credentials were not sent there. Point the URL at where the index really is",
            "redirect",
        )
    if obs.failure is Failure.TOO_MANY_REDIRECTS:
        return verdict(Outcome.FAILED, "too many redirects", "redirect")
    if obs.failure is Failure.TOO_LARGE:
        return verdict(Outcome.FAILED, f"the answer is too large ({obs.detail})", "simple-api")
    if obs.failure is not None:
        return verdict(Outcome.FAILED, obs.detail or "the index did not answer", "reachable")
    page = obs.project_page
    if page is None:
        return verdict(Outcome.FAILED, "the index did not answer", "reachable")
    refused = _refused(obs, page)
    if refused:
        return verdict(Outcome.FAILED, refused, "credentials")
    if page.status == 404 and obs.index_page is not None:
        return _judge_root(obs, obs.index_page, verdict)
    if page.status >= 400:
        return verdict(
            Outcome.FAILED, f"the index answers HTTP {page.status} for /{obs.project}/", "reachable"
        )
    if 300 <= page.status < 400:
        return verdict(
            Outcome.FAILED, f"the index answers HTTP {page.status} without a location", "redirect"
        )
    problem = _not_simple(page, project=True)
    if problem:
        return verdict(Outcome.FAILED, f"/{obs.project}/ {problem}", "simple-api")
    api = "PEP 691 JSON" if page.api == "json" else "PEP 503 HTML"
    return verdict(
        Outcome.OK,
        f"{api}: {page.distributions} file(s) of {obs.project!r}; TLS and credentials accepted"
        if obs.tls
        else f"{api}: {page.distributions} file(s) of {obs.project!r}",
    )


def _refused(obs: ProbeObservation, page: PageFacts) -> str | None:
    if page.status not in (401, 403):
        return None
    if obs.has_credentials:
        return f"credentials refused (HTTP {page.status})"
    return f"the index asks for credentials (HTTP {page.status}) and the URL carries none"


def _judge_root(obs: ProbeObservation, root: PageFacts, verdict: _Verdict) -> UrlVerdict:
    refused = _refused(obs, root)
    if refused:
        return verdict(Outcome.FAILED, refused, "credentials")
    if root.status >= 300:
        return verdict(
            Outcome.FAILED,
            f"/{obs.project}/ is not found (404) and the index root answers HTTP {root.status}",
            "simple-api",
        )
    problem = _not_simple(root, project=False)
    if problem:
        return verdict(
            Outcome.FAILED,
            f"/{obs.project}/ is not found (404) and the root {problem}",
            "simple-api",
        )
    api = "PEP 691 JSON" if root.api == "json" else "PEP 503 HTML"
    return verdict(
        Outcome.OK,
        f"{api}: the index lists {root.projects} project(s) ({obs.project!r} is not one of "
        "them: set `verify: {project: NAME}` to a project it serves)",
    )


def _not_simple(page: PageFacts, *, project: bool) -> str | None:
    if page.api is None:
        shown = page.content_type or "no content type"
        return f"answers {shown}, not the Simple Repository API (PEP 503 HTML or PEP 691 JSON)"
    if page.parse_error:
        return f"does not parse as a simple index: {page.parse_error}"
    if page.api == "html" and page.repository_version is None:
        if project and page.distributions == 0:
            return "answers HTML that is not a simple index (no distribution files listed)"
        if not project and page.projects == 0:
            return "answers HTML that is not a simple index (no projects listed)"
    return None


def _expiry_note(verdict: UrlVerdict, now: dt.datetime | None) -> UrlVerdict:
    tls = verdict.tls
    if now is None or tls is None or tls.not_after is None or verdict.outcome is not Outcome.OK:
        return verdict
    days = (tls.not_after - now).days
    if days > EXPIRY_WARNING_DAYS:
        return verdict
    note = (
        f"; warning: the index's certificate expires on {tls.not_after:%Y-%m-%d}, in {days} "
        "day(s): pip will refuse the index then"
    )
    return replace(verdict, reason=verdict.reason + note)


def result(
    combination: Combination,
    observed: Mapping[str, ProbeObservation],
    *,
    now: dt.datetime | None = None,
) -> CombinationResult:
    """Sum up the verdicts on each target URL of one combination. With ``now``, an index
    certificate that expires within the warning window is noted on an ok verdict."""
    verdicts = tuple(
        _expiry_note(judge(role, observed[role]), now) for role, _ in combination.targets()
    )
    return CombinationResult(
        combination=combination.number,
        shown=combination.shown,
        workspaces=combination.workspaces,
        urls=verdicts,
        elapsed_ms=sum(v.elapsed_ms for v in verdicts),
        waivers=combination.waivers,
    )


def skipped(reason: str) -> Report:
    return Report(skipped=reason)


def changing_repositories(changed_keys: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """The workspaces whose plan writes one of the repository keys (what verify probes in
    ``plan`` and ``apply``): ``changed_keys`` maps a workspace to the keys it creates or
    updates."""
    keys = {INDEX_URL, EXTRA_INDEX_URLS, CERT}
    return frozenset(ws for ws, changed in changed_keys.items() if keys & set(changed))
