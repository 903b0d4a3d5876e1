"""Say what is wrong, once (issue 14, items 5 and 7).

A refused token is an authentication failure with the service's own words, not "permission
denied"; an identity that lacks rights is told apart from one the service does not know.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.emulator import USER_TOKEN
from tests.operator.conftest import Fleet
from tests.support.cli import Pkgrepo


def test_a_bad_token_is_an_authentication_failure_in_the_services_words(
    pkgrepo: Pkgrepo, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fleet.write(("dev-a",))
    monkeypatch.setenv("PKGREPO_TEST_TOKEN", "dapi-wrong-0123456789")
    done = pkgrepo("plan", path, "-q")
    assert done.code == 1
    assert 'authentication failed: the service said "Invalid access token."' in done.out
    assert "were refused" in done.out
    assert "permission denied" not in done.text
    assert "Config:" not in done.text  # the SDK's configuration summary is not the message
    assert "dapi-wrong-0123456789" not in done.text


def test_missing_rights_are_permission_denied_with_the_services_words(
    pkgrepo: Pkgrepo, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fleet.write(("dev-a",))
    assert pkgrepo("apply", path, "--auto-approve", "-q").code == 0
    monkeypatch.setenv("PKGREPO_TEST_TOKEN", USER_TOKEN)  # a plain user: READ on the scope
    done = pkgrepo("plan", path, "-q")
    assert done.code == 1
    assert "permission denied: the service said " in done.out
    assert "the credentials were accepted; pkgrepo needs a workspace admin" in done.out
    assert "authentication failed" not in done.text


# -- noise across a fleet (item 7) -------------------------------------------------------------

FORTY = tuple(f"ws-{i:02d}" for i in range(40))


def test_a_mistake_in_defaults_is_one_line_naming_the_workspaces(
    pkgrepo: Pkgrepo, fleet: Fleet
) -> None:
    path = fleet.write(FORTY, defaults_extra={"acls_mode": "exact"})
    Path(path).write_text(Path(path).read_text().replace("users: READ", "users: WRITE"))
    for args in (("validate", path), ("plan", path, "-q")):
        done = pkgrepo(*args)
        assert done.code == 1
        lines = [line for line in done.text.splitlines() if "[users-read-only]" in line]
        assert len(lines) == 1, done.text
        assert "40 workspaces (ws-00, ws-01, ws-02, ws-03, ws-04 and 35 more)" in lines[0]


def test_schema_and_policy_problems_are_reported_together(pkgrepo: Pkgrepo, fleet: Fleet) -> None:
    path = fleet.write(("dev-a", "dev-b", "prd-a"))
    text = Path(path).read_text().replace("users: READ", "users: WRITE")
    text = text.replace("  dev-b:\n", "  dev-b:\n    wave: soon\n")
    Path(path).write_text(text)
    for args in (("validate", path), ("plan", path, "-q")):
        done = pkgrepo(*args)
        assert done.code == 1
        assert "workspaces.dev-b.wave: expected an integer" in done.text
        assert "[users-read-only] 2 workspaces (dev-a, prd-a)" in done.text
    assert fleet.emu.requests("dev-a") == {}


def test_warnings_are_printed_once_and_only_for_the_selection(
    pkgrepo: Pkgrepo, fleet: Fleet, tmp_path: Path
) -> None:
    from tests.pem import make_cert

    (tmp_path / "soon.pem").write_text(make_cert("Expiring CA", days=10))
    path = fleet.write(FORTY, cert={"file": "soon.pem"})
    everything = pkgrepo("plan", path, "-q")
    warned = [line for line in everything.err.splitlines() if "[cert-expiring]" in line]
    assert len(warned) == 1, everything.err
    assert "40 workspaces (ws-00, ws-01, ws-02, ws-03, ws-04 and 35 more)" in warned[0]
    one = pkgrepo("plan", path, "-q", "--workspace", "ws-07")
    warned = [line for line in one.err.splitlines() if "[cert-expiring]" in line]
    assert len(warned) == 1 and "] ws-07: certificate 1 (CN=Expiring CA)" in warned[0]
    assert "ws-08" not in one.err


def test_a_fleet_wide_plan_warning_is_said_once(
    pkgrepo: Pkgrepo, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fleet.write(FORTY[:12])
    assert pkgrepo("apply", path, "--auto-approve", "-q").code == 0
    monkeypatch.delenv("PKGREPO_LEDGER_KEY")
    for fmt in ("text", "markdown"):
        done = pkgrepo("plan", path, "-q", "--format", fmt)
        assert done.code == 0
        shown = done.out.replace("\\_", "_")  # Markdown escapes underscores
        assert shown.count("PKGREPO_LEDGER_KEY is not set") == 1, done.out
        assert "all 12 workspaces" in done.out
        # no block opened per workspace only to repeat the warning
        assert "### ws-03" not in done.out and "workspace ws-03" not in done.out


def test_each_workspace_error_is_printed_once(pkgrepo: Pkgrepo, fleet: Fleet) -> None:
    fleet.write(("dev-a", "prd-a"))
    fleet.dead = {"prd-a"}
    path = fleet.write()
    for args in (("plan", path), ("apply", path, "--auto-approve")):
        done = pkgrepo(*args, "--timeout", "1")
        assert done.code == 1
        assert done.text.count("no answer from http://127.0.0.1:9/prd-a") == 1, done.text
