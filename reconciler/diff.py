"""Semantic comparison of desired and live values (pure).

The service stores strings; pkgrepo compares what they mean. ``pip-extra-index-urls`` is a
white-space separated list, so ``"a  b"`` equals ``[a, b]``. ``pip-cert`` is compared by the
certificates it holds. ACL maps are compared with deepdiff, which reports additions,
removals and changed levels in one pass.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from deepdiff import DeepDiff

from reconciler import certs
from reconciler.model import CERT, EXTRA_INDEX_URLS, Permission


def canonical(key: str, value: str) -> str:
    """The form two values are compared in: equal canonical forms mean no change."""
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


def value_hmac(hmac_key: str, key: str, value: str) -> str:
    """HMAC-SHA256 of a value's canonical form, as recorded in the ledger."""
    message = f"{key}\0{canonical(key, value)}".encode("utf-8", "surrogatepass")
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
