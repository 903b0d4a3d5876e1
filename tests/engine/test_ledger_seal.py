"""Sealed ledger entries (pure): what lets a plan skip reading a value back, and what does
not. A sealed entry vouches for a value only in a ledger signed with the key, and only
while the service lists the key with the very stamp the entry was sealed at."""

from __future__ import annotations

import json

from reconciler.core import ledger as ledger_doc
from reconciler.core.model import (
    EXTRA_INDEX_URLS,
    INDEX_URL,
    MARKER_KEY,
    Ledger,
    LiveSecret,
    Permission,
    SecretValue,
    WorkspaceSpec,
    frozen_map,
)

KEY = SecretValue("ledger-key-for-seal-tests")
OTHER_KEY = SecretValue("another-ledger-key")
SPEC = WorkspaceSpec(
    name="ws",
    host="https://ws.example.com",
    secrets=frozen_map(
        {
            INDEX_URL: SecretValue("https://idx.example.com/simple"),
            EXTRA_INDEX_URLS: SecretValue("https://extra.example.com/simple"),
        }
    ),
    acls=frozen_map({"admins": Permission.MANAGE}),
)
STAMPS = {INDEX_URL: 1_800_000_000_000, EXTRA_INDEX_URLS: 1_800_000_001_000}
MARKER_MS = 1_799_000_000_000
LISTED = frozen_map(
    {k: LiveSecret(k, ms) for k, ms in STAMPS.items()}
    | {MARKER_KEY: LiveSecret(MARKER_KEY, MARKER_MS)}
)


def _stored(sealed: frozenset[str]) -> bytes:
    ledger = ledger_doc.after_apply(
        SPEC,
        Ledger(hmac_key=KEY),
        stamps=STAMPS,
        acl_written={},
        acl_pending=(),
        marker_ms=MARKER_MS,
        sealed=sealed,
    )
    return ledger_doc.render(ledger, workspace="ws")


def _read(document: bytes, key: SecretValue | None = KEY) -> Ledger:
    return ledger_doc.parse(document, workspace="ws", hmac_key=key)


def test_a_sealed_entry_survives_storing_and_vouches_while_the_stamp_stays() -> None:
    ledger = _read(_stored(frozenset({INDEX_URL})))
    assert ledger.trusted
    assert ledger.entries[INDEX_URL].sealed and not ledger.entries[EXTRA_INDEX_URLS].sealed
    assert ledger_doc.proven_keys(ledger, LISTED) == {INDEX_URL}


def test_a_moved_or_missing_stamp_is_not_vouched_for() -> None:
    ledger = _read(_stored(frozenset(STAMPS)))
    moved = frozen_map(
        {
            INDEX_URL: LiveSecret(INDEX_URL, STAMPS[INDEX_URL] + 1_000),
            EXTRA_INDEX_URLS: LiveSecret(EXTRA_INDEX_URLS, STAMPS[EXTRA_INDEX_URLS]),
            MARKER_KEY: LiveSecret(MARKER_KEY, MARKER_MS),
        }
    )
    assert ledger_doc.proven_keys(ledger, moved) == {EXTRA_INDEX_URLS}
    assert ledger_doc.proven_keys(ledger, frozen_map()) == frozenset()


def test_sealing_an_entry_by_editing_the_stored_ledger_breaks_its_signature() -> None:
    document = json.loads(_stored(frozenset()))
    for entry in document["entries"].values():
        entry["sealed"] = True
    forged = _read(json.dumps(document).encode())
    assert not forged.trusted
    assert ledger_doc.proven_keys(forged, LISTED) == frozenset()


def test_a_marker_that_moved_or_went_vouches_for_nothing() -> None:
    """The planner's own test of a restored ledger or a replaced scope: the marker key must
    carry the stamp the ledger recorded."""
    ledger = _read(_stored(frozenset(STAMPS)))
    moved = frozen_map(dict(LISTED) | {MARKER_KEY: LiveSecret(MARKER_KEY, MARKER_MS + 1_000)})
    assert ledger_doc.proven_keys(ledger, moved) == frozenset()
    gone = frozen_map({k: v for k, v in LISTED.items() if k != MARKER_KEY})
    assert ledger_doc.proven_keys(ledger, gone) == frozenset()


def test_no_key_or_another_key_vouches_for_nothing() -> None:
    document = _stored(frozenset(STAMPS))
    assert ledger_doc.proven_keys(_read(document, key=None), LISTED) == frozenset()
    assert ledger_doc.proven_keys(_read(document, key=OTHER_KEY), LISTED) == frozenset()


def test_a_seal_is_kept_while_the_entry_is_carried_and_lost_when_rewritten_unsealed() -> None:
    sealed = _read(_stored(frozenset(STAMPS)))
    # another apply that wrote nothing: the entries are carried with their seals
    carried = ledger_doc.after_apply(
        SPEC, sealed, stamps={}, acl_written={}, acl_pending=(), sealed=frozenset()
    )
    assert all(e.sealed for e in carried.entries.values())
    # an apply that wrote the index again and could not read it back: that entry is unsealed
    rewritten = ledger_doc.after_apply(
        SPEC,
        sealed,
        stamps={INDEX_URL: STAMPS[INDEX_URL] + 5_000},
        acl_written={},
        acl_pending=(),
    )
    assert not rewritten.entries[INDEX_URL].sealed
    assert rewritten.entries[EXTRA_INDEX_URLS].sealed
