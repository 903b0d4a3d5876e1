"""Semantic comparison of desired and live values (pure).

The service stores strings; pkgrepo compares what they mean, and reports an update only
where pip would behave differently:

- Index URLs (``normal_url``): scheme and host are case-insensitive, a default port
  (``:443`` for https, ``:80`` for http) is the same as none, credentials are compared
  percent-decoded (pip unquotes them: ``split_auth_from_netloc`` in ``pip._internal.utils.misc``),
  and one trailing slash of the path is ignored: pip builds a project's page with
  ``posixpath.join(index_url, project)`` (``pip._internal.models.search_scope``), which gives
  the same URL for ``.../simple`` and ``.../simple/``. The rest of the path is compared as
  written (servers may treat its case and encoding as significant).
- ``pip-extra-index-urls`` is a white-space separated set: pip gathers candidates from every
  index alike, so ``"a  b"``, ``[b, a]`` and ``[a, b, a]`` are equal.
- ``pip-cert`` is compared by the set of certificates it holds (order and repeats do not
  change what pip trusts).

ACL maps are compared with deepdiff, which reports additions, removals and changed levels in
one pass.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from deepdiff import DeepDiff

from reconciler.core import certs
from reconciler.core.model import CERT, EXTRA_INDEX_URLS, INDEX_URL, Permission

_DEFAULT_PORTS = {"https": 443, "http": 80}

CANONICAL_VERSION = 2
"""The comparison rules above. Version 1 compared index URLs as text and lists and bundles
in order; ledger entries written under it are still checked with its rules."""


def normal_url(url: str) -> str:
    """An index URL in the form pip's behaviour depends on (see the module docstring).
    Text that is not a URL with a scheme and a host is compared as written."""
    text = url.strip()
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    host = parts.hostname
    if not parts.scheme or not host:
        return text
    scheme = parts.scheme.lower()
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    userinfo = ""
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = parts.password
        # Quoted again so a decoded ':' or '@' cannot make two different pairs look alike.
        userinfo = urllib.parse.quote(user, safe="")
        if password is not None:
            userinfo += ":" + urllib.parse.quote(urllib.parse.unquote(password), safe="")
        userinfo += "@"
    path = parts.path[:-1] if parts.path.endswith("/") else parts.path
    query = f"?{parts.query}" if parts.query else ""
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{scheme}://{userinfo}{host}{path}{query}{fragment}"


def url_host(url: str) -> str:
    """The host (and a port other than the default) an index URL sends installs to,
    compared by meaning; also accepts the redacted form plans show."""
    normal = normal_url(url)
    rest = normal.split("://", 1)[-1]
    rest = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return rest.rsplit("@", 1)[-1].lower()


def canonical(key: str, value: str, *, version: int = CANONICAL_VERSION) -> str:
    """The form two values are compared in: equal canonical forms mean no change."""
    if version < 2:
        return _canonical_v1(key, value)
    if key == INDEX_URL:
        return normal_url(value)
    if key == EXTRA_INDEX_URLS:
        return " ".join(sorted({normal_url(url) for url in value.split()}))
    if key == CERT:
        prints = certs.fingerprints(value)
        if prints is not None:
            return "certs:" + ",".join(sorted(set(prints)))
        return value.replace("\r\n", "\n").strip()
    return value.strip()


def _canonical_v1(key: str, value: str) -> str:
    if key == EXTRA_INDEX_URLS:
        return " ".join(value.split())
    if key == CERT:
        prints = certs.fingerprints(value)
        if prints is not None:
            return "certs:" + ",".join(prints)
        return value.replace("\r\n", "\n").strip()
    return value.strip()


def same_value(key: str, left: str, right: str) -> bool:
    return canonical(key, left) == canonical(key, right)


def value_hmac(hmac_key: str, key: str, value: str, *, version: int = CANONICAL_VERSION) -> str:
    """HMAC-SHA256 of a value's canonical form, as recorded in the ledger (``version``: the
    comparison rules the entry was written under)."""
    message = f"{key}\0{canonical(key, value, version=version)}".encode("utf-8", "surrogatepass")
    return hmac.new(hmac_key.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AclDiff:
    added: Mapping[str, Permission]
    removed: Mapping[str, Permission]
    changed: Mapping[str, tuple[Permission, Permission]]
    """principal -> (live, desired)"""


def diff_acls(live: Mapping[str, Permission], desired: Mapping[str, Permission]) -> AclDiff:
    """What it takes to turn ``live`` into ``desired``, principal by principal."""
    left = {principal: perm.value for principal, perm in live.items()}
    right = {principal: perm.value for principal, perm in desired.items()}
    if left == right:  # the converged case, by far the most common: nothing to walk
        return AclDiff(added={}, removed={}, changed={})
    # threshold 0: report per principal even when the two maps share no key at all
    # (by default deepdiff reports such maps as one root-level change).
    found = DeepDiff(left, right, view="tree", threshold_to_diff_deeper=0)
    added: dict[str, Permission] = {}
    removed: dict[str, Permission] = {}
    changed: dict[str, tuple[Permission, Permission]] = {}
    for item in found.get("dictionary_item_added", ()):
        added[_principal(item)] = Permission(item.t2)
    for item in found.get("dictionary_item_removed", ()):
        removed[_principal(item)] = Permission(item.t1)
    for item in found.get("values_changed", ()):
        changed[_principal(item)] = (Permission(item.t1), Permission(item.t2))
    return AclDiff(added=added, removed=removed, changed=changed)


def _principal(item: object) -> str:
    """The dictionary key a deepdiff tree item sits at (principal names may hold quotes)."""
    path = item.path(output_format="list")  # type: ignore[attr-defined]
    return str(path[0])
