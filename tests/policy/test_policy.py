"""Each policy check, passing and failing; waivers; where findings are located."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler import config
from reconciler.core import policy
from reconciler.core.model import (
    CERT,
    EXTRA_INDEX_URLS,
    INDEX_URL,
    MAX_VALUE_BYTES,
    AclsMode,
    DesiredState,
    Ensure,
    Permission,
    SecretValue,
    WorkspaceSpec,
    frozen_map,
)
from reconciler.core.policy import Finding, Level
from tests.pem import make_pem, private_key_pem

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)
GOOD_ACLS = {"admins": Permission.MANAGE, "users": Permission.READ}


def spec(name: str = "dev", **fields: Any) -> WorkspaceSpec:
    secrets = fields.pop("secrets", {INDEX_URL: "https://pypi.example.com/simple"})
    return WorkspaceSpec(
        name=name,
        host=fields.pop("host", f"https://{name}.example.com"),
        secrets=frozen_map({k: SecretValue(v) for k, v in secrets.items()}),
        acls=frozen_map(fields.pop("acls", GOOD_ACLS)),
        waivers=frozen_map(fields.pop("waivers", {})),
        **fields,
    )


def check(*specs: WorkspaceSpec, provenance: policy.Provenance | None = None) -> list[str]:
    state = DesiredState(source="pkgrepo.yaml", workspaces=specs)
    return [
        f"{f.severity.value} [{f.check}] {f.workspace} {f.path}: {f.message}"
        for f in policy.evaluate(state, provenance, now=NOW)
    ]


def ids(*specs: WorkspaceSpec) -> list[str]:
    state = DesiredState(source="pkgrepo.yaml", workspaces=specs)
    return [f.check for f in policy.evaluate(state, now=NOW)]


def test_a_good_workspace_has_no_findings() -> None:
    assert check(spec()) == []


def test_https_only() -> None:
    bad = spec(
        secrets={
            INDEX_URL: "http://u:p@pypi.example.com/simple",
            EXTRA_INDEX_URLS: "https://a.example.com ftp://b.example.com/x",
        }
    )
    assert check(bad) == [
        "error [https-only] dev workspaces.dev.repositories.index_url: http://****@pypi."
        "example.com/simple does not use https, so packages (and any credentials) travel in "
        "clear text; use https, or waive with `waivers: [{check: https-only, reason: ...}]`",
        "error [https-only] dev workspaces.dev.repositories.extra_index_urls[1]: ftp://b."
        "example.com/x does not use https, so packages (and any credentials) travel in clear "
        "text; use https, or waive with `waivers: [{check: https-only, reason: ...}]`",
    ]
    assert check(spec(secrets={INDEX_URL: "HTTPS://pypi.example.com/simple"})) == []


def test_waivers_silence_a_check_for_one_workspace() -> None:
    http = {INDEX_URL: "http://pypi.example.com/simple"}
    waived = spec("waived", secrets=http, waivers={"https-only": "local emulator"})
    assert ids(waived, spec("plain", secrets=http)) == ["https-only"]


def test_a_waiver_for_an_unknown_check_is_an_error() -> None:
    assert check(spec(waivers={"https-everywhere": "typo"})) == [
        "error [waiver-unknown] dev workspaces.dev.waivers.https-everywhere: waiver for "
        "unknown check 'https-everywhere'; known checks: admin-manage, cert-expired, "
        "cert-expiring, cert-valid, cert-validates-index, extra-urls-unique, "
        "extra-urls-whitespace, hosts-distinct, https-only, no-literal-credentials, "
        "public-pypi-extra, users-read-only, value-size"
    ]


def test_users_read_only() -> None:
    assert ids(spec(acls={**GOOD_ACLS, "users": Permission.WRITE})) == ["users-read-only"]
    assert ids(spec(acls={**GOOD_ACLS, "users": Permission.MANAGE})) == ["users-read-only"]
    # Issue 13 item 12: another spelling of the same group is held to the same rule.
    assert ids(spec(acls={**GOOD_ACLS, "Users": Permission.WRITE})) == ["users-read-only"]
    assert ids(spec(acls={"admins": Permission.MANAGE})) == []
    assert ids(spec(acls={**GOOD_ACLS, "data-eng": Permission.MANAGE})) == []


def test_admin_manage() -> None:
    assert ids(spec(acls={"users": Permission.READ})) == ["admin-manage"]
    assert ids(spec(acls={"admins": Permission.WRITE})) == ["admin-manage"]
    assert ids(spec(acls={})) == ["admin-manage"]
    assert ids(spec(acls={}, acls_mode=AclsMode.ADDITIVE)) == []


def test_cert_checks() -> None:
    fresh = make_pem("Fresh CA", NOW + dt.timedelta(days=400))
    soon = make_pem("Soon CA", NOW + dt.timedelta(days=20, hours=1))
    old = make_pem("Old CA", NOW - dt.timedelta(days=2))
    assert check(spec(secrets={CERT: fresh})) == []
    assert check(spec(secrets={CERT: fresh + soon + old})) == [
        "warning [cert-expiring] dev workspaces.dev.repositories.cert: certificate 2 "
        "(CN=Soon CA) expires on 2030-06-21, in 20 days; add the renewed certificate to the "
        "bundle",
        "error [cert-expired] dev workspaces.dev.repositories.cert: certificate 3 (CN=Old CA) "
        "expired on 2030-05-30; pip would refuse the index. Replace it with the current CA "
        "certificate",
    ]
    assert check(spec(secrets={CERT: fresh.replace("\n", "\r\n")})) == []


def test_expiry_boundary_is_thirty_days() -> None:
    at_30 = make_pem("Edge", NOW + dt.timedelta(days=30))
    after_30 = make_pem("Later", NOW + dt.timedelta(days=30, seconds=1))
    assert ids(spec(secrets={CERT: at_30})) == ["cert-expiring"]
    assert ids(spec(secrets={CERT: after_30})) == []
    assert ids(spec(secrets={CERT: make_pem("Now", NOW)})) == ["cert-expired"]


def test_cert_valid() -> None:
    assert check(spec(secrets={CERT: "not a certificate"})) == [
        "error [cert-valid] dev workspaces.dev.repositories.cert: pip-cert is not a PEM "
        "certificate bundle: no PEM certificate found (expected -----BEGIN CERTIFICATE-----); "
        "give the CA certificate(s) in PEM form"
    ]
    broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert ids(spec(secrets={CERT: broken})) == ["cert-valid"]
    with_key = make_pem("CA", NOW + dt.timedelta(days=400)) + private_key_pem()
    assert check(spec(secrets={CERT: with_key})) == [
        "error [cert-valid] dev workspaces.dev.repositories.cert: pip-cert holds a private "
        "key, which every reader of the scope could read; keep only the CA certificate(s)"
    ]


def test_extra_urls_unique() -> None:
    extra = "https://a.example.com/simple https://b.example.com https://a.example.com/simple/"
    assert check(spec(secrets={EXTRA_INDEX_URLS: extra})) == [
        "error [extra-urls-unique] dev workspaces.dev.repositories.extra_index_urls[2]: "
        "https://a.example.com/simple/ repeats extra_index_urls[0]; remove the duplicate"
    ]


@pytest.mark.parametrize(
    "extra",
    [
        "https://a.example.com  https://b.example.com",
        "https://a.example.com\nhttps://b.example.com",
        " https://a.example.com",
        "https://a.example.com\thttps://b.example.com",
        "https://a.example.com\x00",
    ],
)
def test_extra_urls_whitespace(extra: str) -> None:
    assert ids(spec(secrets={EXTRA_INDEX_URLS: extra})) == ["extra-urls-whitespace"]


def test_index_url_whitespace() -> None:
    assert ids(spec(secrets={INDEX_URL: "https://a.example.com/simple\n"})) == [
        "extra-urls-whitespace"
    ]


def test_value_size() -> None:
    big = "https://a.example.com/" + "x" * MAX_VALUE_BYTES
    assert check(spec(secrets={INDEX_URL: big})) == [
        f"error [value-size] dev workspaces.dev.repositories.index_url: pip-index-url is "
        f"{len(big):,} bytes; the service stores at most 131,072 bytes per secret"
    ]
    exact = "https://a.example.com/" + "x" * (MAX_VALUE_BYTES - 22)
    assert ids(spec(secrets={INDEX_URL: exact})) == []


def test_hosts_distinct() -> None:
    a = spec("a", host="https://ADB-1.example.com/")
    b = spec("b", host="https://adb-1.example.com")
    c = spec("c", host="https://adb-1.example.com", ensure=Ensure.ABSENT)
    assert check(a, b, c) == [
        "error [hosts-distinct] b workspaces.b.host: workspace 'a' has the same host; two "
        "entries would fight over one scope. Remove one of them",
        "error [hosts-distinct] c workspaces.c.host: workspace 'a' has the same host; two "
        "entries would fight over one scope. Remove one of them",
    ]
    waived = spec("b", host="https://adb-1.example.com", waivers={"hosts-distinct": "alias"})
    assert ids(a, waived) == []


def test_absent_workspaces_only_need_a_distinct_host() -> None:
    gone = spec("gone", ensure=Ensure.ABSENT, acls={}, secrets={INDEX_URL: "http://x"})
    assert ids(gone) == []


def test_finding_format_and_order() -> None:
    finding = Finding("https-only", Level.ERROR, "dev", "workspaces.dev", "msg", 3, 7)
    assert finding.format("f.yaml") == "f.yaml:3:7: error [https-only] dev: msg"
    unplaced = Finding("https-only", Level.WARNING, "dev", "workspaces.dev", "msg")
    assert unplaced.format("f.yaml") == "f.yaml: warning [https-only] dev: msg"
    assert sorted([unplaced, finding], key=lambda f: f.sort_key) == [finding, unplaced]


def test_every_check_has_an_id_severity_and_summary() -> None:
    assert len(policy.CHECK_IDS) == len(policy.CHECKS) == 13
    severities = {c.id: c.severity for c in policy.CHECKS}
    assert severities["cert-expiring"] is Level.WARNING
    warnings = [c for c in severities if severities[c] is Level.WARNING]
    assert warnings == ["cert-expiring", "public-pypi-extra"]


# -- checks that need to know how the file was written (through the loader) --


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "pkgrepo.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    loaded = config.load(path, env or {})
    return [
        f.format("pkgrepo.yaml")
        for f in policy.evaluate(loaded.desired, loaded.provenance, now=NOW)
    ]


def test_no_literal_credentials(tmp_path: Path) -> None:
    found = load(
        tmp_path,
        """
        version: 1
        defaults:
          acls: {admins: MANAGE, users: READ}
        workspaces:
          literal:
            host: https://a.example.com
            auth: {token: dapi-typed-in}
            repositories:
              index_url: https://bot:typed-in@pypi.example.com/simple
              extra_index_urls:
                - https://typed-token@a.example.com/simple
                - https://b.example.com/simple?token=typed
                - "https://bot:pre-${env:PASS}@c.example.com/simple"
          fine:
            host: https://b.example.com
            repositories:
              index_url: "https://deploy:${env:PASS}@pypi.example.com/simple"
              extra_index_urls:
                - {env: WHOLE}
                - "https://${env:PASS}@a.example.com/simple"
                - "https://b.example.com/simple?token=${env:PASS}&page=2"
                - https://c.example.com/simple?page=2
        """,
        {"PASS": "p", "WHOLE": "https://u:p@w.example.com/simple"},
    )
    assert found == [
        "pkgrepo.yaml:7:19: error [no-literal-credentials] literal: auth.token is written in "
        "the file; use `{env: NAME}` or `{file: PATH}`",
        *[
            f"pkgrepo.yaml:{where}: error [no-literal-credentials] literal: {url} has "
            "credentials written in the file; take them from the environment instead, e.g. "
            "`https://${env:INDEX_USER}:${env:INDEX_TOKEN}@host/simple` or `{env: NAME}`"
            for where, url in [
                ("9:18", "https://****@pypi.example.com/simple"),
                ("11:11", "https://****@a.example.com/simple"),
                ("12:11", "https://b.example.com/simple?****"),
                ("13:11", "https://****@c.example.com/simple"),
            ]
        ],
    ]


def test_inherited_findings_point_at_the_defaults(tmp_path: Path) -> None:
    found = load(
        tmp_path,
        """
        version: 1
        defaults:
          repositories: {index_url: http://pypi.example.com/simple}
          acls: {admins: MANAGE, users: WRITE}
        workspaces:
          a: {host: https://a.example.com}
          b:
            host: https://b.example.com
            waivers: [{check: https-only, reason: lab network}]
        """,
    )
    assert [line.split(" [")[0] + " [" + line.split(" [")[1].split("]")[0] for line in found] == [
        "pkgrepo.yaml:3:29: error [https-only",
        "pkgrepo.yaml:4:33: error [users-read-only",
        "pkgrepo.yaml:4:33: error [users-read-only",
    ]
    assert [line.split("] ")[1].split(":")[0] for line in found] == ["a", "a", "b"]


def test_admin_manage_points_at_the_acls(tmp_path: Path) -> None:
    found = load(
        tmp_path,
        """
        version: 1
        workspaces:
          none: {host: https://a.example.com}
          some:
            host: https://b.example.com
            acls: {users: READ}
        """,
    )
    assert [line.split(": error")[0] for line in found] == [
        "pkgrepo.yaml:3:3",  # no acls at all: at the workspace entry
        "pkgrepo.yaml:6:11",  # at the acls map
    ]


def test_public_pypi_next_to_a_private_index_is_a_dependency_confusion_warning() -> None:
    risky = spec(
        secrets={
            INDEX_URL: "https://u:tok-1234@artifactory.example.com/simple",
            EXTRA_INDEX_URLS: "https://download.pytorch.org/whl/cpu https://PyPI.org/simple",
        }
    )
    assert check(risky) == [
        "warning [public-pypi-extra] dev workspaces.dev.repositories.extra_index_urls[1]: "
        "https://pypi.org/simple is public PyPI next to the private index "
        "https://****@artifactory.example.com/simple: pip merges all indexes and installs the "
        "highest version, so anyone can publish a higher version of a private package name "
        "there (dependency confusion). Proxy PyPI through the private index instead, or waive "
        "with a reason"
    ]
    assert ids(spec(secrets={EXTRA_INDEX_URLS: "https://pypi.org/simple"})) == []
    public = {INDEX_URL: "https://pypi.org/simple", EXTRA_INDEX_URLS: "https://pypi.org/simple/"}
    assert ids(spec(secrets=public)) == []
    waived = spec(
        secrets={
            INDEX_URL: "https://artifactory.example.com/simple",
            EXTRA_INDEX_URLS: "https://pypi.org/simple",
        },
        waivers={"public-pypi-extra": "only public packages are installed here"},
    )
    assert ids(waived) == []
