"""The ledger: what pkgrepo last wrote to a workspace, so a value it cannot read back can
still be checked (pure: building, signing and verifying the document; storing it is the
job of ``ledger_store``).

Per key it keeps the service's ``last_updated_timestamp`` after the write, an HMAC-SHA256 of
the value (key: ``PKGREPO_LEDGER_KEY``) and the value's redacted form. The whole document is
signed with the same key, so an edited or corrupt ledger is detected and never trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from reconciler import diff, redact
from reconciler.model import (
    MARKER_KEY,
    Ensure,
    Ledger,
    LedgerEntry,
    LiveState,
    Permission,
    SecretValue,
    WorkspaceSpec,
    frozen_map,
)

FORMAT = "pkgrepo-ledger"
VERSION = 1
MAX_DOCUMENT_BYTES = 1024 * 1024


def _sign(hmac_key: str, body: Mapping[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hmac.new(hmac_key.encode(), text.encode(), hashlib.sha256).hexdigest()


def parse(
    data: bytes | None,
    *,
    workspace: str,
    hmac_key: SecretValue | None,
    previous_key: SecretValue | None = None,
) -> Ledger:
    """Read a stored ledger. Anything wrong with it yields a Ledger whose ``problem`` says
    what, and which the planner does not trust. ``previous_key``
    (``PKGREPO_LEDGER_KEY_PREVIOUS``) is accepted during a key rotation. Without any key the
    document is read unverified: its timestamps still say when pkgrepo last wrote each key."""
    if data is None:
        return Ledger(hmac_key=hmac_key)
    if len(data) > MAX_DOCUMENT_BYTES:
        return _bad(hmac_key, "ledger is larger than any pkgrepo writes")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _bad(hmac_key, "ledger is not valid JSON")
    try:
        return _from_document(document, workspace, hmac_key, previous_key)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return _bad(hmac_key, "ledger does not have the expected shape")


def _bad(hmac_key: SecretValue | None, problem: str) -> Ledger:
    return Ledger(hmac_key=hmac_key, problem=problem, stored=True)


def _from_document(
    document: Any,
    workspace: str,
    hmac_key: SecretValue | None,
    previous_key: SecretValue | None,
) -> Ledger:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return _bad(hmac_key, "not a pkgrepo ledger")
    body = {k: v for k, v in document.items() if k != "signature"}
    signature = str(document.get("signature", ""))
    entry_key: SecretValue | None = None
    for candidate in (hmac_key, previous_key):
        if candidate is not None and hmac.compare_digest(
            signature, _sign(candidate.plaintext, body)
        ):
            entry_key = candidate
            break
    if entry_key is None and (hmac_key is not None or previous_key is not None):
        return _bad(
            hmac_key,
            "signature does not match (edited, or written with another PKGREPO_LEDGER_KEY)",
        )
    if body.get("workspace") != workspace:
        return _bad(hmac_key, "ledger belongs to another workspace (copied from it)")
    entries = {
        str(key): LedgerEntry(
            key=str(key),
            last_updated_ms=int(raw["last_updated_ms"]),
            hmac=str(raw["hmac"]),
            shown=str(raw.get("shown", "")),
            version=int(raw.get("version", 1)),
        )
        for key, raw in body["entries"].items()
    }
    acls = {str(p): Permission(v) for p, v in body.get("acls", {}).items()}
    kept = {str(p): Permission(v) for p, v in body.get("kept", {}).items()}
    marker = body.get("marker_ms")
    return Ledger(
        entries=frozen_map(entries),
        acls=frozen_map(acls),
        hmac_key=hmac_key,
        stored=True,
        verified=entry_key is not None,
        entry_key=entry_key,
        marker_ms=None if marker is None else int(marker),
        kept=frozen_map(kept),
    )


def render(ledger: Ledger, *, workspace: str) -> bytes:
    """The signed document to store. Holds timestamps, HMACs and redacted forms only."""
    if ledger.hmac_key is None:
        raise ValueError("a ledger without PKGREPO_LEDGER_KEY cannot be written")
    body: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "workspace": workspace,
        "entries": {
            key: {
                "last_updated_ms": e.last_updated_ms,
                "hmac": e.hmac,
                "shown": e.shown,
                "version": e.version,
            }
            for key, e in sorted(ledger.entries.items())
        },
        "acls": {p: perm.value for p, perm in sorted(ledger.acls.items())},
        "kept": {p: perm.value for p, perm in sorted(ledger.kept.items())},
    }
    if ledger.marker_ms is not None:
        body["marker_ms"] = ledger.marker_ms
    body["signature"] = _sign(ledger.hmac_key.plaintext, body)
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def after_apply(
    spec: WorkspaceSpec,
    previous: Ledger,
    *,
    stamps: Mapping[str, int],
    salt: str,
    mask: Callable[[str], str] = lambda text: text,
    live: LiveState | None = None,
    marker_ms: int | None = None,
) -> Ledger:
    """The ledger once an apply has written the keys in ``stamps`` (key -> the timestamp
    the service showed right after pkgrepo's put). Keys it did not touch keep their
    entries (if trusted); keys no longer declared lose them. ACLs recorded are the declared
    ones only, so a grant added outside pkgrepo is never adopted as pkgrepo's own.
    ``mask`` scrubs known secret values from the redacted forms (a token can sit in an
    index URL's path).

    During a key rotation (``previous`` verified with the previous key) an untouched entry
    that vouches for the declared value is signed again with the new key, so the rotation
    rewrites no value; one that does not is dropped (the next plan rewrites that key).
    ``live`` is what the apply was planned on: the deploying identity's own MANAGE, and at
    adoption (no ledger before) the MANAGE grants the scope already had, are recorded as
    ``kept``: the creator's grant, not a grant made behind pkgrepo's back. ``marker_ms`` is
    the scope marker's timestamp (``model.MARKER_KEY``)."""
    assert previous.hmac_key is not None
    key_text = previous.hmac_key.plaintext
    trusted = previous.trusted
    old_key = previous.entry_key.plaintext if trusted and previous.entry_key else key_text
    entries: dict[str, LedgerEntry] = {}
    present = spec.ensure is Ensure.PRESENT
    if present:
        for key, value in spec.secrets.items():
            old = previous.entries.get(key) if trusted else None
            if key in stamps:
                entries[key] = LedgerEntry(
                    key=key,
                    last_updated_ms=stamps[key],
                    hmac=diff.value_hmac(key_text, key, value.plaintext),
                    shown=mask(redact.describe(key, value, salt)),
                )
            elif old is not None:
                vouches = hmac.compare_digest(
                    old.hmac, diff.value_hmac(old_key, key, value.plaintext, version=old.version)
                )
                if vouches:  # the live value is the declared one: record it under today's rules
                    entries[key] = replace(
                        old,
                        hmac=diff.value_hmac(key_text, key, value.plaintext),
                        version=diff.CANONICAL_VERSION,
                    )
                elif old_key == key_text:
                    entries[key] = old
    acls = spec.acls if present else {}
    kept: dict[str, Permission] = dict(previous.kept) if trusted and present else {}
    if present and live is not None:
        identity = live.identity
        if identity and identity not in spec.acls:
            kept[identity] = Permission.MANAGE
        if not previous.stored and live.scope_exists and MARKER_KEY not in live.secrets:
            for principal, perm in live.acls.items():
                if perm is Permission.MANAGE and principal not in spec.acls:
                    kept[principal] = perm
    for principal in list(kept):
        if principal in spec.acls:
            del kept[principal]  # declared now: an ordinary grant
    if marker_ms is None and trusted and present:
        marker_ms = previous.marker_ms
    return Ledger(
        entries=frozen_map(entries),
        acls=frozen_map(acls),
        hmac_key=previous.hmac_key,
        stored=True,
        verified=True,
        entry_key=previous.hmac_key,
        marker_ms=marker_ms if present else None,
        kept=frozen_map(kept),
    )
