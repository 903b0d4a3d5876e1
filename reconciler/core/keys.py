"""Keys derived from ``PKGREPO_LEDGER_KEY``, one per purpose (pure).

The ledger key is the one secret pkgrepo's CI runs share. Each use gets its own key derived
from it (HMAC-SHA256 of a fixed label, keyed by the ledger key), so a digest made for one
purpose can never be replayed as another: the signature of a plan file is not a ledger
signature, and a digest shown in a plan is not a plan signature.

``key_id`` names a ledger key without revealing it: it is what a plan file records as its
signer, so ``apply`` can say "this plan was signed with another key" instead of blaming the
file. It is as hard to reverse as the signature itself (both are HMACs under the key).
"""

from __future__ import annotations

import hashlib
import hmac

PLAN_SIGNING = "pkgrepo/plan-file-signature/v1"
DISPLAY_DIGEST = "pkgrepo/display-digest/v1"
KEY_ID = "pkgrepo/key-id/v1"


def derive(ledger_key: str, purpose: str) -> str:
    """The key for ``purpose``, as hex text."""
    return hmac.new(ledger_key.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def key_id(ledger_key: str) -> str:
    """A short public name of the ledger key, such as ``key:3f9a1c2e7b4d5a60``."""
    return "key:" + derive(ledger_key, KEY_ID)[:16]


def sign(ledger_key: str, purpose: str, message: bytes) -> str:
    """``hmac-sha256:<hex>`` of ``message`` under the key derived for ``purpose``."""
    mac = hmac.new(derive(ledger_key, purpose).encode(), message, hashlib.sha256)
    return "hmac-sha256:" + mac.hexdigest()


def same(a: str, b: str) -> bool:
    """Compare two signatures in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())
