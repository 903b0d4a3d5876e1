"""The small things that add up (issue 14, item 11): the demo says how to reach pkgrepo,
and the GitLab template keeps one merge-request note with one merged report."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _demo() -> Any:
    spec = importlib.util.spec_from_file_location("demo", ROOT / "examples" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_ends_saying_how_to_reach_pkgrepo() -> None:
    done = _demo().DONE
    assert "`.venv/bin/pkgrepo --help`" in done and ". .venv/bin/activate" in done
    assert "not on your PATH" in done


def test_gitlab_updates_one_note_with_one_merged_report() -> None:
    gitlab = yaml.safe_load((ROOT / "examples" / "ci" / "gitlab-ci.yml").read_text())
    script = "\n".join(gitlab["plan-comment"]["script"])
    assert "pkgrepo show plan-*.json --format markdown > comment.md" in script
    assert "<!-- pkgrepo-plan -->" in script and '"PUT"' in script  # updated, not re-posted
    assert gitlab["plan-comment"]["when"] == "always"
    for job in (".on-merge-request", "apply"):
        changes = gitlab[job]["rules"][0]["changes"]
        assert "$PKGREPO_FILE" in changes and "pkgrepo.yaml" not in changes


def test_github_posts_the_merged_report() -> None:
    github = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())
    runs = "\n".join(s.get("run", "") for s in github["jobs"]["comment"]["steps"])
    assert "pkgrepo show plan-*.json --format markdown > comment.md" in runs
    assert "--edit-last" in runs
