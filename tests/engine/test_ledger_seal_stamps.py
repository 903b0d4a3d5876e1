"""proven_keys: a stamp of zero and odd marker stamps in a signed ledger (pure)."""

from __future__ import annotations

import json

import pytest

from reconciler.core import ledger as ledger_doc
from reconciler.core.model import INDEX_URL, MARKER_KEY, LiveSecret, SecretValue, frozen_map

KEY = SecretValue("ledger-key-for-stamp-tests")


def _signed(entry_ms: int, marker_ms: object) -> bytes:
    body = {
        "format": "pkgrepo-ledger",
        "version": 1,
        "workspace": "ws",
        "entries": {
            INDEX_URL: {
                "last_updated_ms": entry_ms,
                "hmac": "00",
                "shown": "",
                "version": 2,
                "sealed": True,
            }
        },
        "acls": {},
        "kept": {},
        "marker_ms": marker_ms,
    }
    body["signature"] = ledger_doc._sign(KEY.plaintext, body)
    return json.dumps(body).encode()


def test_a_stamp_of_zero_is_never_proven() -> None:
    """The adapter reads a missing ``last_updated_timestamp`` as 0; 0 then equals 0 for
    every later write. A sealed entry at 0 (with marker_ms 0) must vouch for nothing."""
    ledger = ledger_doc.parse(_signed(0, 0), workspace="ws", hmac_key=KEY)
    listed = frozen_map(
        {INDEX_URL: LiveSecret(INDEX_URL, 0), MARKER_KEY: LiveSecret(MARKER_KEY, 0)}
    )
    assert ledger_doc.proven_keys(ledger, listed) == frozenset()


@pytest.mark.parametrize("marker_ms", ["x", [1], {"a": 1}, 1e400, "1e3", -1, True, 1.9])
def test_odd_marker_stamps_in_a_signed_ledger_do_not_crash_or_prove(marker_ms: object) -> None:
    data = _signed(1_800_000_000_000, marker_ms)
    ledger = ledger_doc.parse(data, workspace="ws", hmac_key=KEY)
    listed = frozen_map(
        {
            INDEX_URL: LiveSecret(INDEX_URL, 1_800_000_000_000),
            MARKER_KEY: LiveSecret(MARKER_KEY, 1_700_000_000_000),
        }
    )
    assert ledger_doc.proven_keys(ledger, listed) == frozenset()
