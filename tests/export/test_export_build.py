"""Building the exported document (pure): credentials cut out of URLs exactly, a YAML file
that loads and validates, waivers for what the live workspace does against policy."""

from __future__ import annotations

import datetime as dt
import re
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from reconciler import config
from reconciler.core import policy
from reconciler.core.model import LiveSecret, LiveState, Permission, SecretValue, frozen_map
from reconciler.edges import export
from tests.pem import make_cert

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
PLACEHOLDER = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(template: str, env: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: env[m.group(1)], template)


def live(secrets: dict[str, str | None], acls: dict[str, str] | None = None) -> LiveState:
    return LiveState(
        scope_exists=True,
        secrets=frozen_map(
            {
                k: LiveSecret(k, 1_700_000_000_000, None if v is None else SecretValue(v))
                for k, v in secrets.items()
            }
        ),
        acls=frozen_map(
            {p: Permission(v) for p, v in (acls or {"admins": "MANAGE", "users": "READ"}).items()}
        ),
    )


def target(name: str) -> export.ExportTarget:
    return export.ExportTarget(
        name, f"https://{name}.cloud.databricks.com", auth={"token": {"env": "DATABRICKS_TOKEN"}}
    )


def load(tmp_path: Path, built: export.Export, **extra_env: str) -> config.LoadResult:
    path = tmp_path / "exported.yaml"
    path.write_text(built.text)
    for relative, content in built.files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(content)
    env = {"DATABRICKS_TOKEN": "dapi-x", **built.env, **extra_env}
    loaded = config.load(path, env=env)
    errors = [
        f
        for f in policy.evaluate(loaded.desired, loaded.provenance, now=NOW)
        if f.severity is policy.Level.ERROR
    ]
    assert errors == []
    return loaded


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("prod-eu", "PROD_EU"),
        ("analytics.staging", "ANALYTICS_STAGING"),
        ("1st", "WS_1ST"),
        ("a__b--c", "A_B_C"),
    ],
)
def test_env_prefix(name: str, prefix: str) -> None:
    assert export.env_prefix(name) == prefix


def test_url_credentials_become_placeholders() -> None:
    names = export._Names()
    url = "https://ci:s3cr%40t-token@idx.example.com/simple?token=abc123&x=&plain"
    template = export.url_template(url, names, "ws", "WS_INDEX", "ws's pip-index-url")
    assert template == (
        "https://${env:WS_INDEX_USER}:${env:WS_INDEX_TOKEN}@idx.example.com/"
        "simple?token=${env:WS_INDEX_QUERY_TOKEN}&x=&${env:WS_INDEX_QUERY}"
    )
    env = {v.name: v.value for v in names.variables.values() if v.value}
    assert env["WS_INDEX_TOKEN"] == "s3cr%40t-token"  # as written in the URL, encoded
    assert expand(template, env) == url
    token_only = export.url_template(
        "https://tok-123@pypi.fury.io/acme/", names, "ws", "WS_EXTRA_INDEX_1", "x"
    )
    assert token_only == "https://${env:WS_EXTRA_INDEX_1_TOKEN}@pypi.fury.io/acme/"
    assert export.url_template("https://pypi.org/simple", names, "ws", "S", "x") == (
        "https://pypi.org/simple"
    )


@pytest.mark.parametrize(
    "url",
    ["https://a b/simple", "ftp://x/simple", "https://x/${env:Y}", "not a url", "https://x/\u200b"],
)
def test_unusable_urls(url: str) -> None:
    assert export.url_template(url, export._Names(), "ws", "S", "x") is None


SAFE = string.ascii_letters + string.digits + "-._~%!$'()*+,;="


@given(
    user=st.text(SAFE, max_size=12).filter(lambda s: "${" not in s),
    password=st.text(SAFE + ":", max_size=12).filter(lambda s: "${" not in s),
    path=st.text(string.ascii_lowercase + "/", max_size=10),
    query=st.lists(
        st.tuples(st.text(string.ascii_lowercase, max_size=5), st.text(SAFE, max_size=8)),
        max_size=3,
    ),
)
def test_any_url_expands_back_exactly(
    user: str, password: str, path: str, query: list[tuple[str, str]]
) -> None:
    userinfo = f"{user}:{password}@" if user or password else ""
    qs = "&".join(f"{k}={v}" for k, v in query)
    url = f"https://{userinfo}h.example.com/{path}" + (f"?{qs}" if query else "")
    names = export._Names()
    template = export.url_template(url, names, "ws", "WS", "x")
    assert template is not None
    env = {v.name: v.value for v in names.variables.values() if v.value is not None}
    assert expand(template, env) == url
    userinfo_written = template.split("://", 1)[1].split("@", 1)[0] if userinfo else ""
    assert PLACEHOLDER.sub("", userinfo_written).strip(":") == ""  # nothing literal is left
    for key, value in query:
        if value:
            assert f"{key}={value}&" not in template + "&"


def test_a_whole_workspace_loads_and_validates(tmp_path: Path) -> None:
    cert = make_cert("Export Root")
    secrets: dict[str, str | None] = {
        "pip-index-url": "https://ci:planted-Token-1@idx.example.com/simple",
        "pip-extra-index-urls": "https://download.pytorch.org/whl/cpu  "
        "https://ci:planted-Token-1@idx.example.com/extra",
        "pip-cert": cert,
    }
    acls = {
        "admins": "MANAGE",
        "users": "READ",
        "data-eng": "WRITE",
        "yes": "READ",
        "1.0": "READ",
        "@odd: name #x": "READ",
        "alice@example.com": "MANAGE",
    }
    built = export.build([(target("prod-eu"), live(secrets, acls))], now=NOW)
    assert "planted-Token-1" not in built.text
    assert [v.name for v in built.variables] == ["PROD_EU_INDEX_USER", "PROD_EU_INDEX_TOKEN"]
    assert built.files == {"certs/prod-eu-pip-cert.pem": cert}
    loaded = load(tmp_path, built)
    (ws,) = loaded.desired.workspaces
    assert {k: v.plaintext for k, v in ws.secrets.items()} == {
        "pip-index-url": secrets["pip-index-url"],
        "pip-extra-index-urls": "https://download.pytorch.org/whl/cpu "
        "https://ci:planted-Token-1@idx.example.com/extra",
        "pip-cert": cert,
    }
    assert {p: v.value for p, v in ws.acls.items()} == acls
    assert ws.waivers == {}
    assert "# Environment variables this file needs:" in built.text
    assert "#   PROD_EU_INDEX_TOKEN  password or token in prod-eu's pip-index-url" in built.text


def test_unreadable_values_become_env_with_a_comment(tmp_path: Path) -> None:
    secrets: dict[str, str | None] = {
        "pip-index-url": None,
        "pip-extra-index-urls": None,
        "pip-cert": None,
    }
    built = export.build([(target("dev"), live(secrets))], now=NOW)
    data = yaml.safe_load(built.text)
    assert data["workspaces"]["dev"]["repositories"] == {
        "index_url": {"env": "DEV_PIP_INDEX_URL"},
        "cert": {"env": "DEV_PIP_CERT"},
    }
    # several URLs in one stored string fit no variable validate accepts: left alone
    assert data["workspaces"]["dev"]["ignore"] == ["pip-extra-index-urls"]
    assert "list its URLs under repositories.extra_index_urls" in built.text
    assert (
        "# pip-index-url could not be read: `secrets/get` answers only inside a Databricks "
        "notebook or job. Set DEV_PIP_INDEX_URL to its value" in built.text
    )
    assert [v.name for v in built.variables] == ["DEV_PIP_INDEX_URL", "DEV_PIP_CERT"]
    assert built.env == {}
    assert any("DEV_PIP_INDEX_URL" in note for note in built.notes)
    load(
        tmp_path,
        built,
        DEV_PIP_INDEX_URL="https://pypi.example.com/simple",
        DEV_PIP_CERT=make_cert(),
    )


def test_policy_breaches_are_reproduced_with_waivers(tmp_path: Path) -> None:
    secrets: dict[str, str | None] = {"pip-index-url": "http://mirror.internal/simple"}
    built = export.build([(target("lab"), live(secrets, {"users": "WRITE"}))], now=NOW)
    waivers = yaml.safe_load(built.text)["workspaces"]["lab"]["waivers"]
    assert [w["check"] for w in waivers] == ["https-only", "users-read-only", "admin-manage"]
    assert all("exported as found" in w["reason"] for w in waivers)
    assert any("breaking policy" in note for note in built.notes)
    load(tmp_path, built)


def test_odd_live_states(tmp_path: Path) -> None:
    gone = LiveState(scope_exists=False)
    weird = live(
        {"pip-extra-index-urls": "   ", "pip-index-url": "https://x/a b", "other-key": "v"},
        {"admins": "MANAGE", "bad\x1bname": "READ"},
    )
    built = export.build([(target("gone"), gone), (target("weird"), weird)], now=NOW)
    data = yaml.safe_load(built.text)["workspaces"]
    assert data["gone"]["ensure"] == "absent"
    assert data["weird"]["ignore"] == ["pip-extra-index-urls"]
    assert data["weird"]["repositories"] == {"index_url": {"env": "WEIRD_PIP_INDEX_URL"}}
    assert data["weird"]["acls_mode"] == "additive"
    assert data["weird"]["acls"] == {"admins": "MANAGE"}
    assert "\x1b" not in built.text
    assert "other-key" in built.text and any("other-key" in n for n in built.notes)
    load(tmp_path, built, WEIRD_PIP_INDEX_URL="https://x.example.com/simple")


def test_variable_names_never_collide() -> None:
    url = "https://u:p-1111@h.example.com/simple"
    other = "https://u:p-2222@h.example.com/simple"
    built = export.build(
        [
            (target("prod-eu"), live({"pip-index-url": url})),
            (target("prod.eu"), live({"pip-index-url": other})),
        ],
        now=NOW,
    )
    assert built.env == {
        "PROD_EU_INDEX_USER": "u",
        "PROD_EU_INDEX_TOKEN": "p-1111",
        "PROD_EU_INDEX_USER_2": "u",
        "PROD_EU_INDEX_TOKEN_2": "p-2222",
    }


def test_a_workspace_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        export.build([(target("a"), live({})), (target("a"), live({}))], now=NOW)


@pytest.mark.parametrize(
    "text",
    [
        "yes",
        "No",
        "null",
        "~",
        "1.0",
        "0x1F",
        "1e3",
        "-",
        "#",
        "a: b",
        "@x",
        "x #y",
        "'q'",
        '"',
        "tab\there",
        "é",
        "",
    ],
)
def test_scalars_read_back_as_themselves(text: str) -> None:
    assert yaml.safe_load(f"k: {export.scalar(text)}") == {"k": text}
