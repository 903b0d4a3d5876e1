"""The HTTP server: ``ThreadingHTTPServer`` with HTTP/1.1 keep-alive, one thread a connection.

Per request: split the workspace prefix off the path, read the body (bounded), look the route
up, authenticate, apply the workspace's faults, call the handler, save the state if it changed
something, count, answer. Every answer, including every refusal, is JSON of the shape
``{"error_code", "message"}``; an unexpected exception becomes a 500 with a generic message
(never a trace, never a dropped connection -- only the drop fault drops). Request bodies are
never logged or echoed.

``handle.running_emulator`` runs it in a thread for tests and embedding.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler.emulator import api, errors
from reconciler.emulator.account import OAuthError, oidc_document
from reconciler.emulator.faults import Decision, after_commit_error, endpoint_name
from reconciler.emulator.identity import Principal
from reconciler.emulator.workspaces import (
    DEFAULT_WORKSPACE,
    Listeners,
    RequestSeen,
    Workspace,
    WorkspaceRegistry,
    is_workspace_name,
)

logger = logging.getLogger("pkgrepo.emulator")

RequestLog = Callable[[str], None]
DRAIN_LIMIT = 64 * 1024 * 1024
"""An oversized body up to this size is read and discarded so the connection stays usable."""
_ACCOUNT_PREFIXES = ("/api/2.0/accounts/", "/oidc/accounts/")
"""Paths of the account host (the root URL), not of a workspace."""
_REASONS = {status.value: status.phrase for status in HTTPStatus}


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        registry: WorkspaceRegistry,
        request_log: RequestLog | None = None,
        listeners: Listeners | None = None,
    ) -> None:
        self.registry = registry
        self.request_log = request_log
        self.listeners = listeners or Listeners()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def open_connections(self) -> int:
        """Client connections open right now (keep-alive ones included)."""
        with self._connections_lock:
            return len(self._connections)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away (reset, broken pipe, stalled past the timeout) is normal
        for a server; anything else is still reported, as socketserver does."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def close_connections(self) -> None:
        """End keep-alive connections, so no thread serves the old state after a stop."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 20
    """Seconds a connection may stall mid-request (or idle between keep-alive requests)
    before it is closed: half a request must not hold a thread forever."""
    server_version = "pkgrepo-emulator"
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's own per-request logging; ``_log`` does ours."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level refusals of http.server (bad request line, headers too long, unknown
        method) answered in the service's JSON error shape instead of an HTML page."""
        del explain
        error_code = "ENDPOINT_NOT_FOUND" if code == 501 else "BAD_REQUEST"
        status = 404 if code == 501 else code
        self.close_connection = True
        body = {"error_code": error_code, "message": message or _REASONS.get(code, "Error")}
        self._write(status, json.dumps(body).encode(), "application/json", {})

    # -- one request --------------------------------------------------------------------

    _seen_caller: Principal | None = None
    _seen_scope: str | None = None
    _applied: bool = False

    def _serve(self) -> None:
        started = time.perf_counter()
        self._seen_caller, self._seen_scope, self._applied = None, None, False
        path, _, query_string = self.path.partition("?")
        method = self.command
        workspace: Workspace | None = None
        api_path = path
        answer: _Answer | None
        try:
            if path.startswith(_ACCOUNT_PREFIXES):
                body = self._read_body(api.MAX_BODY_BYTES)
                answer = self._account(method, path, body)
                self._write(answer.status, answer.body, answer.content_type, answer.headers)
                self._log(method, path, answer.status, started)
                return
            workspace_name, api_path = _split_workspace(path)
            body = self._read_body(api.max_body(method, api_path))
            if not workspace_name:
                raise errors.endpoint_not_found(method, path)
            workspace = self.server.registry.get(workspace_name)
            answer = self._dispatch(method, api_path, query_string, body, workspace_name, workspace)
        except errors.ApiError as exc:
            answer = _error_answer(exc)
        except Exception:  # an emulator bug must still answer in the service's shape
            logger.exception("unexpected error serving %s %s", method, api_path)
            answer = _error_answer(errors.ApiError("INTERNAL_ERROR", "Internal error."))
        status = answer.status if answer is not None else 0
        if workspace is not None:  # counted before answering: a client never sees a lag
            workspace.record(method, api_path, status)
            self.server.listeners.notify(
                RequestSeen(
                    workspace.name,
                    method,
                    api_path,
                    status,
                    self._seen_caller,
                    self._seen_scope,
                    self._applied,
                )
            )
        if answer is None:
            self._drop()
        else:
            self._write(answer.status, answer.body, answer.content_type, answer.headers)
        self._log(method, path, status, started)

    def _log(self, method: str, path: str, status: int, started: float) -> None:
        if self.server.request_log is not None:
            elapsed = (time.perf_counter() - started) * 1000
            shown = status if status else "dropped"
            self.server.request_log(f"{method} {path} {shown} {elapsed:.1f}ms")

    def _account(self, method: str, path: str, body: bytes) -> _Answer:
        """The account host's API: the workspaces list and the account token endpoint."""
        account = self.server.registry.account
        authorization = self.headers.get("Authorization") or ""
        parts = path.strip("/").split("/")
        try:
            if account is None:
                raise errors.endpoint_not_found(method, path)
            # /api/2.0/accounts/<id>/workspaces
            if parts[:3] == ["api", "2.0", "accounts"] and parts[4:] == ["workspaces"]:
                if method != "GET":
                    raise errors.endpoint_not_found(method, path)
                return _Answer(200, account.list_workspaces(authorization, parts[3]))
            # /oidc/accounts/<id>/v1/token and its discovery document
            if parts[:2] == ["oidc", "accounts"] and len(parts) >= 4:
                if parts[2] != account.settings.account_id:
                    raise errors.not_found(f"Account {parts[2]} does not exist.")
                if parts[3:] == ["v1", "token"] and method == "POST":
                    try:
                        token = account.issue(authorization, body, f"account:{parts[2]}")
                    except OAuthError as error:
                        return _Answer(error.status, error.body())
                    return _Answer(200, json.dumps(token).encode())
                if parts[3:] == [".well-known", "oauth-authorization-server"]:
                    base = f"{self._base_url(DEFAULT_WORKSPACE)}/oidc/accounts/{parts[2]}"
                    return _Answer(200, json.dumps(oidc_document(base)).encode())
            raise errors.endpoint_not_found(method, path)
        except errors.ApiError as exc:
            return _error_answer(exc)

    def _dispatch(
        self,
        method: str,
        api_path: str,
        query_string: str,
        body: bytes,
        workspace_name: str,
        workspace: Workspace,
    ) -> _Answer | None:
        """The answer to give, or None to drop the connection."""
        route = api.ROUTES.get((method, api_path))
        if route is None:
            raise errors.endpoint_not_found(method, _display_path(api_path))
        request = api.Request(
            method=method,
            path=api_path,
            query=dict(urllib.parse.parse_qsl(query_string, keep_blank_values=True)),
            body=body,
            content_type=self.headers.get("Content-Type", ""),
            base_url=self._base_url(workspace_name),
            workspace=workspace,
            authorization=self.headers.get("Authorization") or "",
            account=self.server.registry.account,
            directory=self.server.registry.directory,
        )
        decision = Decision()
        if route.authenticated or route.faulted:
            if route.authenticated:
                request.principal = self._seen_caller = self._authenticate(workspace_name)
            decision = workspace.faults.decide(endpoint_name(api_path))
            if decision.delay:
                time.sleep(decision.delay)
            if decision.drop:
                return None
            if decision.error is not None:
                return _error_answer(decision.error)
        result = route.handler(request)
        self._applied = True
        self._seen_scope = _scope_named(request)
        if route.mutating:
            self.server.registry.save()
        if decision.after_commit is not None:
            failure = after_commit_error(decision.after_commit)
            return None if failure.error is None else _error_answer(failure.error)
        if isinstance(result, api.Response):
            return _Answer(result.status, result.body, result.content_type)
        return _Answer(200, json.dumps(result).encode())

    def _authenticate(self, workspace_name: str) -> Principal:
        header = self.headers.get("Authorization")
        if not header:
            raise errors.missing_credentials()
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.missing_credentials()
        registry = self.server.registry
        principal = registry.directory.authenticate(token.strip())
        if principal is None and registry.account is not None:
            principal = registry.account.authenticate_workspace(token.strip(), workspace_name)
        if principal is None:
            raise errors.invalid_token()
        return principal

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise errors.bad_request(
                "Chunked request bodies are not supported; send Content-Length."
            )
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            self.close_connection = True
            raise errors.bad_request("Invalid Content-Length header.") from None
        if length > limit:
            if length <= DRAIN_LIMIT:
                self._discard(length)
            else:
                self.close_connection = True
            raise errors.bad_request(
                f"Request body of {length} bytes exceeds the limit of {limit} bytes."
            )
        return self.rfile.read(length) if length else b""

    def _discard(self, length: int) -> None:
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)

    def _base_url(self, workspace_name: str) -> str:
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        prefix = "" if workspace_name == DEFAULT_WORKSPACE else f"/{workspace_name}"
        return f"http://{host}{prefix}"

    def _drop(self) -> None:
        """Close the connection without answering (the drop fault)."""
        self.close_connection = True
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _write(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            f"Server: {self.server_version}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        payload = head if self.command == "HEAD" else head + body
        try:
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


def _error_answer(error: errors.ApiError) -> _Answer:
    return _Answer(error.status, json.dumps(error.body()).encode(), headers=error.headers)


def _scope_named(request: api.Request) -> str | None:
    """The ``scope`` field of a Secrets API request the handler has parsed (a name, never a
    value), for request listeners."""
    if not request.path.startswith("/api/2.0/secrets/"):
        return None
    try:
        scope = request.fields().get("scope")
    except errors.ApiError:
        return None
    return scope if isinstance(scope, str) else None


def _split_workspace(path: str) -> tuple[str, str]:
    """``/ws1/api/2.0/x`` -> (``ws1``, ``/api/2.0/x``); the root serves ``default``. An
    invalid workspace name gives ("", path)."""
    if path.startswith(("/api/", "/.well-known/")):
        return DEFAULT_WORKSPACE, path
    _, name, rest = [*path.split("/", 2), "", ""][:3]
    if not is_workspace_name(name):
        return "", path
    return name, "/" + rest


def _display_path(api_path: str) -> str:
    for prefix in ("/api/2.0", "/api/2.1", "/api/1.2"):
        if api_path.startswith(prefix + "/"):
            return api_path[len(prefix) :]
    return api_path
