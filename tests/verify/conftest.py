"""A real private index (pypiserver behind TLS with a trustme CA and basic auth) on a free
127.0.0.1 port, misbehaving indexes beside it, and desired-state files pointing at them."""

from __future__ import annotations

import http.server
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator.private_index import (
    DEMO_PROJECT,
    IndexHandle,
    make_ca,
    running_index,
)
from tests.support.fleet_files import defaults_block, workspace, write_desired

INDEX_PASSWORD = "planted-Index-Pw-9c4e7d"
WRONG_PASSWORD = "planted-Wrong-Pw-31b8aa"
pytestmark = pytest.mark.verify


@pytest.fixture
def ca() -> Any:
    return make_ca()


@pytest.fixture
def index(tmp_path: Path, ca: Any) -> Iterator[IndexHandle]:
    with running_index(tmp_path / "index", password=INDEX_PASSWORD, ca=ca) as handle:
        yield handle


WriteFile = Callable[..., Path]
Waivers = list[dict[str, str]]
HTTP_WAIVER: Waivers = [{"check": "https-only", "reason": "local test index"}]


@pytest.fixture
def write_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WriteFile:
    """A desired-state file whose index URL comes from ``$INDEX_URL`` (so the credentials
    are never written in it) and whose pip-cert is ``ca_pem``."""

    def write(
        index_url: str,
        *,
        ca_pem: str | None = None,
        hosts: dict[str, str] | None = None,
        extras: tuple[str, ...] = (),
        project: str = DEMO_PROJECT,
        timeout: float = 5,
        waive_http: bool = False,
        waivers: Mapping[str, Waivers] | None = None,
        default_waivers: Waivers | None = None,
        extra: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Path:
        """``waivers`` maps a workspace to its ``waivers:`` list, ``default_waivers`` is the
        defaults' list; ``extra`` maps a workspace to more fields of its own."""
        monkeypatch.setenv("INDEX_URL", index_url)
        monkeypatch.setenv("PKGREPO_TEST_TOKEN", "dapi-emulator-admin")
        cert = None
        if ca_pem is not None:
            (tmp_path / "ca.pem").write_text(ca_pem)
            cert = {"file": "ca.pem"}
        for number, url in enumerate(extras):
            monkeypatch.setenv(f"EXTRA_URL_{number}", url)
        block = defaults_block(
            "PKGREPO_TEST_TOKEN",
            index_url={"env": "INDEX_URL"},
            extra_index_urls=[f"${{env:EXTRA_URL_{n}}}" for n in range(len(extras))] or None,
            cert=cert,
            **({"waivers": default_waivers} if default_waivers else {}),
        )
        members = {}
        for name, host in (hosts or {"dev": "http://127.0.0.1:9/dev"}).items():
            listed = (HTTP_WAIVER if waive_http else []) + (waivers or {}).get(name, [])
            fields = {"waivers": listed} if listed else {}
            members[name] = workspace(host, **fields, **(extra or {}).get(name, {}))
        verify = {"project": project, "timeout_seconds": timeout}
        return write_desired(tmp_path / "pkgrepo.yaml", members, defaults=block, verify=verify)

    return write


@dataclass
class Misbehaving:
    """A TLS server on 127.0.0.1 that answers every request the same wrong way, and
    remembers what it was sent."""

    port: int
    requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://ci-bot:{INDEX_PASSWORD}@127.0.0.1:{self.port}/simple/"


Answer = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextmanager
def misbehaving(ca: Any, answer: Answer, *, name: str = "127.0.0.1") -> Iterator[Misbehaving]:
    state = Misbehaving(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append({k.lower(): v for k, v in self.headers.items()})
            answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass

    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(name).configure_cert(context)
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def serve_bad(ca: Any) -> Iterator[Callable[..., Misbehaving]]:
    """Start a misbehaving server for the rest of the test."""
    with ExitStack() as stack:

        def start(answer: Answer, *, name: str = "127.0.0.1") -> Misbehaving:
            return stack.enter_context(misbehaving(ca, answer, name=name))

        yield start


def hang(handler: http.server.BaseHTTPRequestHandler) -> None:
    time.sleep(30)


def send(status: int, body: bytes = b"", content_type: str = "text/html", **headers: str) -> Answer:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            handler.send_header(key.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    return answer
