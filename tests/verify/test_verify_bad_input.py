"""Indexes that misbehave: each is one clear failed result, never a traceback, never a
leaked password, never credentials sent to another host."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.cli import run_cli
from tests.verify.conftest import (
    INDEX_PASSWORD,
    Misbehaving,
    WriteFile,
    hang,
    send,
)

pytestmark = pytest.mark.verify
ServeBad = Callable[..., Misbehaving]


def verdict_of(capsys: pytest.CaptureFixture[str], path: Any) -> tuple[int, dict[str, Any], str]:
    code, out, err = run_cli(capsys, "verify", str(path), "--format", "json")
    assert "Traceback" not in out + err
    assert INDEX_PASSWORD not in out + err
    document = json.loads(out)
    return code, document["results"][0]["urls"][0], err


def test_an_index_that_hangs_is_reported_after_the_timeout(
    capsys: pytest.CaptureFixture[str], serve_bad: ServeBad, ca: Any, write_file: WriteFile
) -> None:
    server = serve_bad(hang)
    path = write_file(server.url, ca_pem=ca.cert_pem.bytes().decode(), timeout=0.5)
    code, verdict, _ = verdict_of(capsys, path)
    assert code == 1
    assert verdict["outcome"] == "failed"
    assert verdict["check"] == "reachable"
    assert verdict["reason"].startswith("no answer in time")


def test_a_redirect_to_another_host_is_reported_and_credentials_stay_home(
    capsys: pytest.CaptureFixture[str], serve_bad: ServeBad, ca: Any, write_file: WriteFile
) -> None:
    elsewhere = serve_bad(send(200, b"<html></html>"))
    target = f"https://127.0.0.1:{elsewhere.port}/simple/pkgrepo-demo-pkg/"
    server = serve_bad(send(302, location=target))
    path = write_file(server.url, ca_pem=ca.cert_pem.bytes().decode())
    code, verdict, _ = verdict_of(capsys, path)
    assert code == 1
    assert verdict["check"] == "redirect"
    assert f"redirects to another host (https://127.0.0.1:{elsewhere.port})" in verdict["reason"]
    assert elsewhere.requests == []  # not followed at all
    # The index itself was sent the credentials, as pip would send them.
    sent = server.requests[0]["authorization"]
    assert base64.b64decode(sent.split()[1]).decode() == f"ci-bot:{INDEX_PASSWORD}"


def test_a_same_origin_redirect_is_followed(
    capsys: pytest.CaptureFixture[str], serve_bad: ServeBad, ca: Any, write_file: WriteFile
) -> None:
    page = (
        b'<html><head><meta name="pypi:repository-version" content="1.0"></head><body>'
        b'<a href="/files/pkgrepo_demo_pkg-1.0.0-py3-none-any.whl">'
        b"pkgrepo_demo_pkg-1.0.0-py3-none-any.whl</a></body></html>"
    )

    def answer(handler: Any) -> None:
        if handler.path.startswith("/moved/"):
            send(200, page)(handler)
        else:
            send(301, location="/moved/pkgrepo-demo-pkg/")(handler)

    server = serve_bad(answer)
    code, verdict, _ = verdict_of(
        capsys, write_file(server.url, ca_pem=ca.cert_pem.bytes().decode())
    )
    assert code == 0, verdict
    assert verdict["reason"].startswith("PEP 503 HTML: 1 file(s)")
    assert all("authorization" in r for r in server.requests)


def test_html_that_is_not_an_index_fails(
    capsys: pytest.CaptureFixture[str], serve_bad: ServeBad, ca: Any, write_file: WriteFile
) -> None:
    login = b"<html><body><h1>Sign in</h1><a href='/sso/login'>Log in</a></body></html>"
    server = serve_bad(send(200, login))
    code, verdict, _ = verdict_of(
        capsys, write_file(server.url, ca_pem=ca.cert_pem.bytes().decode())
    )
    assert code == 1
    assert verdict["check"] == "simple-api"
    assert "answers HTML that is not a simple index" in verdict["reason"]


def test_a_json_answer_that_is_not_pep_691_fails(
    capsys: pytest.CaptureFixture[str], serve_bad: ServeBad, ca: Any, write_file: WriteFile
) -> None:
    server = serve_bad(send(200, b'{"hello": 1}', "application/vnd.pypi.simple.v1+json"))
    code, verdict, _ = verdict_of(
        capsys, write_file(server.url, ca_pem=ca.cert_pem.bytes().decode())
    )
    assert code == 1
    assert "does not parse as a simple index" in verdict["reason"]


def test_a_pep_691_json_answer_passes(
    capsys: pytest.CaptureFixture[str], serve_bad: ServeBad, ca: Any, write_file: WriteFile
) -> None:
    body = json.dumps(
        {
            "meta": {"api-version": "1.1"},
            "name": "pkgrepo-demo-pkg",
            "files": [
                {
                    "filename": "pkgrepo_demo_pkg-1.0.0-py3-none-any.whl",
                    "url": "/files/pkgrepo_demo_pkg-1.0.0-py3-none-any.whl",
                    "hashes": {},
                }
            ],
            "versions": ["1.0.0"],
        }
    ).encode()
    server = serve_bad(send(200, body, "application/vnd.pypi.simple.v1+json"))
    code, verdict, _ = verdict_of(
        capsys, write_file(server.url, ca_pem=ca.cert_pem.bytes().decode())
    )
    assert code == 0, verdict
    assert verdict["reason"].startswith("PEP 691 JSON: 1 file(s)")


def test_a_server_error_fails(
    capsys: pytest.CaptureFixture[str], serve_bad: ServeBad, ca: Any, write_file: WriteFile
) -> None:
    server = serve_bad(send(500, b"oops"))
    code, verdict, _ = verdict_of(
        capsys, write_file(server.url, ca_pem=ca.cert_pem.bytes().decode())
    )
    assert code == 1
    assert verdict["reason"] == "the index answers HTTP 500 for /pkgrepo-demo-pkg/"


def test_a_certificate_for_another_name_fails_before_credentials_are_sent(
    capsys: pytest.CaptureFixture[str], serve_bad: ServeBad, ca: Any, write_file: WriteFile
) -> None:
    server = serve_bad(send(200, b""), name="index.other-name.test")
    code, verdict, _ = verdict_of(
        capsys, write_file(server.url, ca_pem=ca.cert_pem.bytes().decode())
    )
    assert code == 1
    assert verdict["check"] == "cert-validates-index"
    assert "mismatch, certificate is not valid for '127.0.0.1'" in verdict["reason"]
    assert verdict["tls"]["subject"] is not None
    assert server.requests == []


def test_nothing_listens(capsys: pytest.CaptureFixture[str], write_file: WriteFile) -> None:
    path = write_file(f"https://ci-bot:{INDEX_PASSWORD}@127.0.0.1:9/simple/")
    code, verdict, _ = verdict_of(capsys, path)
    assert code == 1
    assert verdict["reason"] == "cannot connect: connection refused"


def test_a_host_that_does_not_resolve(
    capsys: pytest.CaptureFixture[str], write_file: WriteFile
) -> None:
    path = write_file(f"https://ci-bot:{INDEX_PASSWORD}@index.invalid/simple/")
    code, verdict, _ = verdict_of(capsys, path)
    assert code == 1
    assert verdict["reason"] == "cannot connect: the host name does not resolve"
    assert verdict["url"] == "https://****@index.invalid/simple/"


def test_an_index_that_drips_its_answer_is_cut_off(
    capsys: pytest.CaptureFixture[str], serve_bad: ServeBad, ca: Any, write_file: WriteFile
) -> None:
    def drip(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        for _ in range(200):  # one byte at a time, each well within the read timeout
            handler.wfile.write(b"<")
            handler.wfile.flush()
            time.sleep(0.2)

    server = serve_bad(drip)
    path = write_file(server.url, ca_pem=ca.cert_pem.bytes().decode(), timeout=0.5)
    code, verdict, _ = verdict_of(capsys, path)
    assert code == 1
    assert verdict["check"] == "reachable"
    assert verdict["reason"].startswith("no answer in time")


def test_a_probe_that_breaks_is_a_failed_result_not_a_crash() -> None:
    from reconciler.core.model import INDEX_URL, SecretValue, WorkspaceSpec, frozen_map
    from reconciler.core.verify import combinations
    from reconciler.edges.probe import Prober

    def broken(url: str, **kwargs: Any) -> Any:
        raise RuntimeError(f"boom {url}")

    url = f"https://ci-bot:{INDEX_PASSWORD}@127.0.0.1:9/simple/"
    spec = WorkspaceSpec(
        "dev", "http://127.0.0.1:9/dev", secrets=frozen_map({INDEX_URL: SecretValue(url)})
    )
    report = Prober(project="pip", timeout=1, observe=broken).run(combinations([spec]))
    (verdict,) = report.results[0].urls
    assert verdict.reason == "the probe failed (RuntimeError)"
    assert INDEX_PASSWORD not in repr(report)


def test_project_names_are_checked(
    capsys: pytest.CaptureFixture[str], write_file: WriteFile
) -> None:
    path = write_file(f"https://ci-bot:{INDEX_PASSWORD}@127.0.0.1:9/simple/")
    code, out, err = run_cli(capsys, "verify", str(path), "--project", "../../admin")
    assert code == 1
    assert "--project: '../../admin' is not a project name" in err
    assert out == ""


def test_a_redirect_target_is_shown_as_a_plan_shows_urls(
    capsys: pytest.CaptureFixture[str], serve_bad: ServeBad, ca: Any, write_file: WriteFile
) -> None:
    """A token in the redirect target's host is masked like one in a declared URL."""
    location = "https://tok9f8e7d6c5b4a392817161514.evil.example/simple/"
    shown = "https://****.evil.example"
    server = serve_bad(send(302, location=location))
    path = write_file(server.url, ca_pem=ca.cert_pem.bytes().decode())
    code, verdict, err = verdict_of(capsys, path)
    assert code == 1 and verdict["check"] == "redirect"
    assert f"redirects to another host ({shown}" in verdict["reason"]
    assert "tok9f8e7d6c5b4a392817161514" not in json.dumps(verdict) + err
