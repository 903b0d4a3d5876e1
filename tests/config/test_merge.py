"""Defaults under workspaces: the workspace wins; maps of entries merge, values replace."""

from __future__ import annotations

from reconciler.config import merge_defaults
from reconciler.core.model import (
    CERT,
    EXTRA_INDEX_URLS,
    INDEX_URL,
    AclsMode,
    Ensure,
    Permission,
    Thresholds,
)
from reconciler.core.policy import Source
from tests.config.loading import WriteFile, load, problems

FLEET = """
version: 1
safety: {max_update_share: 0.5, max_delete_workspaces: 2}
defaults:
  auth: {profile: shared}
  labels: {owner: platform, env: unknown}
  wave: 1
  repositories:
    index_url: https://pypi.example.com/simple
    extra_index_urls: [https://a.example.com/simple, https://b.example.com/simple]
    cert: "-----BEGIN CERTIFICATE-----"
  acls: {admins: MANAGE, users: READ}
  waivers: [{check: https-only, reason: everywhere}]
workspaces:
  plain:
    host: https://plain.example.com
  custom:
    host: https://custom.example.com
    auth: {token: {env: TOKEN}}
    labels: {env: prod, owner: null}
    wave: 0
    repositories:
      index_url: https://custom.example.com/simple
      extra_index_urls: [https://c.example.com/simple]
      cert: null
    acls: {users: null, data-eng: WRITE}
    acls_mode: additive
    ignore: [pip-cert]
    waivers: []
  no-extras:
    host: https://none.example.com
    repositories: {extra_index_urls: []}
"""


def test_merge_defaults_function() -> None:
    defaults = {
        "auth": {"profile": "x"},
        "wave": 1,
        "repositories": {"index_url": "a", "cert": {"file": "c"}},
        "acls": {"admins": "MANAGE"},
        "ignore": ["pip-cert"],
    }
    workspace = {
        "host": "h",
        "auth": {"token": {"env": "T"}},
        "repositories": {"cert": {"env": "C"}},
        "acls": {"users": "READ"},
        "ignore": [],
    }
    assert merge_defaults(defaults, workspace) == {
        "host": "h",
        "auth": {"token": {"env": "T"}},  # replaced, not merged into {profile, token}
        "wave": 1,
        "repositories": {"index_url": "a", "cert": {"env": "C"}},  # value source replaced
        "acls": {"admins": "MANAGE", "users": "READ"},
        "ignore": [],  # lists replace
    }
    assert defaults["repositories"] == {"index_url": "a", "cert": {"file": "c"}}  # untouched


def test_a_workspace_with_nothing_of_its_own_gets_the_defaults(write: WriteFile) -> None:
    loaded = load(write(FLEET), {"TOKEN": "t"})
    plain = loaded.desired.workspace("plain")
    assert plain.auth.kind == "profile" and plain.auth.profile == "shared"
    assert dict(plain.labels) == {"owner": "platform", "env": "unknown"}
    assert plain.wave == 1
    assert {k: v.plaintext for k, v in plain.secrets.items()} == {
        INDEX_URL: "https://pypi.example.com/simple",
        EXTRA_INDEX_URLS: "https://a.example.com/simple https://b.example.com/simple",
        CERT: "-----BEGIN CERTIFICATE-----",
    }
    assert dict(plain.acls) == {"admins": Permission.MANAGE, "users": Permission.READ}
    assert plain.acls_mode is AclsMode.EXACT and plain.ensure is Ensure.PRESENT
    assert dict(plain.waivers) == {"https-only": "everywhere"}
    assert loaded.desired.thresholds == Thresholds(0.5, 2)


def test_the_workspace_wins(write: WriteFile) -> None:
    custom = load(write(FLEET), {"TOKEN": "t"}).desired.workspace("custom")
    assert custom.auth.kind == "token"
    assert dict(custom.labels) == {"env": "prod"}  # null removed the inherited owner
    assert custom.wave == 0
    assert {k: v.plaintext for k, v in custom.secrets.items()} == {
        INDEX_URL: "https://custom.example.com/simple",
        EXTRA_INDEX_URLS: "https://c.example.com/simple",  # the list replaced the default
    }
    assert dict(custom.acls) == {"admins": Permission.MANAGE, "data-eng": Permission.WRITE}
    assert custom.acls_mode is AclsMode.ADDITIVE
    assert custom.ignore == frozenset({CERT})
    assert dict(custom.waivers) == {}


def test_an_empty_extra_list_means_the_key_must_not_exist(write: WriteFile) -> None:
    spec = load(write(FLEET), {"TOKEN": "t"}).desired.workspace("no-extras")
    assert EXTRA_INDEX_URLS not in spec.secrets
    assert INDEX_URL in spec.secrets


def test_provenance_points_at_where_a_value_is_written(write: WriteFile) -> None:
    facts = load(write(FLEET), {"TOKEN": "t"}).provenance
    inherited = facts.fact("plain", "repositories.index_url")
    assert inherited is not None
    assert (inherited.path, inherited.line, inherited.column) == (
        "defaults.repositories.index_url",
        8,
        16,
    )
    own = facts.fact("custom", "repositories.index_url")
    assert own is not None and own.path == "workspaces.custom.repositories.index_url"
    token = facts.fact("custom", "auth.token")
    assert token is not None and token.source is Source.ENV
    entry = facts.fact("custom", "")
    assert entry is not None and (entry.path, entry.line, entry.column) == (
        "workspaces.custom",
        16,
        3,
    )
    extra = facts.fact("plain", "repositories.extra_index_urls[1]")
    assert extra is not None and extra.path == "defaults.repositories.extra_index_urls[1]"


def test_ignore_conflicts(write: WriteFile) -> None:
    path = write(
        """
        version: 1
        defaults:
          repositories: {cert: "-----BEGIN CERTIFICATE-----"}
        workspaces:
          inherits:
            host: https://a.example.com
            ignore: [pip-cert]
          declares:
            host: https://b.example.com
            repositories: {index_url: https://x.example.com/simple}
            ignore: [pip-index-url]
        """
    )
    assert problems(path) == [
        "pkgrepo.yaml:10:31: workspaces.declares.repositories.index_url: pip-index-url is set "
        "here and also listed under `ignore`; remove one",
    ]
    both_in_defaults = write(
        "version: 1\ndefaults:\n  repositories: {cert: x}\n  ignore: [pip-cert]\n"
        "workspaces:\n  a: {host: https://a.example.com}\n"
    )
    assert problems(both_in_defaults) == [
        "pkgrepo.yaml:3:24: defaults.repositories.cert: pip-cert is set here and also listed "
        "under `ignore`; remove one",
    ]


def test_an_ignored_inherited_value_is_dropped(write: WriteFile) -> None:
    path = write(
        "version: 1\ndefaults:\n  repositories: {cert: x, index_url: https://p.example.com}\n"
        "workspaces:\n  a: {host: https://a.example.com, ignore: [pip-cert]}\n"
    )
    spec = load(path).desired.workspace("a")
    assert CERT not in spec.secrets and INDEX_URL in spec.secrets
    assert spec.ignore == frozenset({CERT})


def test_a_check_waived_twice(write: WriteFile) -> None:
    path = write(
        "version: 1\nworkspaces:\n  a:\n    host: https://a.example.com\n    waivers:\n"
        "      - {check: https-only, reason: one}\n      - {check: https-only, reason: two}\n"
    )
    assert problems(path) == [
        "pkgrepo.yaml:7:9: workspaces.a.waivers[1]: check 'https-only' is waived twice"
    ]


def test_default_thresholds(write: WriteFile) -> None:
    path = write("version: 1\nworkspaces: {}\n")
    assert load(path).desired.thresholds == Thresholds()
    assert load(path).desired.workspaces == ()


def test_each_auth_block_is_kept_as_written_for_export(write: WriteFile) -> None:
    """`export --from` copies auth as the file writes it (defaults merged), references and
    all, from the one loader; the value a reference resolves to is never in it."""
    loaded = load(write(FLEET), {"TOKEN": "planted-resolved-token"})
    assert loaded.auth_as_written["plain"] == {"profile": "shared"}  # from defaults
    assert loaded.auth_as_written["custom"] == {"token": {"env": "TOKEN"}}  # its own, replaced
    assert set(loaded.auth_as_written) == {"plain", "custom", "no-extras"}
    assert "planted-resolved-token" not in repr(loaded.auth_as_written)
    assert "auth_as_written" not in repr(loaded)
