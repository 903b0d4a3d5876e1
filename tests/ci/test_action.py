"""The composite GitHub Action (``action.yml``): its steps run as the runner runs them, in
bash, with the inputs passed through ``env`` the way GitHub substitutes them, against the
emulator. ``gh`` (the GitHub CLI the runner provides) is a recording stand-in here; pkgrepo
and the SDK are real."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.emulator import ADMIN_TOKEN, running_emulator
from tests.ci.commands import invocations, problems
from tests.support import fleet_files
from tests.support.fleet_files import defaults_block, workspace

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
BIN = Path(sys.executable).parent


def action() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    return loaded


def step(name_prefix: str) -> dict[str, Any]:
    (found,) = [s for s in action()["runs"]["steps"] if s.get("name", "").startswith(name_prefix)]
    return found


_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def substitute(text: str, inputs: dict[str, str], context: dict[str, str]) -> str:
    """GitHub's ``${{ inputs.x }}`` / ``${{ github.x }}`` substitution, for env values."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression.startswith("inputs."):
            name = expression.removeprefix("inputs.")
            default = action()["inputs"][name].get("default", "")
            return inputs.get(name, str(default))
        return context[expression]

    return _EXPRESSION.sub(value, text)


@dataclass
class Runner:
    """One job's worth of runner files and a recording ``gh``."""

    root: Path

    def __post_init__(self) -> None:
        self.bin = self.root / "bin"
        self.bin.mkdir()
        self.output = self.root / "github_output"
        self.summary = self.root / "step_summary"
        self.gh_log = self.root / "gh.log"
        self.previous_comment = self.root / "previous_comments.jsonl"
        """What ``gh api --paginate .../comments --jq ...`` prints: one JSON object a line."""
        for path in (self.output, self.summary, self.gh_log):
            path.write_text("")
        gh = self.bin / "gh"
        gh.write_text(
            "#!/usr/bin/env bash\n"
            f'echo "gh $*" >> "{self.gh_log}"\n'
            'for a in "$@"; do case "$a" in body=@*) '
            f'cat "${{a#body=@}}" >> "{self.gh_log}";; esac; done\n'
            'case "$*" in *"--paginate"*) '
            f'cat "{self.previous_comment}" 2>/dev/null;; esac\n'
        )
        gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
        event = {"pull_request": {"number": 42}}
        self.event = self.root / "event.json"
        self.event.write_text(json.dumps(event))

    def run_step(
        self, prefix: str, inputs: dict[str, str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        spec = step(prefix)
        assert spec["shell"] == "bash"
        context = {"github.action_path": str(ROOT), "github.token": GITHUB_TOKEN}
        step_env = {k: substitute(str(v), inputs, context) for k, v in spec["env"].items()}
        base = {
            "PATH": f"{self.bin}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(self.root),
            "RUNNER_TEMP": str(self.root),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_EVENT_PATH": str(self.event),
            "GITHUB_REPOSITORY": "acme/platform",
            **{
                k: os.environ[k]
                for k in (
                    "ACTION_TEST_TOKEN",
                    "INDEX_TOKEN",
                    "PKGREPO_LEDGER_KEY",
                    "PKGREPO_SKIP_VERIFY",
                )
                if k in os.environ
            },
        }
        script = self.root / "step.sh"
        script.write_text(spec["run"])
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],  # `shell: bash`
            cwd=self.root,
            env={**base, **(env or {}), **step_env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def outputs(self) -> dict[str, str]:
        return dict(
            line.split("=", 1) for line in self.output.read_text().splitlines() if "=" in line
        )


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    (tmp_path / "runner").mkdir()
    return Runner(tmp_path / "runner")


INDEX_TOKEN = "planted-Index-Token-action"
GITHUB_TOKEN = "ghs_plantedGitHubToken0001"
INDEX_URL = "https://ci:${env:INDEX_TOKEN}@artifactory.example.com/api/pypi/remote/simple"


@pytest.fixture
def write_desired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Path]]:
    monkeypatch.setenv("ACTION_TEST_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("INDEX_TOKEN", INDEX_TOKEN)
    monkeypatch.setenv("PKGREPO_LEDGER_KEY", "action-ledger-key-5e")
    with running_emulator() as emu:

        def write() -> Path:
            members = {
                "dev": workspace(emu.host("dev")),
                "prod": workspace(emu.host("prod"), wave=1),
            }
            block = defaults_block("ACTION_TEST_TOKEN", index_url=INDEX_URL)
            return fleet_files.write_desired(tmp_path / "pkgrepo.yaml", members, defaults=block)

        yield write


def test_inputs_are_documented_and_reach_the_shell_only_through_env() -> None:
    document = action()
    assert document["runs"]["using"] == "composite"
    for name, spec in document["inputs"].items():
        assert spec.get("description"), name
    for spec in document["runs"]["steps"]:
        if "run" in spec:
            assert "${{" not in spec["run"], f"expression pasted into a script: {spec['name']}"


def test_the_example_workflow_uses_the_action() -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())
    used = [
        s
        for job in workflow["jobs"].values()
        for s in job["steps"]
        if str(s.get("uses", "")).split("@")[0].endswith("/pkgrepo")
    ]
    commands = {s["with"]["command"] for s in used}
    assert {"validate", "plan", "apply", "drift"} <= commands
    for s in used:
        line = f"pkgrepo {s['with']['command']} {s['with'].get('args', '')}"
        found = invocations(line, "github-actions.yml (action)")
        assert found and not problems(found[0]), problems(found[0]) if found else line


def test_install_step_installs_this_actions_version_or_the_named_one(runner: Runner) -> None:
    fake_python = runner.bin / "python"
    fake_python.write_text(f'#!/usr/bin/env bash\necho "python $*" >> "{runner.gh_log}"\n')
    fake_python.chmod(0o755)
    fake_pkgrepo = runner.bin / "pkgrepo"
    fake_pkgrepo.write_text("#!/usr/bin/env bash\necho pkgrepo, version 0.0\n")
    fake_pkgrepo.chmod(0o755)
    assert runner.run_step("Install", {}).returncode == 0
    assert runner.run_step("Install", {"version": "0.1.0"}).returncode == 0
    log = runner.gh_log.read_text().splitlines()
    assert log[0].endswith(f"install --quiet --disable-pip-version-check {ROOT}")
    assert log[1].endswith("pkgrepo-reconciler==0.1.0")


def test_plan_writes_the_summary_and_posts_then_updates_one_comment(
    runner: Runner, write_desired: Any
) -> None:
    desired = write_desired()
    inputs = {
        "command": "plan",
        "args": f"{desired} --detailed-exitcode --out '{runner.root / 'a plan.json'}'",
        "comment": "true",
    }
    first = runner.run_step("pkgrepo", inputs)
    assert first.returncode == 2, first.stdout + first.stderr  # changes present
    assert runner.outputs()["exit-code"] == "2"
    summary = runner.summary.read_text()
    assert "dev" in summary and "prod" in summary and "|" in summary  # a Markdown table
    assert (runner.root / "a plan.json").is_file()
    log = runner.gh_log.read_text()
    assert "gh api --method POST repos/acme/platform/issues/42/comments" in log
    assert "<!-- pkgrepo-plan -->" in log
    marker = "<!-- pkgrepo-plan -->"
    comments = [
        {"id": 987, "login": "github-actions[bot]", "body": f"{marker}\nold plan"},
        {"id": 990, "login": "mallory", "body": f"{marker}\nplanted by someone else"},
        {"id": 991, "login": "github-actions[bot]", "body": "another bot comment"},
    ]
    runner.previous_comment.write_text("".join(json.dumps(c) + "\n" for c in comments))
    runner.run_step("pkgrepo", inputs)
    log = runner.gh_log.read_text()
    assert "--method PATCH repos/acme/platform/issues/comments/987" in log
    assert "comments/990" not in log and "comments/991" not in log
    for text in (summary, log, first.stdout, first.stderr):
        assert INDEX_TOKEN not in text


def test_args_are_words_never_code(runner: Runner, write_desired: Any) -> None:
    desired = write_desired()
    pwned = runner.root / "pwned"
    inputs = {"command": "validate", "args": f"{desired} $(touch {pwned}) `touch {pwned}`"}
    run = runner.run_step("pkgrepo", inputs)
    assert run.returncode != 0  # the extra words are taken as (bad) arguments
    assert not pwned.exists()
    bad = runner.run_step("pkgrepo", {"command": "rm -rf /"})
    assert bad.returncode == 1 and "unknown command" in bad.stdout


def test_drift_reports_to_the_job_summary(runner: Runner, write_desired: Any) -> None:
    desired = write_desired()
    run = runner.run_step("pkgrepo", {"command": "drift", "args": str(desired)})
    assert run.returncode == 2, run.stdout + run.stderr  # nothing applied yet: drift
    assert runner.outputs()["exit-code"] == "2"
    assert runner.summary.read_text().strip()


def test_apply_without_comment_or_summary(runner: Runner, write_desired: Any) -> None:
    desired = write_desired()
    inputs = {"command": "apply", "args": f"{desired} --auto-approve", "summary": "false"}
    run = runner.run_step("pkgrepo", inputs)
    assert run.returncode == 0, run.stdout + run.stderr
    assert runner.outputs() == {"exit-code": "0", "markdown": ""}
    assert runner.summary.read_text() == ""
    assert shutil.which("gh", path=str(runner.bin))
    assert runner.gh_log.read_text() == ""


def test_a_hostile_comment_key_is_text_not_code(runner: Runner, write_desired: Any) -> None:
    desired = write_desired()
    key = 'x") or true or ("'
    comments = [{"id": 5, "login": "github-actions[bot]", "body": "unrelated"}]
    runner.previous_comment.write_text(json.dumps(comments[0]) + "\n")
    inputs = {"command": "plan", "args": str(desired), "comment": "true", "comment-key": key}
    assert runner.run_step("pkgrepo", inputs).returncode == 0
    log = runner.gh_log.read_text()
    assert "PATCH" not in log and "--method POST" in log


def test_the_github_token_never_reaches_pkgrepo(runner: Runner) -> None:
    spy = runner.bin / "pkgrepo"
    spy.write_text(f'#!/usr/bin/env bash\nenv > "{runner.root / "pkgrepo.env"}"\n')
    spy.chmod(0o755)
    inputs = {"command": "plan", "args": "pkgrepo.yaml", "comment": "true"}
    runner.run_step("pkgrepo", inputs, env={"GH_TOKEN": GITHUB_TOKEN, "GITHUB_TOKEN": GITHUB_TOKEN})
    seen = (runner.root / "pkgrepo.env").read_text()
    assert GITHUB_TOKEN not in seen


def test_unbalanced_quotes_fail_instead_of_dropping_the_args(runner: Runner) -> None:
    run = runner.run_step("pkgrepo", {"command": "drift", "args": "pkgrepo.yaml --format 'junit"})
    assert run.returncode == 1
    assert "cannot split args" in run.stdout
    assert "exit-code" not in runner.outputs()


OPERATOR_ONLY = frozenset({"emulator", "force-unlock"})
"""Commands the action does not run: a local stand-in, and lock removal (a person's call)."""


def test_the_action_accepts_every_command_a_pipeline_runs() -> None:
    import click

    from reconciler.cli import cli

    expected = set(cli.list_commands(click.Context(cli))) - OPERATOR_ONLY
    script = step("pkgrepo")["run"]
    (case,) = re.findall(r"^\s*([a-z|-]+)\) ;;$", script, re.MULTILINE)
    assert set(case.split("|")) == expected
    described = action()["inputs"]["command"]["description"]
    assert set(re.findall(r"[a-z-]+", described)) >= expected


def test_verify_and_show_run_through_the_action(runner: Runner, write_desired: Any) -> None:
    desired = write_desired()
    saved = runner.root / "plan.json"
    plan = runner.run_step(
        "pkgrepo", {"command": "plan", "args": f"{desired} --out {saved}", "summary": "false"}
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr
    show = runner.run_step("pkgrepo", {"command": "show", "args": f"{saved} --format junit"})
    assert show.returncode == 0, show.stdout + show.stderr
    assert '<testsuite name="pkgrepo plan"' in show.stdout
    # Nothing listens on 127.0.0.1:9: verify runs, probes, and says so.
    local = desired.parent / "local.yaml"
    local.write_text(
        desired.read_text().replace("artifactory.example.com", "127.0.0.1:9"), encoding="utf-8"
    )
    verify = runner.run_step("pkgrepo", {"command": "verify", "args": str(local)})
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "cannot connect" in verify.stdout
    assert runner.outputs()["exit-code"] == "1"
    for text in (plan.stdout, plan.stderr, show.stdout, verify.stdout, verify.stderr):
        assert INDEX_TOKEN not in text
