"""`pkgrepo verify` against a real private index (pypiserver, TLS with a trustme CA, basic
auth), and what pip itself says about the same configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator.private_index import DEMO_PROJECT, IndexHandle, make_ca, running_index
from tests.support.cli import run_cli
from tests.support.leaks import Scanner
from tests.verify.conftest import INDEX_PASSWORD, WRONG_PASSWORD, WriteFile

pytestmark = pytest.mark.verify


def pip_download(index_url: str, ca_file: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    """What pip on a cluster would do with these settings: only the declared index and CA
    (no pip.conf, no PIP_* or CA-bundle variables of this machine)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIP_") and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--isolated",
            "--no-deps",
            "--no-cache-dir",
            "--retries",
            "0",
            "--timeout",
            "10",
            "--index-url",
            index_url,
            "--cert",
            str(ca_file),
            "--dest",
            str(dest),
            DEMO_PROJECT,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_verify_passes_against_the_private_index_and_shows_its_certificate(
    capsys: pytest.CaptureFixture[str], index: IndexHandle, write_file: WriteFile
) -> None:
    path = write_file(index.url, ca_pem=index.ca_pem)
    code, out, err = run_cli(capsys, "verify", str(path))
    assert code == 0, out + err
    assert "[ok] #1" in out
    assert "PEP 503 HTML: 1 file(s) of 'pkgrepo-demo-pkg'" in out
    assert "issuer " in out and "O=pkgrepo demo" in out
    assert "valid against the pip-cert" in out
    assert f"https://****@127.0.0.1:{index.port}/simple/" in out
    assert "1 combination(s) probed, 1 ok, 0 failed" in out
    assert INDEX_PASSWORD not in out + err


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("good", None),
        ("wrong password", "credentials"),
        ("wrong CA", "cert-validates-index"),
        ("expired certificate", "cert-validates-index"),
        ("wrong host name", "cert-validates-index"),
    ],
)
def test_verify_agrees_with_pip(
    case: str,
    check: str | None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_file: WriteFile,
) -> None:
    ca = make_ca()
    declared = make_ca() if case == "wrong CA" else ca
    with running_index(
        tmp_path / "index",
        password=INDEX_PASSWORD,
        ca=ca,
        expired=case == "expired certificate",
        name_on_cert="index.other-name.test" if case == "wrong host name" else "127.0.0.1",
    ) as index:
        url = index.url_with(password=WRONG_PASSWORD) if case == "wrong password" else index.url
        ca_pem = declared.cert_pem.bytes().decode()
        path = write_file(url, ca_pem=ca_pem)
        code, out, err = run_cli(capsys, "verify", str(path), "--format", "json")
        pip = pip_download(url, tmp_path / "ca.pem", tmp_path / "downloads")
    document = json.loads(out)
    verdict = document["results"][0]["urls"][0]
    assert (code == 0) == (pip.returncode == 0), (case, verdict, pip.stdout + pip.stderr)
    assert verdict["check"] == check
    if case == "good":
        assert (tmp_path / "downloads" / index.wheel.name).exists()
    for planted in (INDEX_PASSWORD, WRONG_PASSWORD):
        assert planted not in out + err


def test_failures_name_the_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, write_file: WriteFile
) -> None:
    ca = make_ca()
    with running_index(tmp_path / "i", password=INDEX_PASSWORD, ca=ca, expired=True) as index:
        code, out, _ = run_cli(
            capsys, "verify", str(write_file(index.url, ca_pem=ca.cert_pem.bytes().decode()))
        )
    assert code == 1
    assert "certificate has expired (checked against the pip-cert)" in out
    assert "credentials were not sent" in out
    with running_index(tmp_path / "j", password=INDEX_PASSWORD, ca=ca) as index:
        wrong = index.url_with(password=WRONG_PASSWORD)
        code, out, _ = run_cli(capsys, "verify", str(write_file(wrong, ca_pem=index.ca_pem)))
    assert code == 1
    assert "credentials refused (HTTP 403)" in out or "credentials refused (HTTP 401)" in out


def test_a_project_the_index_does_not_hold_falls_back_to_the_root(
    capsys: pytest.CaptureFixture[str], index: IndexHandle, write_file: WriteFile
) -> None:
    path = write_file(index.url, ca_pem=index.ca_pem, project="pip")
    code, out, _ = run_cli(capsys, "verify", str(path))
    assert code == 0, out
    assert "the index lists 1 project(s) ('pip' is not one of them" in out


def test_each_extra_index_is_verified(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    index: IndexHandle,
    ca: Any,
    write_file: WriteFile,
) -> None:
    with running_index(tmp_path / "other", password="other-pw", ca=ca) as other:
        wrong = other.url_with(password="not-the-other-pw")
        path = write_file(index.url, ca_pem=index.ca_pem, extras=(wrong,))
        code, out, err = run_cli(capsys, "verify", str(path))
    assert code == 1
    assert "ok      index_url" in out
    assert "failed  extra_index_urls[0]" in out
    assert "not-the-other-pw" not in out + err


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "junit"])
def test_no_format_leaks_the_password(
    fmt: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    index: IndexHandle,
    write_file: WriteFile,
) -> None:
    url = index.url_with(password=WRONG_PASSWORD) + "?token=planted-Query-Tok-5d1e"
    path = write_file(url, ca_pem=index.ca_pem)
    code, out, err = run_cli(capsys, "verify", str(path), "--format", fmt)
    report = tmp_path / f"report.{fmt}"
    run_cli(capsys, "verify", str(path), "--format", fmt, "--output", str(report))
    assert code == 1
    scanner = Scanner(
        {
            "password": WRONG_PASSWORD,
            "query token": "planted-Query-Tok-5d1e",
            "url": url,
        }
    )
    found = scanner.scan("stdout", out) + scanner.scan("stderr", err)
    found += scanner.scan(report.name, report.read_text())
    assert not found, [str(f) for f in found]
    if fmt == "json":
        assert json.loads(out)["kind"] == "pkgrepo-verify"
    if fmt == "junit":
        assert "<failure" in out


def test_an_index_certificate_expiring_soon_is_noted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ca: Any, write_file: WriteFile
) -> None:
    with running_index(tmp_path / "i", password=INDEX_PASSWORD, ca=ca, expires_in_days=10) as ix:
        code, out, _ = run_cli(capsys, "verify", str(write_file(ix.url, ca_pem=ix.ca_pem)))
    assert code == 0
    assert "warning: the index's certificate expires on" in out
    assert "in 10 day(s): pip will refuse the index then" in out


def test_debug_logs_do_not_leak_the_index_credentials(
    capsys: pytest.CaptureFixture[str],
    index: IndexHandle,
    write_file: WriteFile,
) -> None:
    import logging

    from reconciler.terminal import output

    url = index.url_with(password=WRONG_PASSWORD) + "?token=planted-Query-Tok-5d1e"
    path = write_file(url, ca_pem=index.ca_pem)
    try:
        code, out, err = run_cli(capsys, "--debug", "verify", str(path))
    finally:
        output.configure_logging(debug=False)
        logging.getLogger().setLevel(logging.WARNING)
    assert code == 1
    assert "/simple/pkgrepo-demo-pkg/?****" in err  # urllib3 logged the request line, masked
    found = Scanner({"password": WRONG_PASSWORD, "token": "planted-Query-Tok-5d1e"}).scan(
        "stderr", out + err
    )
    assert not found, [str(f) for f in found]
