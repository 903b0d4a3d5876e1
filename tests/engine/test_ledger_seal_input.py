"""Sealed ledger entries: odd but validly signed ledger documents through parse and proven_keys."""

from __future__ import annotations

import json

from reconciler.core import ledger as ledger_doc
from reconciler.core.model import INDEX_URL, MARKER_KEY, LiveSecret, SecretValue, frozen_map

KEY = SecretValue("ledger-key-for-odd-documents")
MARKER_MS = 1_700_000_000_000


def _signed(entries: dict) -> bytes:
    body = {
        "format": "pkgrepo-ledger",
        "version": 1,
        "workspace": "ws",
        "entries": entries,
        "acls": {},
        "kept": {},
        "marker_ms": MARKER_MS,
    }
    body["signature"] = ledger_doc._sign(KEY.plaintext, body)
    return json.dumps(body).encode()


def _entry(sealed: object, ms: int = 1_800_000_000_000) -> dict:
    return {"last_updated_ms": ms, "hmac": "00", "shown": "", "version": 2, "sealed": sealed}


def test_only_a_json_true_seals() -> None:
    listed = frozen_map(
        {
            INDEX_URL: LiveSecret(INDEX_URL, 1_800_000_000_000),
            MARKER_KEY: LiveSecret(MARKER_KEY, MARKER_MS),
        }
    )
    sealed = ledger_doc.parse(_signed({INDEX_URL: _entry(True)}), workspace="ws", hmac_key=KEY)
    assert ledger_doc.proven_keys(sealed, listed) == {INDEX_URL}  # the control
    for odd in ("yes", 1, "true", [True], {"x": 1}, None):
        ledger = ledger_doc.parse(_signed({INDEX_URL: _entry(odd)}), workspace="ws", hmac_key=KEY)
        assert ledger.trusted
        assert ledger_doc.proven_keys(ledger, listed) == frozenset()


def test_a_huge_entries_map_is_parsed_or_refused_not_crashed() -> None:
    entries = {f"k{i}": _entry(True, i) for i in range(9000)}
    document = _signed(entries)
    ledger = ledger_doc.parse(document, workspace="ws", hmac_key=KEY)
    assert ledger.trusted or ledger.problem
    entries = {f"k{i}": _entry(True, i) for i in range(20000)}  # over 1 MiB
    assert ledger_doc.parse(_signed(entries), workspace="ws", hmac_key=KEY).problem


def test_a_ledger_without_the_scopes_marker_proves_nothing() -> None:
    """Only a ledger that names this scope's marker stamp vouches for values: one copied
    back from before the marker was rewritten, or over a re-created scope, does not."""
    document = json.loads(_signed({INDEX_URL: _entry(True)}))
    listed = {INDEX_URL: LiveSecret(INDEX_URL, 1_800_000_000_000)}
    ledger = ledger_doc.parse(json.dumps(document).encode(), workspace="ws", hmac_key=KEY)
    assert ledger_doc.proven_keys(ledger, frozen_map(listed)) == frozenset()
    moved = listed | {MARKER_KEY: LiveSecret(MARKER_KEY, MARKER_MS + 1_000)}
    assert ledger_doc.proven_keys(ledger, frozen_map(moved)) == frozenset()
