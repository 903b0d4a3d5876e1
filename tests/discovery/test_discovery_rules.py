"""The ``discover:`` rules: validated offline, and applied to what an account lists,
including answers an account should never give (hostile names, hosts, tags)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler import config
from reconciler.cli import main
from reconciler.core.discovery import (
    SHOWN_ORPHANS,
    AccountWorkspace,
    DiscoveryReport,
    Skipped,
    expand,
    host_template_problem,
    orphan_reasons,
    shown,
)
from reconciler.core.model import (
    AccountSpec,
    AuthSpec,
    DesiredState,
    DiscoverySpec,
    WorkspaceSpec,
    frozen_map,
)

HEAD = """\
version: 1
defaults:
  repositories: {index_url: https://pypi.example.com/simple}
  acls: {admins: MANAGE, users: READ}
discover:
  account:
    host: https://accounts.cloud.databricks.com
    account_id: 0d1e7a4b-0000-4000-8000-0000000000a1
    auth: {client_id: app-1, client_secret: {env: RULES_SECRET}}
"""


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RULES_SECRET", "rules-secret-value-1234")


def load(tmp_path: Path, text: str) -> DesiredState:
    """HEAD, then ``text``: its lines indented deeper than ``workspaces:`` go under
    ``discover:``."""
    path = tmp_path / "pkgrepo.yaml"
    body = textwrap.dedent(text)
    if not body.startswith(" "):
        body = textwrap.indent(body, "  ")
    path.write_text(HEAD + body)
    return config.load(path).desired


def ws(name: str, **fields: object) -> AccountWorkspace:
    base: dict[str, object] = {
        "deployment_name": f"dbc-{name}",
        "workspace_id": abs(hash(name)) % 10**12,
        "region": "eu-west-1",
        "status": "RUNNING",
        "cloud": "aws",
        "tags": frozen_map({}),
    }
    base.update(fields)
    dep = str(base["deployment_name"])
    base.setdefault("deployment_url", f"https://{dep}.cloud.databricks.com")
    return AccountWorkspace(name=name, **base)  # type: ignore[arg-type]


def test_rules_match_by_name_region_status_and_tags(tmp_path: Path) -> None:
    desired = load(
        tmp_path,
        """\
          include:
            - name: prod-*
              region: eu-*
              tags: {env: prod}
              labels: {tier: gold, team: "{tag:team}"}
              wave: 2
            - {name: dev-*, labels: {tier: bronze}, wave: "{tag:wave}"}
          exclude: [dev-old]
        """,
    )
    listed = [
        ws("prod-eu", tags=frozen_map({"env": "prod", "team": "data"})),
        ws("prod-us", region="us-east-1", tags=frozen_map({"env": "prod"})),
        ws("dev-1", tags=frozen_map({"wave": "1"})),
        ws("dev-old"),
        ws("dev-new", status="PROVISIONING"),
        ws("other"),
    ]
    expanded, report = expand(desired, listed)
    specs = {s.name: s for s in expanded.workspaces}
    assert set(specs) == {"prod-eu", "dev-1"}
    assert specs["prod-eu"].host == "https://dbc-prod-eu.cloud.databricks.com"
    assert dict(specs["prod-eu"].labels) == {"tier": "gold", "team": "data"}
    assert (specs["prod-eu"].wave, specs["dev-1"].wave) == (2, 1)
    assert specs["dev-1"].auth.kind == "oauth" and specs["dev-1"].auth.client_id == "app-1"
    assert specs["dev-1"].secrets == desired.discovery.template.secrets  # type: ignore[union-attr]
    assert {s.name: s.reason for s in report.skipped} == {
        "'prod-us'": "matches no `include` rule",
        "'dev-old'": "excluded by `dev-old`",
        "'dev-new'": "status 'PROVISIONING', not RUNNING",
        "'other'": "matches no `include` rule",
    }


def test_declared_entries_extend_or_replace_discovered_ones(tmp_path: Path) -> None:
    desired = load(
        tmp_path,
        """\
          include: [{labels: {src: account}}]
        workspaces:
          prod-eu:              # extends: no host
            labels: {owner: me}
            wave: 5
            repositories: {index_url: https://other.example.com/simple}
          pinned:               # replaces: its own host and auth
            host: https://pinned.example.com
            auth: {token: {env: RULES_SECRET}}
          gone: {wave: 1}       # extends a workspace the account no longer lists
        """,
    )
    expanded, report = expand(desired, [ws("prod-eu"), ws("pinned"), ws("fresh")])
    specs = {s.name: s for s in expanded.workspaces}
    assert set(specs) == {"prod-eu", "pinned", "fresh"}
    assert specs["prod-eu"].host == "https://dbc-prod-eu.cloud.databricks.com"
    assert dict(specs["prod-eu"].labels) == {"src": "account", "owner": "me"}
    assert specs["prod-eu"].wave == 5 and specs["prod-eu"].auth.kind == "oauth"
    assert specs["prod-eu"].secrets["pip-index-url"].plaintext.startswith("https://other.")
    assert specs["pinned"].host == "https://pinned.example.com"
    assert specs["pinned"].auth.kind == "token"
    assert report.missing == ("gone",)
    assert "gone" not in specs  # reported, never planned: nothing is deleted


@pytest.mark.parametrize(
    ("listed", "reason"),
    [
        (ws("evil", deployment_name="x.attacker.example/"), "is not usable in a host name"),
        (ws("evil", deployment_name="a@b"), "is not usable in a host name"),
        (ws("evil", deployment_name=""), "is not usable in a host name"),
        (ws("bad name"), "is not usable as a workspace name"),
        (ws("e\x1b[31mvil"), "is not usable as a workspace name"),
        (ws("w", tags=frozen_map({"wave": "99999"})), "is not a whole number from 0 to 1000"),
        (ws("w", tags=frozen_map({"wave": "-1"})), "is not a whole number"),
        (ws("w", tags=frozen_map({"wave": "1", "team": "x" * 300})), "longer than 256"),
        (ws("w", tags=frozen_map({"wave": "1", "team": "a\nb"})), "control characters"),
    ],
)
def test_hostile_account_answers_are_skipped_with_a_reason(
    tmp_path: Path, listed: AccountWorkspace, reason: str
) -> None:
    desired = load(
        tmp_path,
        """\
          include: [{labels: {team: "{tag:team}"}, wave: "{tag:wave}"}]
        """,
    )
    if "wave" not in listed.tags:
        listed = AccountWorkspace(**{**listed.__dict__, "tags": frozen_map({"wave": "0"})})
    expanded, report = expand(desired, [listed])
    assert expanded.workspaces == ()
    assert len(report.skipped) == 1
    assert reason in report.skipped[0].reason
    assert "\x1b" not in report.skipped[0].name + report.skipped[0].reason


def test_a_host_template_keeps_hosts_under_its_domain(tmp_path: Path) -> None:
    desired = load(
        tmp_path,
        """\
          host: "https://{deployment_name}.cloud.databricks.com"
        """,
    )
    listed = [
        ws("a", deployment_name="dbc-1"),
        ws("b", deployment_name="evil.com#"),
        ws("c", deployment_name="evil.com:443"),
        ws("d", deployment_name="dbc-1"),  # the same host twice: the second is skipped
    ]
    expanded, report = expand(desired, listed)
    assert [(s.name, s.host) for s in expanded.workspaces] == [
        ("a", "https://dbc-1.cloud.databricks.com")
    ]
    assert len(report.skipped) == 3


@pytest.mark.parametrize(
    "template",
    [
        "https://{deployment_name}",
        "https://{deployment_name}:8443/x",
        "https://x.{deployment_name}",
        "https://user@{name}.example.com",
        "ftp://{name}.example.com",
        "https://{nope}.example.com",
        "http://{deployment_name}.cloud.databricks.com",
    ],
)
def test_unsafe_host_templates_are_refused(template: str) -> None:
    assert host_template_problem(template) is not None


def test_validate_checks_the_rules_without_calling_the_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkgrepo.yaml").write_text(
        HEAD
        + """\
  host: "https://{deployment_name}"
  include:
    - labels: {team: "{tag:team}", bad: "{owner}"}
      wave: "{tag:wave"
"""
    )
    code = main(["validate", "pkgrepo.yaml"])
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert code == 1
    assert "pkgrepo.yaml:10:9: discover.host: the host template puts a placeholder" in err
    assert "discover.include[0].labels.bad: unknown placeholder {owner}" in err
    assert "discover.include[0].wave: unbalanced" in err
    assert "rules-secret-value-1234" not in err


def test_the_client_secret_only_travels_over_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    text = HEAD.replace("https://accounts.cloud", "http://accounts.cloud")
    (tmp_path / "pkgrepo.yaml").write_text(text)
    assert main(["validate", "pkgrepo.yaml"]) == 1
    captured = capsys.readouterr()
    assert "discover.account.host: the account host must use https" in captured.out + captured.err
    assert host_template_problem("http://127.0.0.1:8020/{deployment_name}") is None


def test_a_file_with_only_discovery_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkgrepo.yaml").write_text(HEAD)
    assert main(["validate", "pkgrepo.yaml"]) == 0, capsys.readouterr().err


def test_policy_checks_cover_what_discovered_workspaces_inherit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    text = HEAD.replace("https://pypi.example.com/simple", "http://pypi.example.com/simple")
    (tmp_path / "pkgrepo.yaml").write_text(text)
    assert main(["validate", "pkgrepo.yaml"]) == 1
    assert "error [https-only] (discovered)" in capsys.readouterr().out


def test_orphan_reasons_are_bounded_and_say_what_the_account_says() -> None:
    account = AccountSpec(host="https://accounts.example", account_id="a", auth=AuthSpec())
    spec = DiscoverySpec(account=account, template=WorkspaceSpec(name="t", host=""))
    listed = [AccountWorkspace(name="kept", status="BANNED")]
    report = DiscoveryReport("a", 1, (), skipped=(Skipped(shown("kept"), "status 'BANNED'"),))
    orphaned = ("kept", *(f"gone-{i:03d}" for i in range(120)))
    lines = orphan_reasons(spec, report, listed, orphaned)
    assert lines[0].startswith("kept: managed by pkgrepo, still listed by account a")
    assert "(status 'BANNED')" in lines[0]
    assert lines[1].startswith("gone-000: managed by pkgrepo, no longer listed by account a")
    assert len(lines) == SHOWN_ORPHANS + 1
    assert lines[-1] == f"... and {len(orphaned) - SHOWN_ORPHANS} more orphaned workspace(s)"
