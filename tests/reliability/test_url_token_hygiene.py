"""Tokens where index URLs really carry them (Artifactory's path, a subdomain, a fragment, a
query), and a token in a broken ``~/.databrickscfg``: none shows in any output, report,
plan file, ledger or export, in plain, lowercased, URL-encoded, JSON-escaped or base64 form.

Before: plans kept the path and lowercased the host, and only whole URLs were registered
with the scrubber, so a path token showed in every plan format, both ledgers, drift reports
and ``export``; a subdomain token showed lowercased; ``--debug`` printed a profile file's
token line from configparser's traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.core.redact import Scrubber
from reconciler.emulator import ADMIN_TOKEN, EmulatorConfig, EmulatorHandle
from reconciler.terminal import output
from tests.support.fleet_files import defaults_block, workspace, write_desired
from tests.support.leaks import Finding, Scanner

PATH_TOKEN = "AKCpPathTok9Xq2Lm7Zp4Rt6"
SUB_TOKEN = "SubTok9Xq2Lm7Zp4"
FRAG_TOKEN = "FragTok5Hj8Kw3Nv1"
QUERY_TOKEN = "QueryTok2Bd6Fs9Gm4"
WHOLE_TOKEN = "WholeTok7Yu3Io9Pq2Ws5Ed8Rf"
PROFILE_TOKEN = "dapi-ProfileTok3Mn8Bv1Cx"
LEDGER_KEY = "Hyg-Ledger-Key-5b2e9d"
PLANTED = {
    "path token": PATH_TOKEN,
    "subdomain token": SUB_TOKEN,
    "fragment token": FRAG_TOKEN,
    "query token": QUERY_TOKEN,
    "whole-URL path token": WHOLE_TOKEN,
    "profile-file token": PROFILE_TOKEN,
    "ledger key": LEDGER_KEY,
}
ROTATED = {
    "PATH_TOKEN": PATH_TOKEN,
    "SUB_TOKEN": SUB_TOKEN,
    "FRAG_TOKEN": FRAG_TOKEN,
    "QUERY_TOKEN": QUERY_TOKEN,
}
SCANNER = Scanner({**PLANTED, **{f"{k} (lowercased)": v.lower() for k, v in PLANTED.items()}})

TOKENS_IN_URLS = {
    "index_url": "https://artifactory.example.com/api/pypi/${env:PATH_TOKEN}/simple",
    "extra_index_urls": [
        "https://${env:SUB_TOKEN}.mirror.example.com/simple",
        "https://frag.example.com/simple#${env:FRAG_TOKEN}",
        "https://q.example.com/simple?token=${env:QUERY_TOKEN}",
    ],
}
"""ws1's repositories: a token in each part of a URL (path, host, fragment, query)."""


def write_hygiene_fleet(path: Path, emu: EmulatorHandle) -> Path:
    """ws1 with tokens inside its URLs, ws2 with a whole URL from the environment, ws3 with
    a profile that does not exist."""
    members = {
        "ws1": workspace(emu.host("ws1"), repositories=TOKENS_IN_URLS),
        "ws2": workspace(emu.host("ws2"), repositories={"index_url": {"env": "WHOLE_URL"}}),
        "ws3": workspace(emu.host("ws3"), auth={"profile": "broken"}),
    }
    return write_desired(path, members, defaults=defaults_block("HYG_DB_TOKEN"))


@dataclass
class Audit:
    capsys: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture
    monkeypatch: pytest.MonkeyPatch
    findings: list[Finding] = field(default_factory=list)

    def run(self, *args: str, expect: tuple[int, ...] = (0,)) -> str:
        self.monkeypatch.setattr(output, "_scrubber", Scrubber())  # a new process
        self.capsys.readouterr()
        self.caplog.clear()
        code = main(["--debug", *args])
        out, err = self.capsys.readouterr()
        shown = " ".join(args)
        self.findings += SCANNER.scan(f"stdout of `{shown}`", out)
        self.findings += SCANNER.scan(f"stderr of `{shown}`", err)
        self.findings += SCANNER.scan(f"log of `{shown}`", self.caplog.text)
        for record in self.caplog.records:
            raw = f"{record.msg} {record.args!r} {record.exc_text or ''}"
            self.findings += SCANNER.scan(f"log record of `{shown}`", raw)
        assert code in expect, f"`{shown}` exited {code}:\n{out[-1500:]}\n{err[-2000:]}"
        assert "Traceback" not in out + err and "unexpected error" not in err, err[-2000:]
        return out + err

    def files(self, root: Path) -> None:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            self.findings += SCANNER.scan(str(path), path.read_bytes())


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig()  # the built-in admin, not the reliability suite's deployers


@pytest.fixture
def audit(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Audit]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    caplog.set_level(logging.DEBUG)
    env = {
        "HYG_DB_TOKEN": ADMIN_TOKEN,
        "PATH_TOKEN": PATH_TOKEN,
        "SUB_TOKEN": SUB_TOKEN,
        "FRAG_TOKEN": FRAG_TOKEN,
        "QUERY_TOKEN": QUERY_TOKEN,
        "WHOLE_URL": f"https://nexus.example.com/repository/{WHOLE_TOKEN}/simple",
        "PKGREPO_LEDGER_KEY": LEDGER_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "databrickscfg"
    # A continuation line without a section and a broken header: configparser quotes them.
    config.write_text(
        f"[broken]\nhost = https://x.example\ntoken = {PROFILE_TOKEN}\n[broken\n"
        f"oops {PROFILE_TOKEN}\n"
    )
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    yield Audit(capsys, caplog, monkeypatch)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_url_and_profile_tokens_never_show(
    audit: Audit, emu: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    desired = tmp_path / "repo" / "pkgrepo.yaml"
    desired.parent.mkdir()
    write_hygiene_fleet(desired, emu)
    out = tmp_path / "out"
    ledgers = tmp_path / "ledgers"
    f, sel = str(desired), ["-w", "ws1", "-w", "ws2", "--ledger", str(ledgers)]

    audit.run("validate", f)
    for fmt in ("text", "json", "markdown"):
        shown = audit.run("plan", f, *sel, "--format", fmt).replace("\\", "")
        assert "artifactory.example.com/api/pypi/****/simple" in shown
        assert "https://****.mirror.example.com/simple" in shown
        assert "frag.example.com/simple#****" in shown
        assert "nexus.example.com/repository/****/simple" in shown
    audit.run("plan", f, *sel, "--out", str(out / "plan.json"))
    audit.run("apply", str(out / "plan.json"), *sel[-2:])
    # A rotation of each token: before and after both show, masked.
    for name, value in ROTATED.items():
        monkeypatch.setenv(name, value + "2")
    for fmt in ("text", "json", "markdown", "junit"):
        audit.run(
            "drift", f, *sel, "--format", fmt, "--output", str(out / f"drift.{fmt}"), expect=(2,)
        )
    audit.run("apply", f, *sel, "--auto-approve", "--force")
    # Inside a notebook values are read back and compared: both sides are shown masked.
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    for ws in ("ws1", "ws2"):
        emu.set_notebook_context(ws, True)
    for name, value in ROTATED.items():
        monkeypatch.setenv(name, value)
    audit.run("plan", f, *sel, "--format", "json")
    audit.run(
        "export",
        "--host",
        emu.host("ws1"),
        "--host",
        emu.host("ws2"),
        "--token-env",
        "HYG_DB_TOKEN",
        "--output",
        str(out / "export.yaml"),
    )
    exported = (out / "export.yaml").read_text()
    assert "/api/pypi/${env:" in exported and "#${env:" in exported
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION")

    # The broken profile file: named with its line, its lines never quoted.
    shown = audit.run("plan", f, "-w", "ws3", expect=(1,))
    assert "databrickscfg at line" in shown and "not valid INI" in shown
    shown = audit.run("force-unlock", "ws3", "--file", f, expect=(1,))
    assert "databrickscfg at line" in shown

    audit.files(out)
    audit.files(ledgers)
    assert list(ledgers.rglob("*.json")), "no local ledger was written"
    assert audit.findings == [], "\n".join(str(x) for x in audit.findings)
    assert os.stat(out / "plan.json").st_mode & 0o077 == 0
