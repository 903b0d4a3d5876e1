"""A plan never says "all is well" when it does not know (issue 14, items 1 to 3).

One host down must show in every plan format; a selection that matches nothing is an
error naming the labels that exist; a usage mistake exits 1, never the 2 of "changes".
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler import schemas
from tests.operator.conftest import Fleet
from tests.support.cli import Pkgrepo

FIVE = ("dev-a", "dev-b", "prd-a", "prd-b", "prd-c")
QUICK = ("--timeout", "1", "-q")


def _five_with_one_down(pkgrepo: Pkgrepo, fleet: Fleet, *, converged: bool) -> str:
    path = fleet.write(FIVE)
    if converged:
        assert pkgrepo("apply", path, "--auto-approve", "-q").code == 0
    fleet.dead = {"prd-b"}
    return fleet.write()


@pytest.mark.parametrize("converged", [True, False], ids=["others-in-sync", "others-change"])
def test_plan_with_an_unreachable_workspace_says_so_in_every_format(
    pkgrepo: Pkgrepo, fleet: Fleet, converged: bool
) -> None:
    path = _five_with_one_down(pkgrepo, fleet, converged=converged)

    text = pkgrepo("plan", path, *QUICK)
    assert text.code == 1
    assert "workspace prd-b (http://127.0.0.1:9/prd-b)" in text.out
    assert "! could not be read: its changes are unknown: list secrets:" in text.out
    assert "Plan incomplete: 1 of 5 workspaces could not be read" in text.out
    assert "No changes" not in text.out and "matches the desired state" not in text.out
    if converged:
        assert "4 workspaces are up to date: dev-a, dev-b, prd-a, prd-c" in text.out
    assert "error: 1 of 5 workspace(s) could not be planned" in text.err

    markdown = pkgrepo("plan", path, *QUICK, "--format", "markdown")
    assert markdown.code == 1
    assert markdown.out.startswith("## \N{CROSS MARK} pkgrepo plan: incomplete")
    assert "### \N{CROSS MARK} prd-b (http://127.0.0.1:9/prd-b)" in markdown.out
    assert "pkgrepo plan: no changes" not in markdown.out
    assert "every workspace matches" not in markdown.out.lower()
    for name in FIVE:
        assert name in markdown.out
    assert "error: prd-b: list secrets:" in markdown.err  # the page is on stdout

    document = pkgrepo("plan", path, *QUICK, "--format", "json")
    assert document.code == 1
    doc: Any = document.json()
    jsonschema.validate(doc, schemas.load(schemas.PLAN))
    assert doc["complete"] is False
    assert doc["summary"]["unreadable"] == 1
    assert [u["workspace"] for u in doc["unreadable"]] == ["prd-b"]
    assert "list secrets" in doc["unreadable"][0]["error"]
    named = {w["workspace"] for w in doc["workspaces"]} | {
        u["workspace"] for u in doc["unreadable"]
    }
    assert named == set(FIVE)


def test_an_incomplete_plan_is_not_saved(pkgrepo: Pkgrepo, fleet: Fleet, tmp_path: Path) -> None:
    path = _five_with_one_down(pkgrepo, fleet, converged=False)
    done = pkgrepo("plan", path, *QUICK, "--out", str(tmp_path / "plan.json"))
    assert done.code == 1
    assert "plan file" in done.err and "not written" in done.err
    assert not (tmp_path / "plan.json").exists()


@pytest.mark.timeout(120)
def test_an_unresolvable_host_fails_at_once_not_after_the_timeout(
    pkgrepo: Pkgrepo, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host name that does not exist fails at once: with --timeout 3600 a retrying client
    would hold this test until its own timeout fails it. (The resolver is answered here, for
    ``.invalid`` names only, so nothing leaves the machine.)"""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    path = Path(fleet.write(("dev-a", "prd-a")))
    path.write_text(path.read_text().replace(fleet.emu.host("prd-a"), "https://dbc-typo.invalid"))
    done = pkgrepo("plan", str(path), "--timeout", "3600", "-q")
    assert done.code == 1
    assert "cannot resolve host name dbc-typo.invalid: no such host" in done.out
    assert "Plan incomplete: 1 of 2 workspaces could not be read" in done.out


@pytest.mark.parametrize(
    "flags",
    [
        ("--select", "evn=prod"),
        ("--select", "env=production"),
        ("--select", "env=prod", "--select", "region=eu"),
        ("--workspace", "prd-*", "--select", "env=dev"),
    ],
    ids=["key-typo", "value-typo", "no-such-label", "names-and-labels-disjoint"],
)
@pytest.mark.parametrize("command", ["plan", "drift", "apply"])
def test_a_selection_that_matches_nothing_is_an_error_naming_the_labels(
    pkgrepo: Pkgrepo, fleet: Fleet, tmp_path: Path, command: str, flags: tuple[str, ...]
) -> None:
    path = fleet.write(FIVE)
    report = tmp_path / "drift.xml"
    extra = ("--format", "junit", "-o", str(report)) if command == "drift" else ()
    done = pkgrepo(command, path, *flags, *extra)
    assert done.code == 1
    assert "matches no workspace in the file" in done.err
    assert "labels in the file: env (dev, prod)" in done.err
    assert not report.exists()  # no green JUnit file with tests="0"
    assert fleet.emu.requests("dev-a") == {} and fleet.emu.requests("prd-a") == {}


def test_an_empty_shard_of_a_matching_selection_is_not_an_error(
    pkgrepo: Pkgrepo, fleet: Fleet
) -> None:
    """A CI matrix may have more jobs than a small fleet has workspaces: the other shards
    cover it. Only the flags that name workspaces must match something."""
    path = fleet.write(("dev-a",))
    codes = [pkgrepo("plan", path, "-q", "--shard", f"{i}/4").code for i in (1, 2, 3, 4)]
    assert codes == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "args",
    [
        ("valdate", "pkgrepo.yaml"),
        ("plan", "pkgrepo.yaml", "--format=yaml"),
        ("plan",),
        ("drift", "pkgrepo.yaml", "--no-such-flag"),
        ("plan", "missing.yaml"),
        ("apply", "pkgrepo.yaml", "--max-failures", "zero"),
        (),
    ],
    ids=[
        "unknown-command",
        "bad-choice",
        "missing-file-arg",
        "unknown-flag",
        "no-such-file",
        "bad-number",
        "no-command",
    ],
)
def test_usage_errors_exit_1_not_the_2_of_changes_present(
    pkgrepo: Pkgrepo, fleet: Fleet, args: tuple[str, ...]
) -> None:
    fleet.write(("dev-a",))
    done = pkgrepo(*args)
    assert done.code == 1, done.text
    assert "Usage:" in done.text or "Error" in done.text


def test_help_still_exits_0(pkgrepo: Pkgrepo) -> None:
    assert pkgrepo("--help").code == 0
    assert pkgrepo("plan", "--help").code == 0
