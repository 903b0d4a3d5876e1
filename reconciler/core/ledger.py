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

During a key rotation (``PKGREPO_LEDGER_KEY_PREVIOUS``) a ledger signed with the previous
key is trusted, and whatever pkgrepo records next is signed with the new key: entries that
vouch for the declared value are re-keyed, the rest are dropped (and rewritten next time).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

from reconciler.core import diff, keys, redact
from reconciler.core.model import (
    MANAGED_KEYS,
    MARKER_KEY,
    Ensure,
    Ledger,
    LedgerEntry,
    LedgerIntent,
    LiveSecret,
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
            sealed=raw.get("sealed") is True,
        )
        for key, raw in body["entries"].items()
    }
    acls = {str(p): Permission(v) for p, v in body.get("acls", {}).items()}
    kept = {str(p): Permission(v) for p, v in body.get("kept", {}).items()}
    intents = {
        str(key): LedgerIntent(
            key=str(key),
            hmac=str(raw["hmac"]),
            run=str(raw["run"]),
            since_ms=int(raw["since_ms"]),
            until_ms=int(raw["until_ms"]),
        )
        for key, raw in body.get("intents", {}).items()
    }
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
            key: {
                "last_updated_ms": e.last_updated_ms,
                "hmac": e.hmac,
                "shown": e.shown,
                "version": e.version,
            }
            | ({"sealed": True} if e.sealed else {})
            for key, e in sorted(ledger.entries.items())
        },
        "acls": {p: perm.value for p, perm in sorted(ledger.acls.items())},
        "kept": {p: perm.value for p, perm in sorted(ledger.kept.items())},
    }
    if ledger.marker_ms is not None:
        body["marker_ms"] = ledger.marker_ms
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


def _carried_entries(spec: WorkspaceSpec, previous: Ledger) -> dict[str, LedgerEntry]:
    """The trusted entries of declared keys, under the key and rules the ledger is written
    with now: an entry that vouches for the declared value is recorded again with
    ``hmac_key`` and today's comparison rules (no value is rewritten for a key rotation or
    an upgrade); one that does not keeps its HMAC only if it was made with ``hmac_key``."""
    if not previous.trusted or spec.ensure is not Ensure.PRESENT:
        return {}
    assert previous.hmac_key is not None
    key_text = previous.hmac_key.plaintext
    old_key = previous.entry_key.plaintext if previous.entry_key else key_text
    carried: dict[str, LedgerEntry] = {}
    for key, value in spec.secrets.items():
        old = previous.entries.get(key)
        if old is None:
            continue
        wanted = diff.value_hmac(old_key, key, value.plaintext, version=old.version)
        if hmac.compare_digest(old.hmac, wanted):
            carried[key] = replace(
                old,
                hmac=diff.value_hmac(key_text, key, value.plaintext),
                version=diff.CANONICAL_VERSION,
            )
        elif old_key == key_text:
            carried[key] = old
    return carried


def _of_this_scope(ledger: Ledger, secrets: Mapping[str, LiveSecret]) -> bool:
    """A trusted ledger that belongs to this very scope: the scope's marker key
    (``MARKER_KEY``) is listed with the stamp the ledger recorded, the planner's own test of
    a restored ledger or a replaced scope (a Key Vault backed scope, where pkgrepo writes no
    marker, never passes it). Only such a ledger vouches for values it did not read."""
    marker = secrets.get(MARKER_KEY)
    return (
        ledger.trusted
        and bool(ledger.marker_ms)  # none recorded, or a listing that gave no stamp (0)
        and marker is not None
        and marker.last_updated_ms == ledger.marker_ms
    )


def proven_keys(ledger: Ledger, secrets: Mapping[str, LiveSecret]) -> frozenset[str]:
    """The keys whose value a trusted ledger of this scope (``_of_this_scope``) vouches for
    without reading it back: a sealed entry whose stamp is the one the service lists now
    (an entry is sealed only once its second had ended, so no later write can carry the
    same stamp)."""
    if not _of_this_scope(ledger, secrets):
        return frozenset()
    return frozenset(
        key
        for key, entry in ledger.entries.items()
        if entry.sealed
        and entry.last_updated_ms > 0  # a missing stamp is read as 0: it proves nothing
        and (live := secrets.get(key)) is not None
        and live.last_updated_ms == entry.last_updated_ms
    )


def sealable_keys(spec: WorkspaceSpec, live: LiveState, ledger: Ledger) -> list[str]:
    """The managed keys whose trusted ledger entry is not sealed yet although the value
    read back is the declared one at the recorded stamp: an apply can seal them, so later
    plans need not read them back (``LedgerEntry.sealed``). Only with a ledger of this very
    scope, as ``proven_keys`` requires."""
    entry_key = ledger.entry_key
    if (
        entry_key is None
        or spec.ensure is not Ensure.PRESENT
        or not _of_this_scope(ledger, live.secrets)
    ):
        return []
    keys = []
    for key in MANAGED_KEYS:
        entry, now, desired = ledger.entries.get(key), live.secrets.get(key), spec.secrets.get(key)
        if (
            entry is not None
            and not entry.sealed
            and now is not None
            and now.value is not None
            and desired is not None
            and now.last_updated_ms > 0
            and now.last_updated_ms == entry.last_updated_ms
            and diff.same_value(key, now.value.plaintext, desired.plaintext)
            and entry.hmac
            == diff.value_hmac(entry_key.plaintext, key, desired.plaintext, version=entry.version)
        ):
            keys.append(key)
    return keys


def _carried_intents(previous: Ledger) -> dict[str, LedgerIntent]:
    """Intents are HMACs too: kept only when made with the key the ledger is written with."""
    if not previous.trusted or previous.rotating:
        return {}
    return dict(previous.intents)


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
    intents = _carried_intents(previous)
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
        entries=frozen_map(_carried_entries(spec, previous)),
        acls=previous.acls if trusted else frozen_map(),
        hmac_key=previous.hmac_key,
        stored=True,
        verified=True,
        entry_key=previous.hmac_key,
        marker_ms=previous.marker_ms if trusted else None,
        kept=previous.kept if trusted else frozen_map(),
        intents=frozen_map(intents),
    )


def after_apply(
    spec: WorkspaceSpec,
    previous: Ledger,
    *,
    stamps: Mapping[str, int],
    acl_written: Mapping[str, Permission | None],
    acl_pending: Collection[str],
    mask: Callable[[str], str] = lambda text: text,
    live: LiveState | None = None,
    marker_ms: int | None = None,
    adopting: bool = False,
    unproven: frozenset[str] = frozenset(),
    sealed: frozenset[str] = frozenset(),
) -> Ledger:
    """The ledger once an apply has written the keys in ``stamps`` (key -> the timestamp
    the service showed right after pkgrepo's put). Keys it did not touch keep their
    entries (if trusted, see ``_carried_entries``); keys no longer declared lose them;
    confirmed keys lose their intents, the others keep them.

    ACLs: ``acl_written`` are the grants this apply wrote (None: deleted), ``acl_pending``
    the principals it planned to change and did not. The record is the previous one (if
    trusted) with the writes on top, plus declared grants that needed no change (they are
    live as declared); a planned grant that was never written is never recorded, so the
    next plan cannot call it "removed outside pkgrepo". A grant added outside pkgrepo is
    never adopted as pkgrepo's own.

    ``live`` is what the apply was planned on: the deploying identity's own MANAGE, and when
    ``adopting`` (no ledger and no marker before this apply) the MANAGE grants the scope
    already had, are recorded as ``kept``: the creator's grant, not a grant made behind
    pkgrepo's back.
    ``marker_ms`` is the scope marker's timestamp (``model.MARKER_KEY``).
    ``mask`` scrubs known secret values from the redacted forms (a token can sit in an
    index URL's path).

    ``unproven`` keys were written, but the stamp the service showed afterwards cannot tell
    pkgrepo's write from another one (the same whole second as the write seen before it):
    they get no entry, so the next plan reports them unverifiable instead of trusting them.
    ``sealed`` keys were read back once their stamp's second had ended, and matched
    (``LedgerEntry.sealed``)."""
    assert previous.hmac_key is not None
    key_text = previous.hmac_key.plaintext
    shown_key = keys.derive(key_text, keys.DISPLAY_DIGEST)
    trusted = previous.trusted
    present = spec.ensure is Ensure.PRESENT
    entries = _carried_entries(spec, previous)
    carried_intents = _carried_intents(previous)
    intents: dict[str, LedgerIntent] = {}
    if present:
        for key, value in spec.secrets.items():
            if key in unproven:
                continue
            if key in stamps:
                entries[key] = LedgerEntry(
                    key=key,
                    last_updated_ms=stamps[key],
                    hmac=diff.value_hmac(key_text, key, value.plaintext),
                    shown=mask(redact.describe(key, value, shown_key)),
                    sealed=key in sealed,
                )
            elif key in carried_intents:
                intents[key] = carried_intents[key]
    for key in sealed:  # an older entry sealed now: same stamp, same value, now proven
        if key in entries and key not in stamps and not entries[key].sealed:
            entries[key] = replace(entries[key], sealed=True)
    acls: dict[str, Permission] = {}
    if present:
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
    kept: dict[str, Permission] = dict(previous.kept) if trusted and present else {}
    if present and live is not None:
        identity = live.identity
        if identity and identity not in spec.acls:
            kept[identity] = Permission.MANAGE
        if adopting and live.scope_exists:
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
        intents=frozen_map(intents),
    )
