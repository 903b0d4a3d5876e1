"""The pre-commit hook, as pre-commit installs it from this repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.installed


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
