"""The CI templates and the pre-commit hook: they parse, wire the documented flow, and every
``pkgrepo`` command line in them is one the CLI accepts."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci.commands import Invocation, invocations, problems

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "examples" / "ci"
GITHUB = CI / "github-actions.yml"
GITHUB_FLEET = CI / "github-actions-discovered.yml"
GITLAB = CI / "gitlab-ci.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
README = CI / "README.md"
FLOW = {"validate", "plan", "apply", "drift"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def github_scripts(path: Path = GITHUB) -> list[str]:
    """Shell steps, and the steps that use pkgrepo's action as the command line it runs."""
    jobs = load(path)["jobs"]
    scripts = [step["run"] for job in jobs.values() for step in job["steps"] if "run" in step]
    for job in jobs.values():
        for step in job["steps"]:
            if str(step.get("uses", "")).split("@")[0].endswith("/pkgrepo"):
                scripts.append(f"pkgrepo {step['with']['command']} {step['with'].get('args', '')}")
    return scripts


def github_fleet_scripts() -> list[str]:
    return github_scripts(GITHUB_FLEET)


def gitlab_scripts() -> list[str]:
    scripts: list[str] = []
    for value in load(GITLAB).values():
        if isinstance(value, dict):
            for key in ("before_script", "script", "after_script"):
                scripts += value.get(key) or []
    return scripts


def hook_scripts() -> list[str]:
    return [hook["entry"] for hook in load(HOOKS)]


def readme_scripts() -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


def found(scripts: list[str], source: str) -> list[Invocation]:
    return [inv for script in scripts for inv in invocations(script, source)]


SOURCES = {
    "github": lambda: found(github_scripts(), "github-actions.yml"),
    "github-fleet": lambda: found(github_fleet_scripts(), "github-actions-discovered.yml"),
    "gitlab": lambda: found(gitlab_scripts(), "gitlab-ci.yml"),
    "pre-commit": lambda: found(hook_scripts(), ".pre-commit-hooks.yaml"),
    "readme": lambda: found(readme_scripts(), "README.md"),
}


@pytest.mark.parametrize("path", [GITHUB, GITHUB_FLEET, GITLAB, HOOKS], ids=lambda p: p.name)
def test_files_parse(path: Path) -> None:
    assert load(path)


@pytest.mark.parametrize("source", SOURCES)
def test_every_pkgrepo_command_line_is_real(source: str) -> None:
    calls = SOURCES[source]()
    assert calls, f"no pkgrepo command found in {source}"
    wrong = {str(call): problems(call) for call in calls if problems(call)}
    assert wrong == {}


@pytest.mark.parametrize("source", ["github", "gitlab", "readme"])
def test_the_whole_flow_is_there(source: str) -> None:
    assert {call.words[0] for call in SOURCES[source]()} >= FLOW


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("pkgrepo frobnicate x", "no subcommand 'frobnicate'"),
        ("pkgrepo plan x --no-such-flag", "plan: no option --no-such-flag"),
        ("pkgrepo drift x --format yaml", "drift: --format 'yaml' is not one of"),
        ("pkgrepo drift --format=junit", "drift takes 1 argument(s)"),
        ("pkgrepo apply a b", "apply takes 1 argument(s)"),
        ("pkgrepo --nope validate x", "no option --nope"),
        ("pkgrepo plan x --out", "--out needs a value"),
    ],
)
def test_the_checker_catches_mistakes(line: str, complaint: str) -> None:
    (call,) = invocations(line, "test")
    assert any(complaint in p for p in problems(call)), problems(call)


def test_the_extractor_reads_shell() -> None:
    script = (
        'set +e\nout=$(pkgrepo validate a.yaml) && pkgrepo plan "a b.yaml" \\\n'
        '  --shard "${{ matrix.shard }}/$SHARDS" > plan.md\n'
        "python3 - <<'PY'\nprint('pkgrepo frobnicate')\nPY\n"
        "echo pkgrepo drift # pkgrepo nope\n"
    )
    calls = [call.words for call in invocations(script, "t")]
    assert calls == [("validate", "a.yaml"), ("plan", "a b.yaml", "--shard", "X/$SHARDS")]


def test_shards_match_the_matrix() -> None:
    github = load(GITHUB)
    shards = int(github["env"]["SHARDS"])
    for job in ("plan", "apply", "drift"):
        assert github["jobs"][job]["strategy"]["matrix"]["shard"] == list(range(1, shards + 1))
    gitlab = load(GITLAB)
    values = gitlab[".shards"]["parallel"]["matrix"][0]["SHARD"]
    assert values == [str(i) for i in range(1, int(gitlab["variables"]["SHARDS"]) + 1)]
    for job in ("plan", "apply", "drift"):
        assert ".shards" in gitlab[job]["extends"]


def test_github_wiring() -> None:
    github = load(GITHUB)
    triggers = github[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) >= {"pull_request", "push", "schedule"}
    assert triggers["push"]["branches"] == ["main"]
    jobs = github["jobs"]
    uses = {name: [s.get("uses", "") for s in job["steps"]] for name, job in jobs.items()}
    assert any(u.startswith("actions/upload-artifact") for u in uses["plan"])
    assert any("gh pr comment" in s.get("run", "") for s in jobs["comment"]["steps"])
    assert jobs["comment"]["permissions"] == {"pull-requests": "write"}
    assert any(u.startswith("actions/download-artifact") for u in uses["apply"])
    assert any("junit" in u for u in uses["drift"])
    assert jobs["drift"]["permissions"]["checks"] == "write"
    for name in ("plan", "apply", "drift"):
        assert jobs[name]["env"]["PKGREPO_LEDGER_KEY"] == "${{ secrets.PKGREPO_LEDGER_KEY }}"


def test_discovered_fleet_matrix_merges_one_comment() -> None:
    fleet = load(GITHUB_FLEET)
    shards = int(fleet["env"]["SHARDS"])
    jobs = fleet["jobs"]
    assert jobs["plan"]["strategy"]["matrix"]["shard"] == list(range(1, shards + 1))
    plan_env = jobs["plan"]["env"]
    assert plan_env["DATABRICKS_CLIENT_SECRET"] == "${{ secrets.DATABRICKS_CLIENT_SECRET }}"
    assert not any("DATABRICKS_TOKEN" in key for key in plan_env)  # the principal only
    comment = " ".join(s.get("run", "") for s in jobs["comment"]["steps"])
    assert "seq 1" in comment and comment.count("gh pr comment") == 2
    assert jobs["comment"]["needs"] == "plan"


def test_gitlab_wiring() -> None:
    gitlab = load(GITLAB)
    assert gitlab["stages"] == ["validate", "plan", "apply", "drift"]
    assert gitlab["drift"]["artifacts"]["reports"]["junit"] == "drift-$SHARD.xml"
    assert "merge_request_event" in gitlab[".on-merge-request"]["rules"][0]["if"]
    assert "CI_DEFAULT_BRANCH" in gitlab["apply"]["rules"][0]["if"]
    assert "schedule" in gitlab["drift"]["rules"][0]["if"]


ECHO_SECRET = re.compile(r"(echo|printf)[^\n]*\$\{?\w*(TOKEN|KEY|SECRET|PASSWORD)", re.I)


@pytest.mark.parametrize(
    "scripts",
    [github_scripts, github_fleet_scripts, gitlab_scripts, hook_scripts],
    ids=["github", "github-fleet", "gitlab", "pre-commit"],
)
def test_no_secret_is_echoed(scripts: Any) -> None:
    for script in scripts():
        assert not ECHO_SECRET.search(script), script
        assert "set -x" not in script


def test_readme_explains_the_secrets() -> None:
    text = README.read_text(encoding="utf-8")
    for words in (
        "PKGREPO_LEDGER_KEY",
        "DATABRICKS_TOKEN",
        "Never echo them",
        "--shard",
        "pkgrepo-validate",
    ):
        assert words in text


def test_the_pre_commit_hook_validates_only_desired_state_files(tmp_path: Path) -> None:
    (hook,) = load(HOOKS)
    assert hook["id"] == "pkgrepo-validate" and hook["language"] == "python"
    good = tmp_path / "good.yaml"
    good.write_text(
        "version: 1\nworkspaces:\n  dev:\n    host: http://127.0.0.1:8020/dev\n"
        "    acls: {admins: MANAGE, users: READ}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nworkspaces:\n  dev:\n    hots: http://x\n")
    other = tmp_path / "other.yaml"
    other.write_text("name: not a pkgrepo file\n")
    # pre-commit runs the entry with its environment's bin directory first on PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(ROOT)}

    def hook_run(*files: Path) -> subprocess.CompletedProcess[str]:
        argv = [*shlex.split(hook["entry"]), *(str(f) for f in files)]
        return subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    ran = hook_run(good, other)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    ran = hook_run(good, bad, other)
    assert ran.returncode == 1
    assert "bad.yaml" in ran.stdout + ran.stderr and "hots" in ran.stdout + ran.stderr
