"""Secret hygiene everywhere: every command, in every output format it offers, with
``--debug`` on (the databricks-sdk then logs every request and response), on success and on
failure paths, and nothing it shows or writes holds a planted secret.

Planted: the auth token (and a wrong one), the index user and password from ``${env:...}``,
a URL with credentials from ``{file: ...}``, the ``PKGREPO_LEDGER_KEY``. Scanned, in plain,
URL-encoded, JSON-escaped and base64 forms (see ``leaks.py``): stdout, stderr, every log
record as it was emitted (``caplog``, before pkgrepo's handler scrubs it), plan files, local
and workspace ledgers, drift reports and summaries, exported YAML. Plan files and local
ledgers must be mode 0600 even under umask 000.

Each ``main()`` call starts with an empty scrubber, as a new process would, so a command is
never protected by what an earlier command registered.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from databricks.sdk.service.workspace import AclPermission

from reconciler.cli import COMMAND_MODULES, main
from reconciler.core.model import SCOPE
from reconciler.core.redact import Scrubber
from reconciler.emulator import EmulatorHandle, ServiceModes
from reconciler.engine.lock import LOCK_SCOPE, holder_key
from reconciler.terminal import output
from tests.reliability.harness import (
    LEDGER_FILE,
    PLANTED,
    Fleet,
    client,
    pkgrepo_process,
    subprocess_env,
    write_fleet,
)
from tests.support.leaks import Finding, Scanner

WRONG_TOKEN = "dapi-wrong-Planted-77aa31c0"
BAD_URL = "https://bad-user-5d:BadUrl-Planted-e0c1@idx.corp.example/simple trailing"
PLANTED_VALUES = {
    **PLANTED.values(),
    "wrong token": WRONG_TOKEN,
    "bad URL password": "BadUrl-Planted-e0c1",
}
SCANNER = Scanner(PLANTED_VALUES)
HELP_COMMANDS = [name.replace("_", "-") for name in COMMAND_MODULES]


@dataclass
class Audit:
    """Runs pkgrepo commands in this process and scans everything they show."""

    capsys: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture
    monkeypatch: pytest.MonkeyPatch
    findings: list[Finding] = field(default_factory=list)
    runs: list[tuple[str, int]] = field(default_factory=list)

    def run(self, *args: str, expect: Sequence[int] = (0,), says: str | None = None) -> str:
        argv = ["--debug", *args]
        self.monkeypatch.setattr(output, "_scrubber", Scrubber())
        self.capsys.readouterr()
        self.caplog.clear()
        try:
            code = main(argv)
        except SystemExit as exc:  # --help and --version end with click's exit
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        shown = " ".join(args)
        self.runs.append((shown, code))
        self.findings += SCANNER.scan(f"stdout of `{shown}`", out)
        self.findings += SCANNER.scan(f"stderr of `{shown}`", err)
        self.findings += SCANNER.scan(f"log text of `{shown}`", self.caplog.text)
        for record in self.caplog.records:
            raw = f"{record.msg} {record.args!r} {record.exc_text or ''}"
            self.findings += SCANNER.scan(f"log record {record.name} of `{shown}`", raw)
        assert code in expect, f"`{shown}` exited {code}:\n{out[-1500:]}\n{err[-3000:]}"
        assert "Traceback" not in out + err and "unexpected error" not in err, err[-3000:]
        if says is not None:
            assert re.search(says, out + err), f"`{shown}` did not say {says!r}:\n{err[-2000:]}"
        return out + err

    def files(self, *roots: Path) -> None:
        for root in roots:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                self.findings += SCANNER.scan(str(path.relative_to(root.parent)), path.read_bytes())

    def workspace_ledgers(self, emu: EmulatorHandle, names: Sequence[str]) -> int:
        found = 0
        for name in names:
            try:
                data = emu.files(name).export_file(emu.admin, LEDGER_FILE, format="AUTO")
            except Exception:  # no ledger in this workspace
                continue
            found += 1
            self.findings += SCANNER.scan(f"workspace ledger of {name}", data)
        return found

    def assert_clean(self) -> None:
        assert self.findings == [], "planted secrets found:\n" + "\n".join(
            map(str, sorted(set(self.findings), key=str))
        )


@dataclass(frozen=True)
class World:
    emu: EmulatorHandle
    fleet: Fleet
    out: Path
    ledgers: Path
    bad_token: Path
    invalid: Path
    literal: Path


@pytest.fixture
def world(emu: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    fleet = write_fleet(tmp_path / "repo", emu.url, 3, bystanders=0)
    text = fleet.file.read_text()

    def edited(name: str, old: str, new: str) -> Path:
        """A copy of the fleet's file with one edit (which must apply)."""
        assert old in text, old
        path = fleet.directory / name
        path.write_text(text.replace(old, new))
        return path

    bad_token = edited("bad-token.yaml", "{env: RELIA_DB_TOKEN}", "{env: RELIA_WRONG_TOKEN}")
    invalid = edited(
        "invalid.yaml",
        "    index_url: https://${env:RELIA_INDEX_USER}",
        "    index_url: {env: RELIA_BAD_URL}\n    surprise: field\n"
        "    old_index_url: https://${env:RELIA_INDEX_USER}",
    )
    literal = edited(
        "literal.yaml",
        "https://${env:RELIA_INDEX_USER}:${env:RELIA_INDEX_TOKEN}@",
        f"https://{PLANTED.index_user}:{PLANTED.index_password}@",
    )
    monkeypatch.setenv("RELIA_WRONG_TOKEN", WRONG_TOKEN)
    monkeypatch.setenv("RELIA_BAD_URL", BAD_URL)
    out = tmp_path / "out"
    out.mkdir()
    old = os.umask(0)  # modes must come from pkgrepo, not from a kind umask
    try:
        yield World(emu, fleet, out, tmp_path / "ledgers", bad_token, invalid, literal)
    finally:
        os.umask(old)


@pytest.fixture
def audit(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Audit]:
    caplog.set_level(logging.DEBUG)
    yield Audit(capsys, caplog, monkeypatch)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_success_paths_in_every_format(world: World, audit: Audit) -> None:
    f, out, emu = str(world.fleet.file), world.out, world.emu
    audit.run("validate", f)
    audit.run("validate", f, "--format", "json")
    audit.run("schema")
    for fmt in ("text", "json", "markdown"):
        audit.run("plan", f, "--format", fmt)
    audit.run("plan", f, "--out", str(out / "plan.json"), says="Saved the plan")
    audit.run("apply", str(out / "plan.json"), "--format", "json")
    audit.run("plan", f, "--detailed-exitcode")
    client(world.fleet.url, "ws00").secrets.put_secret(
        SCOPE, "pip-index-url", string_value=PLANTED.index_url.replace("corp", "evil")
    )
    client(world.fleet.url, "ws01").secrets.put_acl(SCOPE, "data-eng", AclPermission.MANAGE)
    for fmt in ("text", "json", "markdown", "junit"):
        audit.run(
            "drift",
            f,
            "--format",
            fmt,
            "--output",
            str(out / f"drift.{fmt}"),
            "--summary",
            str(out / "summary.md"),
            expect=(2,),
        )
    audit.run("drift", f, expect=(2,))
    audit.run("apply", f, "--auto-approve", "--format", "text")
    # So far secrets/get answered (the service's default for a MANAGE holder): values were
    # read back and compared. Where it is refused, the ledger is the only proof; a local one
    # starts empty, so every key is rewritten once and recorded there.
    for name in world.fleet.names:
        emu.set_modes(name, ServiceModes(rest_get="refused"))
    audit.run("apply", f, "--auto-approve", "--format", "json", "--ledger", str(world.ledgers))
    audit.run("plan", f, "--detailed-exitcode", "--ledger", str(world.ledgers))
    audit.run("force-unlock", "ws00", "--file", f, says="not locked")
    emu.backend("ws01").create_scope(emu.admin, LOCK_SCOPE)
    emu.backend("ws01").put_secret(
        emu.admin, LOCK_SCOPE, holder_key("someone", 900), b"held", is_bytes=False
    )
    audit.run("force-unlock", "ws01", "--file", f, "--auto-approve", says="removed the lock")
    audit.run("export", "--from", f, "-o", str(out / "export.yaml"))

    audit.files(out, world.ledgers)
    assert audit.workspace_ledgers(emu, world.fleet.names) == len(world.fleet.names)
    audit.assert_clean()
    assert _mode(out / "plan.json") == 0o600
    ledgers = sorted(world.ledgers.glob("*.ledger.json"))
    assert [p.name for p in ledgers] == [f"{n}.ledger.json" for n in world.fleet.names]
    assert {_mode(p) for p in ledgers} == {0o600}


def test_values_read_back_in_a_notebook_never_show(
    world: World, audit: Audit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a notebook or job ``secrets/get`` answers, so plan, drift and export hold the
    real values in memory: still nothing shows, and export writes placeholders."""
    f, out = str(world.fleet.file), world.out
    audit.run("apply", f, "--auto-approve")
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    for name in world.fleet.names:
        world.emu.set_notebook_context(name, True)
    client(world.fleet.url, "ws02").secrets.put_secret(
        SCOPE, "pip-extra-index-urls", string_value=PLANTED.file_url + " https://x.example/s"
    )
    for fmt in ("text", "json", "markdown"):
        audit.run("plan", f, "--format", fmt, expect=(0,))
    for fmt in ("text", "json", "markdown", "junit"):
        audit.run(
            "drift", f, "--format", fmt, "--output", str(out / f"nb-drift.{fmt}"), expect=(2,)
        )
    audit.run("export", "--from", f, "-o", str(out / "nb-export.yaml"))
    hosts = [f"--host={n}={world.fleet.url}/{n}" for n in world.fleet.names]
    audit.run(
        "export",
        *hosts,
        "--token-env",
        "RELIA_DB_TOKEN",
        "-o",
        str(out / "by-host" / "export.yaml"),
    )
    audit.files(out)
    audit.assert_clean()
    exported = (out / "by-host" / "export.yaml").read_text()
    assert "${env:" in exported, exported[:2000]


def test_failure_paths(world: World, audit: Audit) -> None:
    f, out, emu = str(world.fleet.file), world.out, world.emu
    bad, invalid = str(world.bad_token), str(world.invalid)
    auth = r"authentication failed|Invalid access token|permission denied"
    for fmt in ("text", "json", "markdown"):
        audit.run("plan", bad, "--format", fmt, expect=(1,), says=auth)
    audit.run("plan", bad, "--out", str(out / "never.json"), expect=(1,), says="not written")
    for fmt in ("text", "json"):
        audit.run("apply", bad, "--auto-approve", "--format", fmt, expect=(1,), says=auth)
    for fmt in ("text", "json", "markdown", "junit"):
        audit.run(
            "drift",
            bad,
            "--format",
            fmt,
            "--output",
            str(out / f"bad.{fmt}"),
            expect=(1,),
            says=auth,
        )
    audit.run("force-unlock", "ws00", "--file", bad, expect=(1,), says=auth)
    audit.run("export", "--from", bad, "-o", str(out / "bad-export.yaml"), expect=(1,))

    for fmt in ("text", "json"):
        audit.run("validate", invalid, "--format", fmt, expect=(1,))
        audit.run(
            "validate",
            str(world.literal),
            "--format",
            fmt,
            expect=(1,),
            says="no-literal-credentials",
        )
    for command in (
        ["plan", invalid],
        ["apply", invalid, "--auto-approve"],
        ["drift", invalid],
        ["force-unlock", "ws00", "--file", invalid],
        ["export", "--from", invalid, "-o", str(out / "invalid-export.yaml")],
    ):
        audit.run(*command, expect=(1,), says=r"surprise|line break|white space")
    audit.run("plan", str(world.fleet.directory / "missing.yaml"), expect=(1, 2))

    plan = out / "plan.json"
    audit.run("plan", f, "--out", str(plan))
    client(world.fleet.url, "ws01").secrets.create_scope("late-comer")
    client(world.fleet.url, "ws00").secrets.create_scope(SCOPE)
    audit.run("apply", str(plan), expect=(1,), says="stale plan")
    audit.run("plan", f, "--out", str(plan))
    document = json.loads(plan.read_text())
    digests = document["plan"]["workspaces"][1]["desired_digests"]
    key = sorted(digests)[0]
    digests[key] = digests[key][:-4] + ("0000" if not digests[key].endswith("0000") else "1111")
    plan.write_text(json.dumps(document, indent=2))
    audit.run("apply", str(plan), expect=(1,), says="altered after it was signed")
    plan.write_text(plan.read_text().replace(str(world.fleet.file), str(world.invalid)))
    audit.run("apply", str(plan), expect=(1,))
    assert not any(
        k[0] != "GET"
        for n in world.fleet.names[1:]
        for k in emu.requests(n)
        if "secrets/put" in k[1]
    )

    audit.files(out)
    audit.assert_clean()


def test_help_version_and_the_emulator_command(audit: Audit) -> None:
    audit.run("--help")
    audit.run("--version")
    for command in HELP_COMMANDS:
        audit.run(command, "--help")
    audit.run("emulator", "serve", "--help")
    audit.assert_clean()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_unreachable_hosts_leak_nothing_while_they_are_retried(tmp_path: Path) -> None:
    """A closed loopback port: each command retries for a couple of minutes, then fails the
    workspace. Run as processes side by side (stdout, stderr and files scanned)."""
    fleet = write_fleet(tmp_path / "repo", "http://127.0.0.1:9", 2, bystanders=0)
    out = tmp_path / "out"
    out.mkdir()
    f = str(fleet.file)
    commands = [
        ["plan", f, "--format", "json", "--out", str(out / "plan.json")],
        ["apply", f, "--auto-approve", "--format", "json"],
        ["drift", f, "--format", "junit", "--output", str(out / "drift.xml")],
        ["force-unlock", "ws00", "--file", f],
        ["export", "--from", f, "-o", str(out / "export.yaml")],
    ]
    started = [pkgrepo_process(["--debug", *c], env=subprocess_env()) for c in commands]
    findings: list[Finding] = []
    for command, process in zip(commands, started, strict=True):
        try:
            stdout, stderr = process.communicate(timeout=500)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        shown = " ".join(command[:1])
        assert process.returncode == 1, (command, stderr[-2000:])
        assert re.search(r"127\.0\.0\.1:9|unreachable|cannot reach|no answer", stderr), stderr
        findings += SCANNER.scan(f"stdout of {shown}", stdout)
        findings += SCANNER.scan(f"stderr of {shown}", stderr)
    for path in out.rglob("*"):
        findings += SCANNER.scan(str(path), path.read_bytes())
    assert findings == [], "\n".join(map(str, findings))


# -- the test of the test ------------------------------------------------------------------------


def _leaky(form: str, value: str) -> str:
    if form == "base64":
        return base64.b64encode(b"prefix:" + value.encode()).decode()
    if form == "url":
        return value.replace("-", "%2D")
    return value


@pytest.mark.parametrize("form", ["plain", "base64", "url"])
def test_the_scanner_catches_a_scrubber_that_lets_a_value_through(
    world: World, audit: Audit, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    leak = _leaky(form, PLANTED.index_password)
    monkeypatch.setattr(output, "scrub", lambda text: f"{text} {leak}")
    audit.run("plan", str(world.fleet.file), "--format", "json")
    assert any(
        x.name == "index password" and x.where.startswith("stdout") for x in audit.findings
    ), audit.findings


def test_the_scanner_catches_a_log_record_and_a_file(
    world: World, audit: Audit, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.edges import planfile

    real_write = planfile.write

    def leaky_write(path: Path, *args: Any, **kwargs: Any) -> None:
        logging.getLogger("pkgrepo.leak").debug("token %s", PLANTED.token)
        real_write(path, *args, **kwargs)
        with path.open("a") as handle:
            handle.write(base64.urlsafe_b64encode(PLANTED.ledger_key.encode()).decode())

    monkeypatch.setattr(planfile, "write", leaky_write)
    audit.run("plan", str(world.fleet.file), "--out", str(world.out / "plan.json"))
    audit.files(world.out)
    where = {(x.where.split(" ")[0], x.name) for x in audit.findings}
    assert ("log", "auth token") in where, audit.findings
    assert ("out/plan.json", "ledger key") in where, audit.findings


def test_the_scanner_finds_every_form_and_nothing_in_clean_text() -> None:
    value = PLANTED.index_password
    for offset in range(3):
        blob = base64.b64encode(b"x" * offset + value.encode() + b"tail").decode()
        assert SCANNER.scan("blob", blob), offset
    assert SCANNER.scan("json", json.dumps({"v": PLANTED.file_url}))
    assert SCANNER.scan("quoted", "u=" + PLANTED.index_url.replace(":", "%3A"))
    clean = json.dumps(
        {
            "url": "https://****@artifactory.corp.example/simple",
            "hmac": "hmac-sha256:" + "ab" * 32,
            "time": time.time(),
        }
    )
    assert SCANNER.scan("clean", clean) == []
