"""What the tests of the installed package share: the sdist and wheel (built once per run),
fresh virtual environments with the package installed, and the package's own emulator.

The tests are split by environment (the newest pinned dependencies, the lowest
``databricks-sdk`` allowed, pre-commit's own), so ``pytest -n`` builds them side by side.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import venv
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CONSTRAINTS = ROOT / "constraints.txt"
ADMIN_TOKEN = "dapi-emulator-admin"
LEDGER_KEY = "installed-ledger-key-7c1d"
INDEX_TOKEN = "installed-index-token-4b8e"


def lowest_sdk() -> str:
    """The lowest ``databricks-sdk`` release the package declares it supports."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [d for d in project["dependencies"] if d.startswith("databricks-sdk")]
    found = re.search(r">=\s*([0-9][0-9.]*)", spec)
    assert found, f"databricks-sdk needs a lower bound in pyproject.toml: {spec}"
    return found.group(1)


@dataclass(frozen=True)
class Installed:
    bin: Path
    home: Path
    """An empty directory outside the checkout: where commands run."""

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: no PYTHONPATH, no variable the examples refer to."""
        keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
        keep["PATH"] = f"{self.bin}{os.pathsep}{keep.get('PATH', '')}"
        keep["HOME"] = str(self.home)
        return {**keep, **extra}

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "pkgrepo"), *args],
            cwd=self.home,
            env=self.env() if env is None else env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _pip(python: Path, *args: str) -> None:
    """``pip install`` into the environment of ``python``, by this run's pip (``--python``):
    the same resolver and installer a user's ``pip install`` runs, without seeding a pip
    into every new environment. ``--no-compile``: Python compiles what the commands import
    when they first run; compiling every module of every dependency up front was most of
    the CPU these tests spent."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            *args,
        ],
        check=True,
        timeout=900,
    )


def _build(out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=900,
    )


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist, and a wheel built from that sdist (as ``python -m build`` does), so a file
    missing from the sdist fails the build of the wheel. Built once per test run: the test
    processes (``pytest -n``) share it, the first to ask builds it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: nobody to share with
        out = tmp_path_factory.mktemp("dist")
        _build(out)
        return out
    shared = tmp_path_factory.getbasetemp().parent  # common to every worker of this run
    out = shared / "dist"
    with FileLock(str(shared / "dist.lock")):
        if not (out / ".built").exists():
            shutil.rmtree(out, ignore_errors=True)
            _build(out)
            (out / ".built").touch()
    return out


def _install(dist: Path, where: Path, requirements: Sequence[str], constraints: bool) -> Installed:
    venv.EnvBuilder(with_pip=False).create(where / "venv")
    bin_dir = where / "venv" / "bin"
    (wheel,) = dist.glob("*.whl")
    extra = ["-c", str(CONSTRAINTS)] if constraints else []
    _pip(bin_dir / "python", str(wheel), *requirements, *extra)
    home = where / "home"
    home.mkdir()
    return Installed(bin_dir, home)


@pytest.fixture(scope="session")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel with the dependency versions CI pins (the newest tested)."""
    return _install(dist, tmp_path_factory.mktemp("newest"), [], constraints=True)


@pytest.fixture(scope="session")
def installed_lowest(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel with the lowest ``databricks-sdk`` the package allows."""
    sdk = f"databricks-sdk=={lowest_sdk()}"
    return _install(dist, tmp_path_factory.mktemp("lowest"), [sdk], constraints=False)


@dataclass(frozen=True)
class Emulator:
    url: str
    process: subprocess.Popen[str]


@contextmanager
def emulator_of(installed: Installed) -> Iterator[Emulator]:
    """The installed package's own emulator, on a free port."""
    process = subprocess.Popen(
        [str(installed.bin / "pkgrepo"), "emulator", "serve", "--port", "0", "--quiet"],
        cwd=installed.home,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
    if not found:
        process.kill()
        pytest.fail(f"the emulator did not start: {line!r} {process.stderr.read()!r}")
    try:
        yield Emulator(found.group(1), process)
    finally:
        process.terminate()
        process.wait(timeout=10)


DESIRED = """
version: 1
defaults:
  auth: {{token: {{env: DATABRICKS_TOKEN}}}}
  repositories:
    index_url: "https://ci:${{env:INDEX_TOKEN}}@pypi.example.com/simple"
  acls: {{admins: MANAGE, users: READ}}
workspaces:
  one: {{host: "{url}/one"}}
  two: {{host: "{url}/two", wave: 1}}
"""


def plan_apply_drift_round_trip(package: Installed, tmp_path: Path) -> None:
    """plan (saved), apply the saved plan, plan again (no changes) and drift, on the
    package's own emulator; no secret in any output or in the plan file."""
    with emulator_of(package) as emulator:
        _round_trip(package, emulator, tmp_path)


def _round_trip(package: Installed, emulator: Emulator, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "pkgrepo.yaml").write_text(textwrap.dedent(DESIRED.format(url=emulator.url)))
    env = package.env(
        DATABRICKS_TOKEN=ADMIN_TOKEN,
        PKGREPO_LEDGER_KEY=LEDGER_KEY,
        INDEX_TOKEN=INDEX_TOKEN,
        PKGREPO_SKIP_VERIFY="1",  # pypi.example.com is not probed from a test
    )
    file = str(work / "pkgrepo.yaml")
    plan_file = str(work / "plan.json")
    outputs: list[str] = []

    def run(*args: str, expect: int) -> str:
        done = package.run(*args, env=env)
        text = done.stdout + done.stderr
        outputs.append(text)
        assert done.returncode == expect, f"pkgrepo {' '.join(args)}: {text[-3000:]}"
        return text

    run("plan", file, "--detailed-exitcode", "--out", plan_file, expect=2)
    run("apply", plan_file, expect=0)
    run("plan", file, "--detailed-exitcode", expect=0)
    run("drift", file, expect=0)
    outputs.append(Path(plan_file).read_text())
    for text in outputs:
        assert INDEX_TOKEN not in text and LEDGER_KEY not in text
