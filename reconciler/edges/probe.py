"""Going out to a package index and reporting what it answers: the I/O of ``verify``.

For one URL: a TLS handshake against the declared ``pip-cert`` (only those CAs, as
``pip --cert`` does) or the system trust store, then, only if the chain and the host name
validate, the Simple Repository API page of a probe project with the URL's credentials, then
the index root if that project is not there. Pages are parsed with ``pypi-simple``.

Safety rules this module keeps:
- Credentials are taken out of the URL and sent as basic auth to the URL's own origin only.
  Redirects are not followed automatically: one to the same origin is followed (at most
  five), one to another origin is reported and not followed, so credentials never reach
  another host.
- No credentials are sent over a connection whose certificate does not validate.
- Every wait is bounded (connect, each read, and the whole body), and so is the body size.
- Nothing from an exception's text is reported (requests and urllib3 quote URLs there);
  failures are described in words chosen here.
- ``trust_env`` is off: no ``.netrc`` credentials, no ``REQUESTS_CA_BUNDLE`` replacing the
  declared certificate, and no proxy: the probe connects directly, like the TLS check.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography import x509

from reconciler.core.redact import mask_url
from reconciler.core.verify import (
    Combination,
    Failure,
    PageFacts,
    ProbeObservation,
    Report,
    TlsFacts,
    result,
)
from reconciler.engine.parallel import in_parallel

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_REDIRECTS = 5
ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
"""What pip sends (PEP 691 JSON preferred, PEP 503 HTML accepted)."""
_NORMALIZE = re.compile(r"[-_.]+")


@dataclass(frozen=True)
class ProbeTarget:
    """One URL split into what may be shown and what may not."""

    url: str
    """Without user info: what requests are sent to."""
    username: str | None
    password: str | None

    @property
    def origin(self) -> tuple[str, str, int]:
        return _origin(self.url)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return (scheme, (parts.hostname or "").lower(), port)


def split_credentials(url: str) -> ProbeTarget:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    bare = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    return ProbeTarget(bare, username, password)


def _describe_cert(der: bytes | None) -> tuple[str | None, str | None, object]:
    if not der:
        return None, None, None
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None, None, None
    return (
        cert.subject.rfc4514_string() or "(empty subject)",
        cert.issuer.rfc4514_string() or "(empty issuer)",
        cert.not_valid_after_utc,
    )


def _context(cert_pem: str | None) -> ssl.SSLContext:
    if cert_pem:
        return ssl.create_default_context(cadata=cert_pem)
    return ssl.create_default_context()


def _peer_der(host: str, port: int, timeout: float) -> bytes | None:
    """The server's certificate without judging it, to describe it when it does not
    validate."""
    unchecked = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unchecked.check_hostname = False
    unchecked.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            unchecked.wrap_socket(raw, server_hostname=host) as tls,
        ):
            return tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None


def check_tls(
    host: str, port: int, cert_pem: str | None, timeout: float
) -> tuple[TlsFacts | None, Failure | None, str]:
    """The TLS facts of ``host:port`` checked against ``cert_pem`` (or the system store),
    or the failure that stopped the handshake before any certificate was seen."""
    trust = "pip-cert" if cert_pem else "system trust store"
    try:
        context = _context(cert_pem)
    except (ssl.SSLError, ValueError):
        return TlsFacts(trust, False, "pip-cert cannot be loaded as CA certificates"), None, ""
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        subject, issuer, not_after = _describe_cert(der)
        return TlsFacts(trust, True, None, subject, issuer, not_after), None, ""  # type: ignore[arg-type]
    except ssl.SSLCertVerificationError as exc:
        error = exc.verify_message or "the certificate does not validate"
        subject, issuer, not_after = _describe_cert(_peer_der(host, port, timeout))
        return TlsFacts(trust, False, error, subject, issuer, not_after), None, ""  # type: ignore[arg-type]
    except ssl.SSLError as exc:
        return None, Failure.TLS, f"the TLS handshake failed ({exc.reason or 'no reason given'})"
    except TimeoutError:
        return None, Failure.TIMEOUT, f"{timeout:g} s to connect and shake hands"
    except socket.gaierror:
        return None, Failure.CONNECT, "the host name does not resolve"
    except ConnectionRefusedError:
        return None, Failure.CONNECT, "connection refused"
    except OSError as exc:
        return None, Failure.CONNECT, exc.strerror or type(exc).__name__


@contextmanager
def _ca_file(cert_pem: str | None) -> Iterator[str | bool]:
    """What ``requests`` needs as ``verify``: a file holding only the declared CAs."""
    if not cert_pem:
        paths = ssl.get_default_verify_paths()
        found = [p for p in (paths.cafile, paths.openssl_cafile) if p and Path(p).is_file()]
        yield found[0] if found else True
        return
    with tempfile.TemporaryDirectory(prefix="pkgrepo-verify-") as folder:
        path = Path(folder) / "pip-cert.pem"
        path.write_text(cert_pem, encoding="utf-8")
        yield str(path)


def _read_body(response: requests.Response, deadline: float) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES or time.monotonic() > deadline:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _page(body: bytes, content_type: str, url: str, project: str | None, status: int) -> PageFacts:
    from pypi_simple import IndexPage, ProjectPage

    kind, _, params = content_type.partition(";")
    kind = kind.strip().lower()
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    if kind == "application/vnd.pypi.simple.v1+json":
        api = "json"
    elif kind in ("application/vnd.pypi.simple.v1+html", "text/html"):
        api = "html"
    else:
        return PageFacts(status, kind)
    try:
        if project is not None:
            page = (
                ProjectPage.from_json_data(json.loads(body), url)
                if api == "json"
                else ProjectPage.from_html(project, body, url, charset)
            )
            files = sum(1 for p in page.packages if p.package_type is not None)
            return PageFacts(status, kind, api, files, 0, page.repository_version)
        root = (
            IndexPage.from_json_data(json.loads(body))
            if api == "json"
            else IndexPage.from_html(body, charset)
        )
        return PageFacts(status, kind, api, 0, len(root.projects), root.repository_version)
    except Exception as exc:  # any parse error of a hostile page is a verdict, not a crash
        return PageFacts(status, kind, api, parse_error=type(exc).__name__)


class _Stop(Exception):
    def __init__(self, failure: Failure, detail: str = "", redirect_to: str | None = None):
        super().__init__(failure.value)
        self.failure = failure
        self.detail = detail
        self.redirect_to = redirect_to


def _get(
    session: requests.Session,
    target: ProbeTarget,
    url: str,
    *,
    verify: str | bool,
    timeout: float,
    project: str | None,
) -> PageFacts:
    """GET one page, following same-origin redirects only, with bounded waits and size."""
    auth = (target.username or "", target.password or "") if target.username else None
    deadline = time.monotonic() + 3 * timeout
    for _ in range(MAX_REDIRECTS + 1):
        try:
            origin = _origin(url)
        except ValueError:  # a location whose port or address does not parse
            raise _Stop(
                Failure.REDIRECT_OTHER_HOST, redirect_to="an address that does not parse"
            ) from None
        if origin != target.origin:
            scheme, host, port = origin
            shown = f"[{host}]" if ":" in host else host
            # Shown as any URL in a plan is: a token-like host label is masked.
            raise _Stop(
                Failure.REDIRECT_OTHER_HOST, redirect_to=mask_url(f"{scheme}://{shown}:{port}")
            )
        try:
            response = session.get(
                url,
                auth=auth,
                headers={"Accept": ACCEPT},
                timeout=(timeout, timeout),
                allow_redirects=False,
                stream=True,
                verify=verify,
            )
        except requests.exceptions.Timeout:
            raise _Stop(Failure.TIMEOUT, f"{timeout:g} s") from None
        except requests.exceptions.SSLError:
            raise _Stop(Failure.TLS, "the TLS connection failed") from None
        except requests.exceptions.ConnectionError:
            raise _Stop(Failure.CONNECT, "the connection failed or was dropped") from None
        except requests.exceptions.RequestException:
            raise _Stop(Failure.PROTOCOL, "the answer is not valid HTTP") from None
        with response:
            location = response.headers.get("location")
            if response.is_redirect and location:
                url = urllib.parse.urljoin(url, location)
                continue
            content_type = response.headers.get("content-type", "")
            if response.status_code >= 300:
                return PageFacts(response.status_code, content_type.split(";")[0].strip())
            try:
                body = _read_body(response, deadline)
            except requests.exceptions.RequestException:
                raise _Stop(
                    Failure.TIMEOUT, f"the answer did not finish in {timeout:g} s"
                ) from None
            if body is None:
                if time.monotonic() > deadline:
                    raise _Stop(Failure.TIMEOUT, f"the answer took over {3 * timeout:g} s")
                raise _Stop(Failure.TOO_LARGE, f"over {MAX_BODY_BYTES // (1024 * 1024)} MB")
            return _page(body, content_type, response.url, project, response.status_code)
    raise _Stop(Failure.TOO_MANY_REDIRECTS)


def observe(url: str, *, cert_pem: str | None, project: str, timeout: float) -> ProbeObservation:
    """Probe one index URL and report what it answered."""
    started = time.monotonic()
    shown = mask_url(url)
    project = _NORMALIZE.sub("-", project).lower()

    def done(**facts: object) -> ProbeObservation:
        elapsed = int((time.monotonic() - started) * 1000)
        return ProbeObservation(shown, project, has_credentials, elapsed, **facts)  # type: ignore[arg-type]

    try:
        target = split_credentials(url)
        scheme, host, port = target.origin
    except ValueError:
        has_credentials = False
        return done(failure=Failure.BAD_URL, detail="the URL does not parse")
    has_credentials = bool(target.username or target.password)
    if scheme not in ("http", "https") or not host:
        return done(failure=Failure.BAD_URL, detail="not an http(s) URL with a host")
    tls = None
    if scheme == "https":
        tls, failure, detail = check_tls(host, port, cert_pem, timeout)
        if failure is not None or (tls is not None and not tls.verified):
            return done(tls=tls, failure=failure, detail=detail)
    parts = urllib.parse.urlsplit(target.url)
    root_path = parts.path if parts.path.endswith("/") else parts.path + "/"
    base = urllib.parse.urlunsplit(parts._replace(path=root_path))
    page_url = urllib.parse.urlunsplit(parts._replace(path=f"{root_path}{project}/"))
    try:
        with requests.Session() as session, _ca_file(cert_pem) as verify:
            session.trust_env = False
            page = _get(
                session,
                target,
                page_url,
                verify=verify,
                timeout=timeout,
                project=project,
            )
            root = None
            if page.status == 404:
                root = _get(session, target, base, verify=verify, timeout=timeout, project=None)
    except _Stop as stop:
        return done(tls=tls, failure=stop.failure, detail=stop.detail, redirect_to=stop.redirect_to)
    return done(tls=tls, project_page=page, index_page=root)


Observe = Callable[..., ProbeObservation]
HARD_LIMIT_FACTOR = 6
"""One URL's probe (handshakes, up to two pages and their redirects) is abandoned after this
many timeouts, whatever the index does: a body dripped a byte at a time resets the read
timeout with every byte, so the read timeout alone does not bound it."""


@dataclass
class Prober:
    """Probes combinations, each once, a few at a time. ``observe`` is swappable so that a
    test can count probes; ``probes`` counts the combinations probed."""

    project: str
    timeout: float
    parallelism: int = 8
    observe: Observe = observe
    probes: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def run(self, combos: Sequence[Combination]) -> Report:
        now = dt.datetime.now(dt.UTC)

        def one(combination: Combination) -> object:
            with self._lock:
                self.probes += 1
            cert = combination.cert.plaintext if combination.cert else None
            seen = {role: self._bounded(url, cert) for role, url in combination.targets()}
            return result(combination, seen, now=now)

        if not combos:
            return Report()
        results = in_parallel(combos, one, self.parallelism)
        return Report(results=tuple(results), probes=len(combos))  # type: ignore[arg-type]

    def _bounded(self, url: str, cert: str | None) -> ProbeObservation:
        """``observe`` in a thread of its own, given up on after the hard limit; any
        unexpected error is a failed result, never a crash (and never its text)."""
        box: list[ProbeObservation] = []
        limit = self.timeout * HARD_LIMIT_FACTOR

        def work() -> None:
            try:
                box.append(
                    self.observe(url, cert_pem=cert, project=self.project, timeout=self.timeout)
                )
            except Exception as exc:  # a verdict, not a traceback; its text may quote the URL
                box.append(
                    ProbeObservation(
                        mask_url(url),
                        self.project,
                        False,
                        failure=Failure.PROTOCOL,
                        detail=f"the probe failed ({type(exc).__name__})",
                    )
                )

        worker = threading.Thread(target=work, name="pkgrepo-probe", daemon=True)
        worker.start()
        worker.join(limit)
        if box:
            return box[0]
        return ProbeObservation(
            mask_url(url),
            self.project,
            False,
            elapsed_ms=int(limit * 1000),
            failure=Failure.TIMEOUT,
            detail=f"gave up after {limit:g} s in all",
        )
