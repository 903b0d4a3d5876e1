"""What the reliability scenarios share: a fleet of workspaces on one emulator, seeded with
things pkgrepo must never touch, driven through the real command line.

- ``Planted``: the secret values a run knows (auth token, index credentials, a value read
  from a file, the ledger key), so tests can look for them where they must never be.
- ``write_fleet``: a desired-state file for N workspaces of one emulator.
- ``seed``: unrelated scopes, keys, ACLs and workspace files in every fleet workspace, a
  key pkgrepo is told to ignore, scopes made by a former admin, and bystander workspaces
  that are in no file at all.
- ``outside``/``untouched``: everything pkgrepo does not own, to compare before and after.
- ``AclRecorder``: checks, right after every write the emulator's backend accepts, that the
  managed scope still has an admin MANAGE grant (deterministic, no polling).
- ``pkgrepo_process`` / ``EmulatorProcess`` (subprocesses, for scenarios that kill
  something); in-process runs use the one runner, ``tests.support.cli.run_cli``.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config
from databricks.sdk.service.workspace import AclPermission, ImportFormat

from reconciler.core.model import SCOPE
from reconciler.emulator import AclLevel as EmuPermission
from reconciler.emulator import ApiError, EmulatorConfig, EmulatorHandle, Principal, RequestSeen
from reconciler.engine.lock import LOCK_SCOPE
from tests.support.fleet_files import defaults_block, workspace, write_desired

ROOT = Path(__file__).resolve().parents[2]
CERT_FILE = ROOT / "examples" / "certs" / "corp-root-ca.pem"

CI_NAME = "ci-deployer@corp.example"
"""The identity pkgrepo deploys as (a workspace admin)."""
LEGACY_ADMIN = "legacy-admin@corp.example"
"""A former admin who created some managed scopes by hand, before pkgrepo."""
LEGACY_TOKEN = "dapi-legacy-admin-not-planted"
UNRELATED_SCOPE = "team-tools"
TEAM_GROUP = "data-eng"
LEDGER_FILE = "/pkgrepo/ledger-databricks-package-management.json"


@dataclass(frozen=True)
class Planted:
    """Secret values a run holds. None may ever appear in anything pkgrepo writes or shows."""

    token: str = "dapi-relia-T0ken-5e1f0c9a77"
    token_b: str = "dapi-relia-T0kenB-0d4c2a11"
    index_user: str = "relia-svc-8c1d4e"
    index_password: str = "Pw-relia-7f3b9e2d1a6c"
    file_user: str = "mirror-user-51ab"
    file_password: str = "F1le-relia-Secret-42x9"
    ledger_key: str = "relia-ledger-key-3c9d7e1b5a"

    @property
    def file_url(self) -> str:
        """An extra index URL with credentials, read from a file (``{file: ...}``)."""
        return f"https://{self.file_user}:{self.file_password}@mirror.corp.example/simple"

    @property
    def index_url(self) -> str:
        return (
            f"https://{self.index_user}:{self.index_password}"
            "@artifactory.corp.example/api/pypi/remote/simple"
        )

    def values(self) -> dict[str, str]:
        """Name -> value of everything that must never be shown."""
        return {
            "auth token": self.token,
            "second auth token": self.token_b,
            "index user": self.index_user,
            "index password": self.index_password,
            "index credentials": f"{self.index_user}:{self.index_password}",
            "index URL": self.index_url,
            "file URL user": self.file_user,
            "file URL password": self.file_password,
            "file URL": self.file_url,
            "ledger key": self.ledger_key,
        }

    def env(self, *, token: str | None = None) -> dict[str, str]:
        return {
            "RELIA_DB_TOKEN": token or self.token,
            "RELIA_INDEX_USER": self.index_user,
            "RELIA_INDEX_TOKEN": self.index_password,
            "PKGREPO_LEDGER_KEY": self.ledger_key,
        }


PLANTED = Planted()


def deployer_config(**kwargs: Any) -> EmulatorConfig:
    """The deployer has two tokens (two concurrent runs, told apart by a marker group)."""
    principals = (
        Principal(CI_NAME, groups=frozenset({"admins", "run-a"}), tokens=(PLANTED.token,)),
        Principal(CI_NAME, groups=frozenset({"admins", "run-b"}), tokens=(PLANTED.token_b,)),
        Principal(LEGACY_ADMIN, groups=frozenset({"admins"}), tokens=(LEGACY_TOKEN,)),
    )
    return EmulatorConfig(principals=principals, groups=(TEAM_GROUP,), **kwargs)


def emulator_config_yaml(faults: Mapping[str, Any] | None = None) -> str:
    """The same configuration as a file, for ``pkgrepo emulator serve --config``."""
    document: dict[str, Any] = {
        "principals": [
            {"name": CI_NAME, "groups": ["admins", "run-a"], "tokens": [PLANTED.token]},
            {"name": CI_NAME, "groups": ["admins", "run-b"], "tokens": [PLANTED.token_b]},
            {"name": LEGACY_ADMIN, "groups": ["admins"], "tokens": [LEGACY_TOKEN]},
        ],
        "groups": [TEAM_GROUP],
    }
    if faults:
        document["workspace_defaults"] = {"faults": dict(faults)}
    return json.dumps(document)


# -- the fleet ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    directory: Path
    file: Path
    url: str
    names: tuple[str, ...]
    bystanders: tuple[str, ...]
    ignoring_cert: tuple[str, ...]
    """Workspaces whose file says ``ignore: [pip-cert]``, with a hand-set pip-cert."""
    legacy: tuple[str, ...]
    """Workspaces whose managed scope a former admin created (its grant is removed)."""


def fleet_names(count: int) -> tuple[str, ...]:
    return tuple(f"ws{i:02d}" for i in range(count))


RELIA_SAFETY: Mapping[str, Any] = {"max_update_share": 1.0, "max_delete_workspaces": 1000}
"""Limits no scenario's first apply reaches (it adopts hand-made scopes in every workspace)."""


def write_fleet(
    directory: Path,
    url: str,
    count: int = 20,
    *,
    bystanders: int = 3,
    waves: int = 1,
    safety: Mapping[str, Any] | None = RELIA_SAFETY,
) -> Fleet:
    """A desired-state file for ``count`` workspaces of the emulator at ``url`` (through the
    shared writer); ``safety=None`` leaves the default thresholds."""
    names = fleet_names(count)
    ignoring = names[1::5]
    legacy = names[2::5]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "certs").mkdir(exist_ok=True)
    (directory / "certs" / "corp-root-ca.pem").write_bytes(CERT_FILE.read_bytes())
    (directory / "mirror-url.txt").write_text(PLANTED.file_url + "\n")
    block = defaults_block(
        "RELIA_DB_TOKEN",
        index_url="https://${env:RELIA_INDEX_USER}:${env:RELIA_INDEX_TOKEN}"
        "@artifactory.corp.example/api/pypi/remote/simple",
        extra_index_urls=[{"file": "mirror-url.txt"}, "https://download.pytorch.org/whl/cpu"],
        cert={"file": "certs/corp-root-ca.pem"},
    )
    members = {
        name: workspace(
            f"{url}/{name}",
            labels={"ring": f"r{index % 2}"},
            wave=index % waves,
            **({"ignore": ["pip-cert"]} if name in ignoring else {}),
        )
        for index, name in enumerate(names)
    }
    file = write_desired(directory / "pkgrepo.yaml", members, defaults=block, safety=safety)
    return Fleet(
        directory,
        file,
        url,
        names,
        tuple(f"bystander{i}" for i in range(bystanders)),
        ignoring,
        legacy,
    )


def client(url: str, workspace: str, token: str = PLANTED.token) -> WorkspaceClient:
    config = Config(
        host=f"{url}/{workspace}", token=token, auth_type="pat", retry_timeout_seconds=30
    )
    return WorkspaceClient(config=config)


def seed(fleet: Fleet) -> None:
    """Put what pkgrepo must leave alone into every workspace, through the public API."""
    for name in fleet.names:
        admin = client(fleet.url, name)
        admin.secrets.create_scope(UNRELATED_SCOPE)
        admin.secrets.put_secret(UNRELATED_SCOPE, "api-key", string_value=f"team-value-{name}")
        admin.secrets.put_acl(UNRELATED_SCOPE, TEAM_GROUP, AclPermission.WRITE)
        admin.secrets.put_acl(UNRELATED_SCOPE, "users", AclPermission.READ)
        admin.workspace.mkdirs("/Shared/team")
        admin.workspace.import_(
            "/Shared/team/notes.py",
            content=base64.b64encode(b"print('team')\n").decode(),
            format=ImportFormat.AUTO,
            overwrite=True,
        )
        if name in fleet.ignoring_cert:
            admin.secrets.create_scope(SCOPE)
            admin.secrets.put_secret(SCOPE, "pip-cert", string_value="hand-managed cert")
        if name in fleet.legacy:
            legacy = client(fleet.url, name, LEGACY_TOKEN)
            legacy.secrets.create_scope(SCOPE)
            legacy.secrets.put_secret(
                SCOPE, "pip-index-url", string_value="https://pypi.org/simple"
            )
    for name in fleet.bystanders:
        admin = client(fleet.url, name)
        admin.secrets.create_scope(SCOPE)
        admin.secrets.put_secret(SCOPE, "pip-index-url", string_value="https://bystander/simple")
        admin.secrets.put_acl(SCOPE, "users", AclPermission.MANAGE)


# -- what pkgrepo does not own -------------------------------------------------------------


def outside(workspace: Mapping[str, Any], *, ignored: Iterable[str] = ()) -> dict[str, Any]:
    """The parts of a saved workspace (``Workspace.to_dict()`` or a state file entry) that
    pkgrepo does not own: every other scope, ignored keys of the managed scope, and every
    file but the ledger's folder."""
    keep = set(ignored)
    scopes: dict[str, Any] = {}
    for scope in workspace["secrets"]["scopes"]:
        name = scope["name"]
        if name.lower() == LOCK_SCOPE.lower():
            continue
        if name.lower() == SCOPE.lower():
            kept = [s for s in scope["secrets"] if s["key"] in keep]
            if kept:
                scopes[name + " (ignored keys)"] = kept
            continue
        scopes[name] = scope
    files = {
        o["path"]: (o["object_type"], o["content"], o["modified_at"])
        for o in workspace["files"]["objects"]
        if not (o["path"] == "/pkgrepo" or o["path"].startswith("/pkgrepo/"))
    }
    return {"scopes": scopes, "files": files}


def managed(workspace: Mapping[str, Any]) -> dict[str, Any] | None:
    for scope in workspace["secrets"]["scopes"]:
        if scope["name"].lower() == SCOPE.lower():
            return dict(scope)
    return None


def lock_scope(workspace: Mapping[str, Any]) -> dict[str, Any] | None:
    for scope in workspace["secrets"]["scopes"]:
        if scope["name"].lower() == LOCK_SCOPE.lower():
            return dict(scope)
    return None


@dataclass(frozen=True)
class Baseline:
    """What a fleet's surroundings looked like before a run."""

    fleet: Fleet
    outside: Mapping[str, Any]
    bystanders: Mapping[str, Any]


def baseline(fleet: Fleet, state: Callable[[str], Mapping[str, Any]]) -> Baseline:
    return Baseline(
        fleet,
        {n: outside(state(n), ignored=_ignored(fleet, n)) for n in fleet.names},
        {n: state(n) for n in fleet.bystanders},
    )


def _ignored(fleet: Fleet, name: str) -> tuple[str, ...]:
    return ("pip-cert",) if name in fleet.ignoring_cert else ()


def assert_untouched(before: Baseline, state: Callable[[str], Mapping[str, Any]]) -> None:
    """Nothing outside the plan changed, in the fleet or in bystander workspaces."""
    fleet = before.fleet
    for name in fleet.names:
        assert outside(state(name), ignored=_ignored(fleet, name)) == before.outside[name], name
    for name in fleet.bystanders:
        assert state(name) == before.bystanders[name], name


def assert_converged_state(fleet: Fleet, state: Callable[[str], Mapping[str, Any]]) -> None:
    """Every fleet workspace holds the desired keys and grants, and no lock is left."""
    for name in fleet.names:
        ws = state(name)
        scope = managed(ws)
        assert scope is not None, f"{name}: managed scope missing"
        keys = {s["key"] for s in scope["secrets"]}
        # the three keys Databricks reads, and pkgrepo's ledger marker
        expected = {"pip-index-url", "pip-extra-index-urls", "pip-cert", "pkgrepo-ledger"}
        assert keys == expected, (name, keys)
        acls = scope["acls"]
        assert acls.get("admins") == "MANAGE" and acls.get("users") == "READ", (name, acls)
        assert LEGACY_ADMIN not in acls, (name, acls)
        assert lock_scope(ws) is None, f"{name}: a lock was left behind"


def emulator_state(emu: EmulatorHandle) -> Callable[[str], dict[str, Any]]:
    return lambda name: emu.state(name)


def file_state(state_file: Path) -> Callable[[str], dict[str, Any]]:
    def read(name: str) -> dict[str, Any]:
        document = json.loads(state_file.read_text())
        return dict(document["workspaces"][name])

    return read


# -- the ACL invariant ---------------------------------------------------------------------------

ADMIN_NAMES = frozenset({"admins", CI_NAME, LEGACY_ADMIN, "admin@pkgrepo.local"})


def has_admin_manage(acls: Mapping[str, Any]) -> bool:
    return any(p in ADMIN_NAMES and str(getattr(v, "name", v)) == "MANAGE" for p, v in acls.items())


@dataclass
class Write:
    """One write the emulator accepted, in the order accepted."""

    workspace: str
    run: str
    """``run-a``/``run-b`` (which token), or ``other``."""
    what: str
    scope: str


@dataclass
class AclRecorder:
    """Listens to an in-process emulator (its request-listener hook): after every write the
    service carried out in a watched workspace it checks the managed scope's visible grants
    (the moment a client could observe, before the answer goes out); and it keeps the order
    of writes per workspace with who made them, for every workspace (so a write to one that
    is not watched, a bystander, shows too)."""

    emu: EmulatorHandle
    violations: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _names: set[str] = field(default_factory=set)

    def watch(self, names: Iterable[str]) -> AclRecorder:
        self._names.update(names)
        self.emu.add_request_listener(self._seen)
        return self

    def _seen(self, seen: RequestSeen) -> None:
        if not seen.is_write:
            return
        caller = seen.caller
        groups = caller.groups if caller is not None else frozenset()
        run = next((g for g in ("run-a", "run-b") if g in groups), "other")
        secrets = seen.path.startswith("/api/2.0/secrets/")
        scope = (seen.scope or "") if secrets else "(files)"
        with self._lock:
            self.writes.append(Write(seen.workspace, run, seen.path, scope))
        if secrets and seen.workspace in self._names:
            self._check(seen.workspace, seen.path)

    def _check(self, name: str, what: str) -> None:
        try:
            acls = dict(self.emu.backend(name).list_acls(self.emu.principal(PLANTED.token), SCOPE))
        except ApiError:  # the managed scope does not exist (yet, or any more)
            return
        shown = {p: EmuPermission(v).name for p, v in acls.items()}
        if not has_admin_manage(shown):
            with self._lock:
                self.violations.append((name, what, shown))


class AclPoller:
    """Polls ``acls/list`` of each workspace over HTTP from a side thread (for an emulator
    in another process) and keeps every answer that shows no admin MANAGE grant."""

    def __init__(self, url: str, names: Sequence[str]) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.names = names
        self.violations: list[tuple[str, dict[str, str]]] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="acl-poller")

    def __enter__(self) -> AclPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name in self.names:
                acls = self._acls(name)
                if acls is None:
                    continue
                self.polls += 1
                if not has_admin_manage(acls):
                    self.violations.append((name, acls))
            self._stop.wait(0.02)

    def _acls(self, name: str) -> dict[str, str] | None:
        path = f"/{name}/api/2.0/secrets/acls/list?scope={SCOPE}"
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            conn.request("GET", path, headers={"Authorization": f"Bearer {LEGACY_TOKEN}"})
            response = conn.getresponse()
            body = response.read()
            conn.close()
        except OSError:  # the emulator is restarting
            return None
        if response.status != 200:
            return None  # no scope yet, or a fault
        items = json.loads(body or b"{}").get("items", [])
        return {i["principal"]: i["permission"] for i in items}


# -- running pkgrepo ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str
    logs: str = ""

    @property
    def text(self) -> str:
        return "\n".join((self.out, self.err, self.logs))


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """Restore the root logger after a ``main()`` call configured it (``--debug`` leaves it
    at DEBUG with pkgrepo's handler on stderr)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABRICKS_", "PKGREPO_", "RELIA_"))
    }
    env.update(PLANTED.env())
    # The fleets name made-up index hosts: a pkgrepo run here never probes them.
    env["PKGREPO_SKIP_VERIFY"] = "1"
    env.update(extra or {})
    return env


def pkgrepo_process(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 240) -> Result:
    """Wait for a pkgrepo process; one that outlives ``timeout`` is killed (and the
    ``TimeoutExpired`` raised), so no test leaves a process behind."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=30)
        raise
    return Result(process.returncode, out, err)


def run_process(args: Sequence[str], *, env: Mapping[str, str], timeout: float = 240) -> Result:
    return finish(pkgrepo_process(args, env=env), timeout=timeout)


class EmulatorProcess:
    """``pkgrepo emulator serve --state FILE --config CFG`` in a subprocess, restartable on
    the same port."""

    def __init__(self, directory: Path, faults: Mapping[str, Any] | None = None) -> None:
        self.state = directory / "emulator-state.json"
        self.config = directory / "emulator.yaml"
        self.config.write_text(emulator_config_yaml(faults))
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(self, faults: Mapping[str, Any] | None) -> None:
        """Faults of every workspace from the next (re)start on."""
        self.config.write_text(emulator_config_yaml(faults))

    def start(self) -> EmulatorProcess:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "emulator",
                "serve",
                "--quiet",
                "--port",
                str(self.port),
                "--state",
                str(self.state),
                "--config",
                str(self.config),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if match is None:
            process.kill()
            _, err = process.communicate(timeout=10)
            raise RuntimeError(f"emulator did not start: {line!r} {err!r}")
        self.port = int(match.group(1))
        self.process = process
        self.starts += 1
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        process, self.process = self.process, None
        if process is None:
            return 0
        process.send_signal(sig)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)
        return process.returncode

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        for _ in range(50):  # the port is ours again once the old listener is gone
            try:
                self.start()
                return
            except RuntimeError:
                time.sleep(0.1)
        raise RuntimeError("emulator did not come back")

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` (a way to reach a point of a scenario, never an assertion on
    time): fails the test if it never holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)
