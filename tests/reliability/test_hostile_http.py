"""The emulator's HTTP layer against hostile clients, over raw sockets: malformed JSON, huge
bodies, wrong methods, path tricks, bad Content-Length, garbage, pipelining, slowloris.

Every exchange ends in an answer in the service's JSON error shape or a clean close (never
a trace, never a hang), path tricks never reach another workspace's data, and the server
keeps serving afterwards.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.emulator import ADMIN_TOKEN, EmulatorConfig, EmulatorHandle, running_emulator

AUTH = f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
LIST = b"/ws1/api/2.0/secrets/scopes/list"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    will_close: bool


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorHandle]:
    with running_emulator(EmulatorConfig()) as handle:
        admin = handle.admin
        handle.backend("ws1").create_scope(admin, "ws1-scope")
        handle.backend("ws2").create_scope(admin, "ws2-private")
        handle.backend("ws2").put_secret(admin, "ws2-private", "k", b"ws2-value", is_bytes=False)
        yield handle


def exchange(
    emu: EmulatorHandle, data: bytes, *, timeout: float = 10.0, half_close: bool = False
) -> Answer | None:
    """Send raw bytes, read one answer. None: the server closed cleanly without one. A
    timeout (no answer, no close) fails the test."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=timeout) as sock:
        # the server may refuse early and close: then read what it said
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        if half_close:
            # ... or may already have closed (a header too long): then there is nothing to shut
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        method = "HEAD" if data.startswith(b"HEAD ") else "GET"
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        body = response.read()
        return Answer(response.status, body, dict(response.getheaders()), response.will_close)


def read_answer(stream: BinaryIO) -> tuple[int, bytes]:
    """One answer from a kept-alive connection: status and body (Content-Length framed)."""
    status = int(stream.readline().split()[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, stream.read(length)


def assert_error_json(answer: Answer | None) -> None:
    """An error in the service's shape, or a clean close."""
    if answer is None:
        return
    assert answer.status >= 400, answer
    assert answer.headers.get("Content-Type") == "application/json", answer
    document = json.loads(answer.body)
    assert set(document) == {"error_code", "message"}, document
    assert "Traceback" not in document["message"]


def assert_serving(emu: EmulatorHandle) -> None:
    answer = exchange(
        emu, b"GET " + LIST + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Connection: close\r\n\r\n"
    )
    assert answer is not None and answer.status == 200, answer
    assert json.loads(answer.body) == {
        "scopes": [{"name": "ws1-scope", "backend_type": "DATABRICKS"}]
    }


def request(
    method: bytes,
    path: bytes,
    body: bytes = b"",
    *,
    headers: bytes = b"",
    length: bytes | None = None,
) -> bytes:
    size = str(len(body)).encode() if length is None else length
    return (
        method
        + b" "
        + path
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + AUTH
        + headers
        + b"Content-Type: application/json\r\nContent-Length: "
        + size
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )


PUT = b"/ws1/api/2.0/secrets/put"
BAD_BODIES = {
    "truncated-json": b'{"scope": "ws1-scope", "key": ',
    "not-utf8": b'{"scope": "\xff\xfe", "key": "k", "string_value": "v"}',
    "array": b"[1, 2, 3]",
    "nan": b'{"scope": NaN}',
    "wrong-types": b'{"scope": 1, "key": [], "string_value": {}}',
    "both-values": b'{"scope": "ws1-scope", "key": "k", "string_value": "a", '
    b'"bytes_value": "YQ=="}',
    "bad-base64": b'{"scope": "ws1-scope", "key": "k", "bytes_value": "%%%"}',
    "huge-key": b'{"scope": "ws1-scope", "key": "' + b"k" * 100_000 + b'", "string_value": "v"}',
    "nul-key": b'{"scope": "ws1-scope", "key": "a\\u0000b", "string_value": "v"}',
    "duplicate-fields": b'{"scope": "x", "scope": "ws1-scope", "key": "k"}',
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_malformed_bodies(emu: EmulatorHandle, body: bytes) -> None:
    answer = exchange(emu, request(b"POST", PUT, body))
    assert answer is not None and answer.status == 400, answer
    assert_error_json(answer)
    assert_serving(emu)


def test_a_deeply_nested_body_is_a_malformed_request(emu: EmulatorHandle) -> None:
    answer = exchange(emu, request(b"POST", PUT, b"[" * 100_000 + b"]" * 100_000))
    assert_error_json(answer)
    assert answer is not None and answer.status == 400, answer
    assert_serving(emu)


def test_a_body_past_the_limit_is_drained_and_the_connection_reused(emu: EmulatorHandle) -> None:
    big = b'{"scope": "ws1-scope", "key": "k", "string_value": "' + b"x" * (2 << 20) + b'"}'
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(
            b"POST "
            + PUT
            + b" HTTP/1.1\r\nHost: x\r\n"
            + AUTH
            + b"Content-Length: "
            + str(len(big)).encode()
            + b"\r\n\r\n"
            + big
        )
        sock.sendall(b"GET " + LIST + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + b"\r\n")
        stream = sock.makefile("rb")
        statuses = [read_answer(stream)[0] for _ in range(2)]
    assert statuses == [400, 200]


@pytest.mark.parametrize(
    "length", [b"1073741824", b"-1", b"12abc", b"", b"1e3", b"99999999999999999999999999"]
)
def test_content_length_that_lies_or_is_absurd(emu: EmulatorHandle, length: bytes) -> None:
    answer = exchange(
        emu, request(b"POST", PUT, b'{"scope": "ws1-scope"}', length=length), half_close=True
    )
    assert_error_json(answer)
    assert_serving(emu)


def test_two_conflicting_content_lengths(emu: EmulatorHandle) -> None:
    data = request(b"POST", PUT, b"{}", headers=b"Content-Length: 500\r\n")
    assert_error_json(exchange(emu, data, half_close=True))
    assert_serving(emu)


def test_a_body_shorter_than_its_content_length_then_eof(emu: EmulatorHandle) -> None:
    answer = exchange(emu, request(b"POST", PUT, b'{"scope":', length=b"500"), half_close=True)
    assert_error_json(answer)
    assert_serving(emu)


def test_chunked_bodies_are_refused(emu: EmulatorHandle) -> None:
    data = (
        b"POST "
        + PUT
        + b" HTTP/1.1\r\nHost: x\r\n"
        + AUTH
        + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    answer = exchange(emu, data)
    assert answer is not None and answer.status == 400
    assert_error_json(answer)
    assert_serving(emu)


@pytest.mark.parametrize(
    "method",
    [
        b"DELETE",
        b"PUT",
        b"PATCH",
        b"OPTIONS",
        b"TRACE",
        b"CONNECT",
        b"BREW",
        b"get",
        b"G\x00T",
        b"X" * 5000,
    ],
)
def test_wrong_methods(emu: EmulatorHandle, method: bytes) -> None:
    answer = exchange(emu, request(method, LIST))
    assert answer is not None, "a wrong method deserves an answer"
    assert_error_json(answer)
    assert_serving(emu)


def test_head_gets_headers_only(emu: EmulatorHandle) -> None:
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(
            b"HEAD " + LIST + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Connection: close\r\n\r\n"
        )
        response = http.client.HTTPResponse(sock, method="HEAD")
        response.begin()
        assert response.read() == b""
        assert response.status in (200, 404)
    assert_serving(emu)


TRICKS = [
    b"/ws1/../ws2/api/2.0/secrets/list?scope=ws2-private",
    b"/ws1/%2e%2e/ws2/api/2.0/secrets/list?scope=ws2-private",
    b"/%2e%2e/ws2/api/2.0/secrets/list?scope=ws2-private",
    b"/ws1/api/2.0/../../ws2/api/2.0/secrets/list?scope=ws2-private",
    b"/ws1/api/2.0/secrets/%2e%2e/%2e%2e/%2e%2e/ws2/api/2.0/secrets/list?scope=ws2-private",
    b"//ws1/../ws2/api/2.0/secrets/list?scope=ws2-private",
    b"/ws1//api/2.0/secrets/list?scope=ws2-private",
    b"/ws1/api/2.0//secrets/list?scope=ws2-private",
    b"/ws1%2fws2/api/2.0/secrets/list?scope=ws2-private",
    b"/ws1/api/2.0/secrets/list%00?scope=ws2-private",
    b"/ws1/api/2.0/secrets/list\x00/../x?scope=ws2-private",
    b"/ws1\x00ws2/api/2.0/secrets/list?scope=ws2-private",
    b"/ws\xc3\xa9/api/2.0/secrets/list?scope=ws2-private",
    b"/ws1/api/2.0/secrets/list\xff?scope=ws2-private",
    b"http://evil.example/ws2/api/2.0/secrets/list?scope=ws2-private",
    b"*",
    b"/" + b"a" * 70_000,
    b"/ws1/api/2.0/secrets/list?scope=" + b"%" * 30_000,
    b"/ws1/api/2.0/secrets/list?scope=ws2-private&scope=ws1-scope",
    b"/ws1/api/2.0/secrets/list?scope=..%2fws2-private",
    b"\\ws2\\api\\2.0\\secrets\\list?scope=ws2-private",
]


@pytest.mark.parametrize("path", TRICKS, ids=range(len(TRICKS)))
def test_path_tricks_never_reach_another_workspace(emu: EmulatorHandle, path: bytes) -> None:
    answer = exchange(
        emu, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Connection: close\r\n\r\n"
    )
    assert answer is None or b"ws2-value" not in answer.body
    assert answer is None or answer.status != 200 or b'"k"' not in answer.body, answer
    assert_error_json(answer if answer is None or answer.status != 200 else None)
    assert_serving(emu)


GARBAGE = [
    b"\r\n\r\n",
    b"GET /\r\n\r\n",  # HTTP/0.9
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # an HTTP/2 preface
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # a TLS hello
    b"GET " + LIST + b" HTTP/9.9\r\n\r\n",
    b"GET " + LIST + b" HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
    b"GET " + LIST + b" HTTP/1.1\r\nX-Long: " + b"v" * 100_000 + b"\r\n\r\n",
    b"GET " + LIST + b" HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET " + LIST + b" HTTP/1.1\r\nAuthorization: Bearer \x00\xff\r\n\r\n",
    b"GET " + LIST + b" HTTP/1.1\r\nAuthorization: Bearer " + b"t" * 60_000 + b"\r\n\r\n",
    b"GET " + LIST + b" HTTP/1.1\r\nAuthorization: Basic Og==\r\n\r\n",
    bytes(range(256)) * 4,
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage(emu: EmulatorHandle, data: bytes) -> None:
    assert_error_json(exchange(emu, data, half_close=True))
    assert_serving(emu)


def test_pipelined_requests_are_all_answered(emu: EmulatorHandle) -> None:
    one = b"GET " + LIST + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + b"\r\n"
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(one * 100)
        stream = sock.makefile("rb")
        assert [read_answer(stream)[0] for _ in range(100)] == [200] * 100


def test_slowloris_connections_do_not_starve_other_clients(emu: EmulatorHandle) -> None:
    """Fifty clients each hold half a request open; a real client is still served, and the
    server keeps serving once they give up."""
    stalled = []
    try:
        for index in range(50):
            sock = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
            partial = (
                b"GET " + LIST + b" HTTP/1.1\r\nHost: x\r\nX-Slow: "
                if index % 2
                else request(b"POST", PUT, b'{"scope": "ws1-', length=b"4096")
            )
            sock.sendall(partial)
            stalled.append(sock)
        assert_serving(emu)
    finally:
        for sock in stalled:
            sock.close()
    assert_serving(emu)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_stalled_request_is_closed_by_the_server(emu: EmulatorHandle) -> None:
    with socket.create_connection(("127.0.0.1", emu.port), timeout=60) as sock:
        sock.sendall(b"GET " + LIST + b" HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        try:
            data = sock.recv(4096)
        except TimeoutError:
            pytest.fail("the server kept a stalled request open for 60 s")
    assert data == b"" or data.startswith(b"HTTP/1.1 4")


def test_a_client_reset_mid_request_prints_no_trace(
    emu: EmulatorHandle, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(b"GET " + LIST + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + b"\r\n")
        assert read_answer(sock.makefile("rb"))[0] == 200
        sock.sendall(b"GET " + LIST + b" HTTP/1.1\r\n")  # half a request, then a reset
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert_serving(emu)
    printed = ""
    deadline = time.monotonic() + 2.0  # give the reset connection's thread time to report
    while "Traceback" not in printed and time.monotonic() < deadline:
        printed += capfd.readouterr().err
        time.sleep(0.05)
    assert "Traceback" not in printed, printed[-1500:]


METHODS = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS"]) | st.binary(
    min_size=1, max_size=8
)
PATHS = st.one_of(
    st.sampled_from(
        [
            LIST,
            PUT,
            b"/ws1/api/2.0/secrets/acls/put",
            b"/api/2.0/secrets/list",
            b"/.well-known/databricks-config",
            b"/ws1/api/2.0/workspace/import",
        ]
    ),
    st.binary(max_size=60).map(lambda b: b"/" + b),
    st.text(max_size=30).map(lambda t: ("/ws1/" + t).encode("utf-8", "surrogatepass")),
)


@pytest.mark.timeout(120)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=METHODS,
    path=PATHS,
    body=st.binary(max_size=300),
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    b"Content-Type",
                    b"Content-Length",
                    b"Transfer-Encoding",
                    b"Authorization",
                    b"Host",
                    b"X-Any",
                ]
            ),
            st.binary(max_size=20),
        ),
        max_size=4,
    ),
)
def test_random_requests(
    emu: EmulatorHandle, method: bytes, path: bytes, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    extra = b"".join(
        name + b": " + value.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
        for name, value in headers
    )
    data = (
        method
        + b" "
        + path.replace(b" ", b"%20").replace(b"\r", b"").replace(b"\n", b"")
        + b" HTTP/1.1\r\n"
        + AUTH
        + extra
        + b"Connection: close\r\n\r\n"
        + body
    )
    answer = exchange(emu, data, half_close=True)
    if answer is not None and answer.status >= 400 and method != b"HEAD":
        assert_error_json(answer)
    assert_serving(emu)
