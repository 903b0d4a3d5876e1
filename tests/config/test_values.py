"""Value sources: literals, placeholders, env and files, resolved in memory and never shown."""

from __future__ import annotations

import base64
import os
import urllib.parse
from pathlib import Path

import pytest

from reconciler import config
from reconciler.core.model import CERT, EXTRA_INDEX_URLS, INDEX_URL
from reconciler.core.policy import Source
from tests.config.loading import WriteFile, load, problems

HEAD = "version: 1\nworkspaces:\n  dev:\n    host: https://dev.example.com\n"


def repositories(write: WriteFile, body: str) -> Path:
    return write(HEAD + "    repositories:\n" + body)


def test_literal_value(write: WriteFile) -> None:
    loaded = load(repositories(write, "      index_url: https://pypi.example.com/simple\n"))
    spec = loaded.desired.workspace("dev")
    assert spec.secrets[INDEX_URL].plaintext == "https://pypi.example.com/simple"
    assert loaded.secrets == frozenset()  # nothing secret about a URL without credentials
    fact = loaded.provenance.fact("dev", "repositories.index_url")
    assert fact is not None
    assert (fact.source, fact.line, fact.column) == (Source.LITERAL, 6, 18)


def test_env_value(write: WriteFile) -> None:
    url = "https://bot:s3cret@pypi.example.com/simple"
    loaded = load(repositories(write, "      index_url: {env: PIP_INDEX}\n"), {"PIP_INDEX": url})
    assert loaded.desired.workspace("dev").secrets[INDEX_URL].plaintext == url
    assert url in loaded.secrets
    fact = loaded.provenance.fact("dev", "repositories.index_url")
    assert fact is not None and fact.source is Source.ENV


def test_placeholders(write: WriteFile) -> None:
    path = repositories(
        write, '      index_url: "https://${env:U}:${env:T}@pypi.example.com/${env:U}/simple"\n'
    )
    loaded = load(path, {"U": "deploy", "T": "tok-123"})
    value = loaded.desired.workspace("dev").secrets[INDEX_URL].plaintext
    assert value == "https://deploy:tok-123@pypi.example.com/deploy/simple"
    assert {"deploy", "tok-123", value} <= loaded.secrets
    fact = loaded.provenance.fact("dev", "repositories.index_url")
    assert fact is not None and fact.source is Source.PLACEHOLDER
    assert fact.template == "https://${env:U}:${env:T}@pypi.example.com/${env:U}/simple"


def test_file_values_are_relative_to_the_yaml_file(write: WriteFile, tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "index-url").write_text("https://a:b@pypi.example.com/simple\n")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    (tmp_path / "token").write_text("dapi-file-token\r\n")
    path = write(
        HEAD + "    auth: {token: {file: token}}\n"
        "    repositories:\n"
        "      index_url: {file: secrets/index-url}\n"
        "      cert: {file: ca.pem}\n"
    )
    loaded = load(path)
    spec = loaded.desired.workspace("dev")
    assert spec.secrets[INDEX_URL].plaintext == "https://a:b@pypi.example.com/simple"
    assert spec.secrets[CERT].plaintext == "-----BEGIN CERTIFICATE-----\nAAAA\n"  # kept as is
    assert spec.auth.token is not None and spec.auth.token.plaintext == "dapi-file-token"
    assert "dapi-file-token" in loaded.secrets


def test_extra_index_urls_are_joined_by_one_space(write: WriteFile) -> None:
    path = repositories(
        write,
        "      extra_index_urls:\n"
        "        - https://a.example.com/simple\n"
        "        - {env: B}\n"
        '        - "https://${env:C}@c.example.com/simple"\n',
    )
    loaded = load(path, {"B": "https://b.example.com/simple", "C": "tok"})
    assert loaded.desired.workspace("dev").secrets[EXTRA_INDEX_URLS].plaintext == (
        "https://a.example.com/simple https://b.example.com/simple https://tok@c.example.com/simple"
    )


def test_auth_kinds(write: WriteFile) -> None:
    path = write(
        """
        version: 1
        workspaces:
          a: {host: https://a.example.com}
          b: {host: https://b.example.com, auth: {profile: prod}}
          c: {host: https://c.example.com, auth: {token: {env: TOKEN}}}
          d:
            host: https://d.example.com
            auth: {client_id: 6f1b2c3d, client_secret: {env: SECRET}}
          e: {host: https://e.example.com, auth: {token: literal-token}}
        """
    )
    loaded = load(path, {"TOKEN": "dapi-env", "SECRET": "oauth-secret"})
    state = loaded.desired
    assert state.workspace("a").auth.kind == "default"
    profile = state.workspace("b").auth
    assert (profile.kind, profile.profile) == ("profile", "prod")
    token = state.workspace("c").auth.token
    assert state.workspace("c").auth.kind == "token" and token and token.plaintext == "dapi-env"
    oauth = state.workspace("d").auth
    assert (oauth.kind, oauth.client_id) == ("oauth", "6f1b2c3d")
    assert oauth.client_secret is not None and oauth.client_secret.plaintext == "oauth-secret"
    # tokens and client secrets are secret even when written literally
    assert {"dapi-env", "oauth-secret", "literal-token"} <= loaded.secrets
    assert "6f1b2c3d" not in loaded.secrets


def test_missing_env_var_names_workspace_and_field(write: WriteFile) -> None:
    path = write(
        HEAD + "    auth: {token: {env: DEV_TOKEN}}\n"
        "    repositories:\n"
        '      index_url: "https://${env:USER_A}:${env:TOKEN_A}@x.example.com/simple"\n'
    )
    assert problems(path, {"USER_A": "u"}) == [
        "pkgrepo.yaml:5:19: workspaces.dev.auth.token: environment variable DEV_TOKEN is not set",
        "pkgrepo.yaml:7:18: workspaces.dev.repositories.index_url: environment variable "
        "TOKEN_A is not set",
    ]


def test_empty_env_var_and_malformed_placeholder(write: WriteFile) -> None:
    path = repositories(
        write,
        "      index_url: {env: EMPTY}\n"
        '      extra_index_urls: ["https://${ENV:X}@x.example.com", "https://${env:X"]\n',
    )
    assert problems(path, {"EMPTY": ""}) == [
        "pkgrepo.yaml:6:18: workspaces.dev.repositories.index_url: environment variable "
        "EMPTY is empty",
        "pkgrepo.yaml:7:26: workspaces.dev.repositories.extra_index_urls[0]: malformed "
        "placeholder; write ${env:NAME} (letters, digits and _)",
        "pkgrepo.yaml:7:60: workspaces.dev.repositories.extra_index_urls[1]: malformed "
        "placeholder; write ${env:NAME} (letters, digits and _)",
    ]


def test_unreadable_files(write: WriteFile, tmp_path: Path) -> None:
    (tmp_path / "latin1.pem").write_bytes(b"caf\xe9")
    (tmp_path / "huge.pem").write_bytes(b"A" * (1024 * 1024 + 1))
    os.mkfifo(tmp_path / "fifo.pem")
    path = write(
        HEAD + "    repositories:\n      cert: {file: nope.pem}\n"
        "  b:\n    host: https://b.example.com\n    repositories: {cert: {file: latin1.pem}}\n"
        "  c:\n    host: https://c.example.com\n    repositories: {cert: {file: huge.pem}}\n"
        "  d:\n    host: https://d.example.com\n    repositories: {cert: {file: fifo.pem}}\n"
        "  e:\n    host: https://e.example.com\n    repositories: {cert: {file: /}}\n"
    )
    assert problems(path) == [
        f"pkgrepo.yaml:6:13: workspaces.dev.repositories.cert: cannot read file nope.pem "
        f"(looked in {tmp_path}): No such file or directory",
        "pkgrepo.yaml:9:26: workspaces.b.repositories.cert: file latin1.pem does not hold a "
        "valid PEM text (its content is not shown)",
        "pkgrepo.yaml:12:26: workspaces.c.repositories.cert: file huge.pem is 1,048,577 bytes; "
        "a secret value holds at most 128 KB",
        "pkgrepo.yaml:15:26: workspaces.d.repositories.cert: file fifo.pem is not a regular file",
        f"pkgrepo.yaml:18:26: workspaces.e.repositories.cert: file / is outside {tmp_path}, "
        "the desired-state file's folder (links followed); pkgrepo reads files only from "
        "there, or from the folders listed in PKGREPO_FILE_ROOTS (separated by ':')",
    ]


@pytest.mark.parametrize(
    ("value", "message", "shown"),
    [
        # A whole line of a secret value is scrubbed, so the URL before a break shows as ****;
        # so is each blank-separated piece of one (a token in a path must not show in part).
        ("https://pypi.example.com/simple\n", "a line break (U+000A) at character 32", "****"),
        ("https://pypi.example.com/\u2028simple", "a line break (U+2028) at character 26", "****"),
        (
            "https://pypi.example.com/simple https://b",
            "white space (U+0020) at character 32",
            "****",
        ),
        (
            "https://pypi.example.com/sim\tple",
            "white space (U+0009) at character 29",
            "****",
        ),
        (
            "https://pypi.example.com/\x1bsimple",
            "a control character (U+001B) at character 26",
            "https://pypi.example.com/",
        ),
        (
            "https://pypi.example.com/\u200dsimple",
            "a control character (U+200D) at character 26",
            "https://pypi.example.com/",
        ),
    ],
)
def test_bad_characters_in_urls_from_env(
    write: WriteFile, value: str, message: str, shown: str
) -> None:
    path = repositories(write, "      extra_index_urls: [{env: EXTRA}]\n")
    assert problems(path, {"EXTRA": value}) == [
        "pkgrepo.yaml:6:26: workspaces.dev.repositories.extra_index_urls[0]: environment "
        f"variable EXTRA contains {message}; a URL may hold no white space or control "
        f"characters: {shown}"
    ]


def test_bad_characters_in_urls_from_files_and_placeholders(
    write: WriteFile, tmp_path: Path
) -> None:
    (tmp_path / "url").write_text("https://u:filepass@x.example.com/simple\nSECOND-LINE-SECRET\n")
    path = repositories(
        write,
        "      index_url: {file: url}\n"
        '      extra_index_urls: ["https://u:${env:PASS}@y.example.com/simple"]\n',
    )
    found = problems(path, {"PASS": "pa\nss"})
    assert found == [
        "pkgrepo.yaml:6:18: workspaces.dev.repositories.index_url: file url does not hold a "
        "valid URL (its content is not shown)",
        "pkgrepo.yaml:7:26: workspaces.dev.repositories.extra_index_urls[0]: the value with "
        "its placeholders expanded contains a line break (U+000A) at character 13; a URL may "
        "hold no white space or control characters: ****",
    ]


def test_tokens_with_white_space_are_refused(write: WriteFile) -> None:
    path = write(HEAD + "    auth: {token: {env: TOKEN}}\n")
    assert problems(path, {"TOKEN": "dapi-abc\nX-Injected: 1"}) == [
        "pkgrepo.yaml:5:19: workspaces.dev.auth.token: environment variable TOKEN contains "
        "white space or a control character (U+000A) at character 9"
    ]


def test_no_problem_message_holds_a_resolved_secret(write: WriteFile, tmp_path: Path) -> None:
    planted = {
        "ENV_PASS": "envpass-7Qx9",
        "FILE_PASS": "filepass-3Kz1",
        "TOKEN": "dapi-tok-8Hw2",
        "WHOLE": "https://whole-host-secret.example.com/a b",
        "PIECE": "piece-secret-5Lm0",
    }
    (tmp_path / "index").write_text(f"https://u:{planted['FILE_PASS']}@f.example.com/s p\n")
    path = write(
        """
        version: 1
        workspaces:
          dev:
            host: https://dev.example.com
            auth: {token: {env: TOKEN}}
            repositories:
              index_url: {file: index}
              extra_index_urls:
                - "https://u:${env:ENV_PASS}@e.example.com/simple\\n"
                - {env: WHOLE}
                - "https://${env:PIECE}.example.com:bad/simple"
            acls: {users: NOPE}
          other:
            host: https://other.example.com
            repositories: {index_url: "https://${env:MISSING}@x.example.com"}
        """
    )
    with pytest.raises(config.InvalidConfig) as caught:
        config.load(path, {**planted, "ENV_PASS": planted["ENV_PASS"]})
    text = str(caught.value) + repr(caught.value.details)
    assert "MISSING is not set" in text
    for value in planted.values():
        for form in (
            value,
            urllib.parse.quote(value, safe=""),
            base64.b64encode(value.encode()).decode(),
        ):
            assert form not in text


def test_inherited_problems_are_reported_once_naming_the_workspaces(write: WriteFile) -> None:
    names = [f"ws{i}" for i in range(7)]
    path = write(
        "version: 1\ndefaults:\n  repositories:\n    index_url: {env: SHARED_INDEX}\n"
        "workspaces:\n" + "".join(f"  {n}: {{host: https://{n}.example.com}}\n" for n in names)
    )
    assert problems(path) == [
        "pkgrepo.yaml:4:16: defaults.repositories.index_url: environment variable "
        "SHARED_INDEX is not set (needed by workspaces ws0, ws1, ws2, ws3, ws4 and 2 more)"
    ]


def test_absent_workspaces_resolve_only_their_auth(write: WriteFile) -> None:
    path = write(
        """
        version: 1
        defaults:
          repositories: {index_url: {env: NOT_NEEDED}}
        workspaces:
          retired:
            host: https://old.example.com
            ensure: absent
            auth: {token: {env: OLD_TOKEN}}
        """
    )
    spec = load(path, {"OLD_TOKEN": "dapi-old"}).desired.workspace("retired")
    assert spec.secrets == {}
    assert spec.auth.token is not None
    assert problems(path) == [
        "pkgrepo.yaml:8:19: workspaces.retired.auth.token: environment variable OLD_TOKEN is "
        "not set"
    ]
