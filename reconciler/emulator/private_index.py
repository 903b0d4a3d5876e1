"""A real private package index on 127.0.0.1, for the demo and the tests.

It is the ``pypiserver`` package (the simple repository pip and Artifactory users know),
served over TLS with a certificate issued by a throw-away CA made with ``trustme``, asking
for HTTP basic auth on every request, and holding one small wheel built here. The desired
state then points ``index_url`` at it and ``cert`` at the CA, exactly as a team would point
at its Artifactory or Nexus, and ``pkgrepo verify`` and ``pip download`` both talk to it.

Both packages are development dependencies (the ``dev`` extra): only the demo and the tests
start an index.

    with running_index(tmp_path) as index:
        index.url            # https://USER:PASSWORD@127.0.0.1:PORT/simple/
        index.ca_pem         # the CA certificate to declare as pip-cert

``name_on_cert`` issues the server certificate for another name (the URL still says
127.0.0.1: a wrong-host-name certificate), ``expired`` issues one that has expired, and
``expires_in_days`` one that expires soon.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import ssl
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

LOOPBACK = "127.0.0.1"
DEMO_PROJECT = "pkgrepo-demo-pkg"
DEMO_VERSION = "1.0.0"
DEFAULT_USER = "ci-bot"


def build_wheel(directory: Path, name: str = DEMO_PROJECT, version: str = DEMO_VERSION) -> Path:
    """Write a minimal pure-Python wheel (one module, METADATA, WHEEL, RECORD) and return
    its path. It installs, and pip accepts its name and RECORD."""
    dist = name.replace("-", "_")
    module = f"{dist}/__init__.py"
    info = f"{dist}-{version}.dist-info"
    files = {
        module: f'"""A package served by the pkgrepo demo index."""\n\nVERSION = "{version}"\n',
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: A package served by the pkgrepo demo index\n"
        ),
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: pkgrepo\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record_lines = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record_lines.append(f"{path},sha256={digest},{len(data)}")
    record_lines.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record_lines) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that refuses the certificate or hangs up is not the server's error."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: they carry the basic-auth header."""


@dataclass(frozen=True)
class IndexHandle:
    """A running private index."""

    port: int
    username: str
    password: str
    ca_pem: str
    """The CA that issued the server certificate: what ``pip-cert`` should hold."""
    wheel: Path

    @property
    def bare_url(self) -> str:
        """The simple index URL without credentials."""
        return f"https://{LOOPBACK}:{self.port}/simple/"

    @property
    def url(self) -> str:
        """The simple index URL with its credentials, as ``pip-index-url`` holds it."""
        return f"https://{self.username}:{self.password}@{LOOPBACK}:{self.port}/simple/"

    def url_with(self, *, username: str | None = None, password: str | None = None) -> str:
        user = self.username if username is None else username
        secret = self.password if password is None else password
        return f"https://{user}:{secret}@{LOOPBACK}:{self.port}/simple/"


def make_ca() -> Any:
    """A new throw-away certificate authority (a ``trustme.CA``)."""
    import trustme

    return trustme.CA(organization_name="pkgrepo demo")


@contextmanager
def running_index(
    directory: Path,
    *,
    password: str,
    username: str = DEFAULT_USER,
    port: int = 0,
    ca: Any = None,
    name_on_cert: str = LOOPBACK,
    expired: bool = False,
    expires_in_days: int | None = None,
) -> Iterator[IndexHandle]:
    """Serve a pypiserver index holding one freshly built wheel, over TLS, with basic auth,
    on ``127.0.0.1:port`` (0: a free port), in a background thread."""
    import pypiserver

    ca = ca if ca is not None else make_ca()
    packages = directory / "packages"
    wheel = build_wheel(packages)
    not_after = None
    if expired:
        not_after = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    elif expires_in_days is not None:
        not_after = dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days, hours=12)
    leaf = ca.issue_cert(name_on_cert, not_after=not_after)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)

    def auther(user: str, secret: str) -> bool:
        return hmac.compare_digest(user.encode(), username.encode()) and hmac.compare_digest(
            secret.encode(), password.encode()
        )

    app = pypiserver.app(
        roots=[str(packages)],
        authenticate=["download", "list", "update"],
        password_file=None,
        auther=auther,
        disable_fallback=True,  # never send a client on to the public PyPI
    )
    logging.getLogger("pypiserver").setLevel(logging.ERROR)
    server = make_server(LOOPBACK, port, app, server_class=_Server, handler_class=_QuietHandler)
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, name="private-index", daemon=True)
    thread.start()
    try:
        yield IndexHandle(
            port=server.server_address[1],
            username=username,
            password=password,
            ca_pem=ca.cert_pem.bytes().decode(),
            wheel=wheel,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
