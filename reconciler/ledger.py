"""The ledger: what pkgrepo last wrote to a workspace, so a value it cannot read back can
still be checked (pure: building, signing and verifying the document; storing it is the
job of ``ledger_store``).

Per key it keeps the service's ``last_updated_timestamp`` after the write, an HMAC-SHA256 of
the value (key: ``PKGREPO_LEDGER_KEY``) and the value's redacted form. The whole document is
signed with the same key, so an edited or corrupt ledger is detected and never trusted.

It is a write-ahead ledger: before an apply puts any secret, the intents (key, HMAC of the
value about to be written, run id, and the window on the service's clock in which the write
can land) are recorded; after the writes, the confirmed entries replace them. A run killed
in between leaves intents behind, and the next plan recognises its own interrupted write
instead of calling it a change made outside pkgrepo. The ACLs recorded are the ones
actually written (or found as declared), never the whole desired set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

from reconciler import diff, redact
from reconciler.model import (
    Ensure,
    Ledger,
    LedgerEntry,
    LedgerIntent,
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
    intents = {
        key: LedgerIntent(
            key=key,
            hmac=str(raw["hmac"]),
            run=str(raw["run"]),
            since_ms=int(raw["since_ms"]),
            until_ms=int(raw["until_ms"]),
        )
        for key, raw in body.get("intents", {}).items()
    }
    return Ledger(
        entries=frozen_map(entries),
        acls=frozen_map(acls),
        hmac_key=hmac_key,
        intents=frozen_map(intents),
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
            key: {"last_updated_ms": e.last_updated_ms, "hmac": e.hmac, "shown": e.shown}
            for key, e in sorted(ledger.entries.items())
        },
        "acls": {p: perm.value for p, perm in sorted(ledger.acls.items())},
    }
    if ledger.intents:
        body["intents"] = {
            key: {
                "hmac": i.hmac,
                "run": i.run,
                "since_ms": i.since_ms,
                "until_ms": i.until_ms,
            }
            for key, i in sorted(ledger.intents.items())
        }
    body["signature"] = _sign(ledger.hmac_key.plaintext, body)
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def with_intents(
    spec: WorkspaceSpec,
    previous: Ledger,
    keys: Collection[str],
    *,
    run: str,
    since_ms: int,
    until_ms: int,
) -> Ledger:
    """The ledger to store *before* putting ``keys``: what it held (if trusted), plus an
    intent per key with the HMAC of the value about to be written."""
    assert previous.hmac_key is not None
    key_text = previous.hmac_key.plaintext
    intents = dict(previous.intents) if previous.trusted else {}
    for key in keys:
        intents[key] = LedgerIntent(
            key=key,
            hmac=diff.value_hmac(key_text, key, spec.secrets[key].plaintext),
            run=run,
            since_ms=since_ms,
            until_ms=until_ms,
        )
    trusted = previous.trusted
    return Ledger(
        entries=previous.entries if trusted else frozen_map(),
        acls=previous.acls if trusted else frozen_map(),
        hmac_key=previous.hmac_key,
        intents=frozen_map(intents),
    )


def after_apply(
    spec: WorkspaceSpec,
    previous: Ledger,
    *,
    stamps: Mapping[str, int],
    acl_written: Mapping[str, Permission | None],
    acl_pending: Collection[str],
    salt: str,
    mask: Callable[[str], str] = lambda text: text,
    unproven: frozenset[str] = frozenset(),
) -> Ledger:
    """The ledger once an apply has written the keys in ``stamps`` (key -> the timestamp
    the service showed right after pkgrepo's put). Keys it did not touch keep their
    entries (if trusted); keys no longer declared lose them; confirmed keys lose their
    intents, the others keep them.

    ACLs: ``acl_written`` are the grants this apply wrote (None: deleted), ``acl_pending``
    the principals it planned to change and did not. The record is the previous one (if
    trusted) with the writes on top, plus declared grants that needed no change (they are
    live as declared); a planned grant that was never written is never recorded, so the
    next plan cannot call it "removed outside pkgrepo". A grant added outside pkgrepo is
    never adopted as pkgrepo's own.
    ``mask`` scrubs known secret values from the redacted forms (a token can sit in an
    index URL's path).

    ``unproven`` keys were written, but the stamp the service showed afterwards cannot tell
    pkgrepo's write from another one (the same whole second as the write seen before it):
    they get no entry, so the next plan reports them unverifiable instead of trusting them."""
    assert previous.hmac_key is not None
    key_text = previous.hmac_key.plaintext
    trusted = previous.trusted
    entries: dict[str, LedgerEntry] = {}
    intents: dict[str, LedgerIntent] = {}
    if spec.ensure is Ensure.PRESENT:
        for key, value in spec.secrets.items():
            old = previous.entries.get(key) if trusted else None
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
            intent = previous.intents.get(key) if trusted else None
            if intent is not None and key not in stamps:
                intents[key] = intent
    acls: dict[str, Permission] = {}
    if spec.ensure is Ensure.PRESENT:
        acls = dict(previous.acls) if trusted else {}
        for principal, permission in spec.acls.items():
            if principal not in acl_pending and principal not in acl_written:
                acls[principal] = permission
        for principal, written in acl_written.items():
            if written is None:
                acls.pop(principal, None)
            else:
                acls[principal] = written
        for principal in list(acls):
            if principal not in spec.acls and principal not in acl_pending:
                acls.pop(principal)
    return Ledger(
        entries=frozen_map(entries),
        acls=frozen_map(acls),
        hmac_key=previous.hmac_key,
        intents=frozen_map(intents),
    )
