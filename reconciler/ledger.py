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
from typing import Any

from reconciler import diff, redact
from reconciler.model import (
    Ensure,
    Ledger,
    LedgerEntry,
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


def parse(data: bytes | None, *, workspace: str, hmac_key: SecretValue | None) -> Ledger:
    """Read a stored ledger. Anything wrong with it yields a Ledger whose ``problem`` says
    what, and which the planner does not trust."""
    if hmac_key is None:
        return Ledger()
    if data is None:
        return Ledger(hmac_key=hmac_key)
    if len(data) > MAX_DOCUMENT_BYTES:
        return Ledger(hmac_key=hmac_key, problem="ledger is larger than any pkgrepo writes")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return Ledger(hmac_key=hmac_key, problem="ledger is not valid JSON")
    try:
        return _from_document(document, workspace, hmac_key)
    except (KeyError, TypeError, ValueError, AttributeError):
        return Ledger(hmac_key=hmac_key, problem="ledger does not have the expected shape")


def _from_document(document: Any, workspace: str, hmac_key: SecretValue) -> Ledger:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return Ledger(hmac_key=hmac_key, problem="not a pkgrepo ledger")
    body = {k: v for k, v in document.items() if k != "signature"}
    expected = _sign(hmac_key.plaintext, body)
    if not hmac.compare_digest(str(document.get("signature", "")), expected):
        return Ledger(
            hmac_key=hmac_key,
            problem="signature does not match (edited, or written with another PKGREPO_LEDGER_KEY)",
        )
    if body.get("workspace") != workspace:
        return Ledger(hmac_key=hmac_key, problem="ledger belongs to another workspace")
    entries = {
        key: LedgerEntry(
            key=key,
            last_updated_ms=int(raw["last_updated_ms"]),
            hmac=str(raw["hmac"]),
            shown=str(raw.get("shown", "")),
        )
        for key, raw in body["entries"].items()
    }
    acls = {str(p): Permission(v) for p, v in body.get("acls", {}).items()}
    return Ledger(entries=frozen_map(entries), acls=frozen_map(acls), hmac_key=hmac_key)


def render(ledger: Ledger, *, workspace: str) -> bytes:
    """The signed document to store. Holds timestamps, HMACs and redacted forms only."""
    if ledger.hmac_key is None:
        raise ValueError("a ledger without PKGREPO_LEDGER_KEY cannot be written")
    body: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "workspace": workspace,
        "entries": {
            key: {"last_updated_ms": e.last_updated_ms, "hmac": e.hmac, "shown": e.shown}
            for key, e in sorted(ledger.entries.items())
        },
        "acls": {p: perm.value for p, perm in sorted(ledger.acls.items())},
    }
    body["signature"] = _sign(ledger.hmac_key.plaintext, body)
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def after_apply(
    spec: WorkspaceSpec,
    previous: Ledger,
    *,
    stamps: Mapping[str, int],
    salt: str,
    mask: Callable[[str], str] = lambda text: text,
    unproven: frozenset[str] = frozenset(),
) -> Ledger:
    """The ledger once an apply has written the keys in ``stamps`` (key -> the timestamp
    the service showed right after pkgrepo's put). Keys it did not touch keep their
    entries (if trusted); keys no longer declared lose them. ACLs recorded are the declared
    ones only, so a grant added outside pkgrepo is never adopted as pkgrepo's own.
    ``mask`` scrubs known secret values from the redacted forms (a token can sit in an
    index URL's path).

    ``unproven`` keys were written, but the stamp the service showed afterwards cannot tell
    pkgrepo's write from another one (the same whole second as the write seen before it):
    they get no entry, so the next plan reports them unverifiable instead of trusting them."""
    assert previous.hmac_key is not None
    key_text = previous.hmac_key.plaintext
    entries: dict[str, LedgerEntry] = {}
    if spec.ensure is Ensure.PRESENT:
        for key, value in spec.secrets.items():
            old = previous.entries.get(key) if previous.trusted else None
            if key in unproven:
                continue
            if key in stamps:
                entries[key] = LedgerEntry(
                    key=key,
                    last_updated_ms=stamps[key],
                    hmac=diff.value_hmac(key_text, key, value.plaintext),
                    shown=mask(redact.describe(key, value, salt)),
                )
            elif old is not None:
                entries[key] = old
    acls = spec.acls if spec.ensure is Ensure.PRESENT else {}
    return Ledger(entries=frozen_map(entries), acls=frozen_map(acls), hmac_key=previous.hmac_key)
