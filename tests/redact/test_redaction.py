"""What a plan may show of a secret value (pure): safe by construction for URLs, keyed
digests (or none) for anything else, and a scrubber that knows every form of a token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

import pytest

from reconciler.core import keys, redact
from reconciler.core.model import CERT, INDEX_URL, SecretValue
from reconciler.core.redact import HIDDEN, MASK, Scrubber, looks_secret, mask_url

ART_TOKEN = "AKCp8jQ3vRt6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0Cv3Bn6Mq9We2Rt5"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # Artifactory's token in the path, with user info, query and fragment as well
        (
            f"https://ci:pw@artifactory.example.com/api/pypi/{ART_TOKEN}/simple?x=1#frag",
            "https://****@artifactory.example.com/api/pypi/****/simple?****#****",
        ),
        # a token as a subdomain, written in any case
        (
            "https://Tok3nAbcDef9Ghi2Jkl.mirror.example.com/simple",
            "https://****.mirror.example.com/simple",
        ),
        (
            "https://tok3nabcdef9ghi2jkl5.mirror.example.com/simple",
            "https://****.mirror.example.com/simple",
        ),
        # a lowercase hex token, a JWT, a GitLab token, percent-encoded text
        (f"https://h.example.com/{'a1b2c3d4' * 4}/simple", "https://h.example.com/****/simple"),
        (
            "https://h.example.com/eyJhbGciOiJIUzI1NiJ9.e30.abc/simple",
            "https://h.example.com/****/simple",
        ),
        (
            "https://h.example.com/glpat-Ab3dE6gH9jK2mN5pQ8rS/simple",
            "https://h.example.com/****/simple",
        ),
        ("https://h.example.com/p%40ss/simple", "https://h.example.com/****/simple"),
        # an empty fragment or query is still marked, never shown
        ("https://h.example.com/simple#", "https://h.example.com/simple#****"),
        ("HTTPS://H.Example.COM/simple", "https://h.example.com/simple"),
    ],
)
def test_tokens_in_any_part_of_a_url_are_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "https://artifactory.example.com/api/pypi/pypi-remote/simple",
        "https://download.pytorch.org/whl/cpu",
        "https://pkgs.dev.azure.com/acme/_packaging/feed-1/pypi/simple/",
        "https://gitlab.example.com/api/v4/projects/12345/packages/pypi/simple",
        "https://devpi.example.com/root/pypi/+simple/",
        "https://domain-111122223333.d.codeartifact.eu-west-1.amazonaws.com/pypi/repo/simple/",
        "https://adb-1234567890123456.7.azuredatabricks.net/simple",
        "https://nexus.example.com:8443/repository/pypi-proxy/simple",
        "https://npm_mirror.example.com/dapi-docs/simple",
    ],
)
def test_names_that_look_like_paths_are_shown(url: str) -> None:
    assert mask_url(url) == url.lower() if "://" in url else url
    assert MASK not in mask_url(url)


def test_what_looks_secret() -> None:
    assert looks_secret(ART_TOKEN) and looks_secret("ghp_" + "a" * 36)
    assert not looks_secret("simple") and not looks_secret("pypi-remote")
    assert looks_secret("x" * 65) and looks_secret("a:b") and looks_secret("a=b")


@pytest.mark.parametrize(
    ("part", "secret"),
    [
        ("Abcdefghij12", True),  # 12 mixed-case letters and digits: the shortest token
        ("Abcdefghi12", False),
        ("abc123abc123abc1", True),  # 16 with 3+ digits and letters, one case
        ("abc123abc123ab1", False),
        ("a" * 23 + "B", True),  # 24 mixed-case letters, no digit
        ("a" * 22 + "B", False),
        ("prod-Abcdefghij12.example", True),  # the run is judged, not the whole part
    ],
)
def test_token_rules_at_their_boundaries(part: str, secret: bool) -> None:
    assert looks_secret(part) is secret


def test_the_scrubber_knows_every_form_of_a_url_token() -> None:
    url = f"https://nexus.example.com/repository/{ART_TOKEN}/simple"
    scrubber = Scrubber([url])  # the URL came whole from the environment
    for form in (
        ART_TOKEN,
        ART_TOKEN.lower(),
        ART_TOKEN.upper(),
        urllib.parse.quote(ART_TOKEN),
        base64.b64encode(ART_TOKEN.encode()).decode(),
    ):
        assert scrubber.scrub(f"before {form} after") == f"before {MASK} after", form
    sub = Scrubber(["SubTok9Xq2Lm7Zp4"])
    assert sub.scrub("https://subtok9xq2lm7zp4.mirror.example.com") == (
        "https://****.mirror.example.com"
    )
    # names of a URL are not secrets: they stay readable everywhere
    assert Scrubber([url]).scrub("nexus.example.com/repository") == "nexus.example.com/repository"


def test_a_digest_shown_is_keyed_with_a_secret_or_not_shown() -> None:
    """`hunter2` was recovered from a digest keyed with the plan's public salt."""
    value = SecretValue("hunter2")
    assert redact.describe(CERT, value, None) == f"(not a certificate) {HIDDEN}"
    assert redact.describe("other", value, None) == HIDDEN
    salt = "0123456789abcdef"
    key = keys.derive("ledger-key", keys.DISPLAY_DIGEST)
    shown = redact.describe(CERT, value, key)
    public = "hmac-sha256:" + hmac.new(salt.encode(), b"hunter2", hashlib.sha256).hexdigest()
    assert shown.startswith("(not a certificate) hmac-sha256:")
    assert public[:24] not in shown
    # the same value shows the same digest under the same key, and another under another
    assert shown == redact.describe(CERT, value, key)
    assert shown != redact.describe(CERT, value, keys.derive("other", keys.DISPLAY_DIGEST))
    assert redact.describe(INDEX_URL, SecretValue("https://u:p@h.example.com/s"), None) == (
        "https://****@h.example.com/s"
    )


def test_derived_keys_differ_by_purpose_and_the_key_id_hides_the_key() -> None:
    assert keys.derive("k", keys.PLAN_SIGNING) != keys.derive("k", keys.DISPLAY_DIGEST)
    assert keys.key_id("k") != keys.key_id("k2")
    shown = keys.key_id("planted-secret-key")
    assert shown.startswith("key:") and len(shown) == 20 and "planted" not in shown
