"""pkgrepo as users get it: built into an sdist and a wheel, installed into a fresh virtual
environment outside the checkout, and run from an unrelated directory.

Nothing here may see the source tree: the commands run with a clean environment (no
``PYTHONPATH``, no variables the examples name) from a temporary directory, so a file read
relative to the checkout, an undeclared dependency or a missing piece of package data fails
here as it would for a user. The plan/apply/drift round trip runs twice: with the newest
``databricks-sdk`` the constraints file pins, and with the lowest release ``pyproject.toml``
allows, since the adapter relies on SDK behaviour that changes between releases.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import venv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CONSTRAINTS = ROOT / "constraints.txt"
ADMIN_TOKEN = "dapi-emulator-admin"
LEDGER_KEY = "installed-ledger-key-7c1d"
INDEX_TOKEN = "installed-index-token-4b8e"

pytestmark = pytest.mark.installed


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
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        check=True,
        timeout=900,
    )


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist, and a wheel built from that sdist (as ``python -m build`` does), so a file
    missing from the sdist fails the build of the wheel."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return out


def _install(dist: Path, where: Path, requirements: Sequence[str], constraints: bool) -> Installed:
    venv.EnvBuilder(with_pip=True).create(where / "venv")
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


def test_sdist_carries_what_a_build_needs(dist: Path) -> None:
    import tarfile

    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {Path(*Path(n).parts[1:]).as_posix() for n in archive.getnames()}
    for needed in ("pyproject.toml", "README.md", "reconciler/schemas/plan.schema.json"):
        assert needed in names


def test_wheel_ships_the_schemas(dist: Path) -> None:
    import zipfile

    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("desired-state", "plan", "drift"):
        assert f"reconciler/schemas/{name}.schema.json" in names
    assert "reconciler/py.typed" in names


def test_version_and_help(installed: Installed) -> None:
    version = installed.run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("pkgrepo, version ")
    help_run = installed.run("--help")
    assert help_run.returncode == 0 and "validate" in help_run.stdout


def test_python_dash_m(installed: Installed) -> None:
    run = subprocess.run(
        [str(installed.bin / "python"), "-m", "reconciler", "--version"],
        cwd=installed.home,
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr


def test_schema_is_the_published_one(installed: Installed) -> None:
    run = installed.run("schema")
    assert run.returncode == 0, run.stderr
    published = json.loads((ROOT / "schemas" / "desired-state.schema.json").read_text())
    assert json.loads(run.stdout) == published


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_validate_every_example_without_secrets(installed: Installed, example: Path) -> None:
    """No variable an example names is set: validate passes with notes naming them."""
    copy = installed.home / example.name
    shutil.copy(example, copy)
    certs = installed.home / "certs"
    if not certs.exists():
        shutil.copytree(ROOT / "examples" / "certs", certs)
    run = installed.run("validate", example.name)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "valid" in run.stderr
    names = _variables(yaml.safe_load(example.read_text()))
    for name in names:
        assert name in run.stdout, f"{name} unset but not named in the notes"
    if names:
        resolved = installed.run("validate", "--resolve", example.name)
        assert resolved.returncode == 1
        assert sorted(names)[0] in resolved.stdout


def _variables(node: object) -> set[str]:
    """Every environment variable a desired-state document refers to."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {str(node["env"])}
        return set().union(*(_variables(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_variables(v) for v in node))
    if isinstance(node, str):
        return set(re.findall(r"\$\{env:(\w+)\}", node))
    return set()


@dataclass(frozen=True)
class Emulator:
    url: str
    process: subprocess.Popen[str]


@pytest.fixture
def emulator(installed: Installed) -> Iterator[Emulator]:
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


@pytest.mark.parametrize("which", ["newest", "lowest"])
def test_plan_apply_drift_round_trip(
    which: str, request: pytest.FixtureRequest, emulator: Emulator, tmp_path: Path
) -> None:
    package: Installed = request.getfixturevalue(
        "installed" if which == "newest" else "installed_lowest"
    )
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


def test_unexpected_error_exits_3_without_a_trace(installed: Installed) -> None:
    """A crash in the installed package: exit 3, its type, no trace unless asked."""
    probe = (
        "import sys\n"
        "from reconciler import cli\n"
        "from reconciler.commands import schema\n"
        "def boom(): raise RuntimeError('boom at https://u:installed-crash-pw@h.example.com')\n"
        "schema.command.callback = boom\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    for args, traced in ((["schema"], False), (["--debug", "schema"], True)):
        run = subprocess.run(
            [str(installed.bin / "python"), "-c", probe, *args],
            cwd=installed.home,
            env=installed.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 3
        assert "unexpected error (RuntimeError): boom" in run.stderr
        assert ("Traceback" in run.stderr) is traced
        assert "installed-crash-pw" not in run.stdout + run.stderr


def test_pre_commit_hook_as_pre_commit_installs_it(tmp_path: Path) -> None:
    """pre-commit installs the hook from this repository as a normal package (not editable,
    not from the checkout's path) and runs it on a user's files, with no secrets set."""
    if shutil.which("git") is None:
        pytest.skip("git is needed by pre-commit")
    user_repo = tmp_path / "user-repo"
    user_repo.mkdir()
    (user_repo / "good.yaml").write_text((ROOT / "examples" / "single-workspace.yaml").read_text())
    (user_repo / "bad.yaml").write_text("version: 1\nworkspaces:\n  x: {host: 12}\n")
    (user_repo / "other.yaml").write_text("not: a pkgrepo file\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=user_repo, check=True, env=env)
    subprocess.run([*git, "add", "."], cwd=user_repo, check=True, env=env)

    def try_repo(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pre_commit",
                "try-repo",
                str(ROOT),
                "pkgrepo-validate",
                "--files",
                *files,
            ],
            cwd=user_repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    run = try_repo("good.yaml", "bad.yaml", "other.yaml")
    text = run.stdout + run.stderr
    assert run.returncode == 1, text[-3000:]
    assert "bad.yaml:3:" in text and "host" in text, text[-3000:]
    good_lines = [line for line in text.splitlines() if line.startswith("good.yaml")]
    assert good_lines, text[-3000:]
    assert all("note [unresolved]" in line or ": valid" in line for line in good_lines), text
    assert "other.yaml" not in text, text[-3000:]
