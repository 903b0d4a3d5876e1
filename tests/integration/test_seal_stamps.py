"""Sealing and the service's stamps, through the real SDK against the emulator: a listing
without stamps seals nothing, a same-second re-put waits from its own listing, and a CLI-style
apply then plan in a fresh client reads no value."""

from __future__ import annotations

import math
import time

from databricks.sdk import WorkspaceClient
from databricks.sdk.service.workspace import SecretMetadata

from reconciler.core.model import EXTRA_INDEX_URLS, INDEX_URL, MARKER_KEY, SCOPE
from reconciler.core.plan import Action
from reconciler.edges.adapter import SdkWorkspace
from reconciler.emulator import EmulatorHandle
from tests.integration.test_engine_sdk import INDEX, apply, plan, port, spec

EVIL = "https://evil.example.net/simple"


def _gets(emu: EmulatorHandle) -> int:
    return emu.requests("ws1").get(("GET", "/api/2.0/secrets/get"), 0)


class _NoStamps(SdkWorkspace):
    """A listing whose entries carry no ``last_updated_timestamp`` (the field is optional in
    the SDK's ``SecretMetadata``; a proxy, an API variant or a scope type that leaves it out).
    The adapter reads the missing stamp as 0 (``int(s.last_updated_timestamp or 0)``)."""

    def __init__(self, inner: SdkWorkspace) -> None:
        self.__dict__.update(inner.__dict__)
        real = self.client.secrets.list_secrets

        def list_secrets(scope: str):  # type: ignore[no-untyped-def]
            return [SecretMetadata(key=s.key) for s in real(scope)]

        self.client.secrets.list_secrets = list_secrets  # type: ignore[method-assign]


def test_a_listing_without_timestamps_never_seals_a_stamp_of_zero(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """Every missing stamp becomes 0, so 'the listed stamp equals the sealed one' holds for
    every later write: once the first apply seals entries at 0 (and records marker_ms 0),
    no plan ever reads the index URL again, whatever is written to it. A correct pkgrepo
    treats a missing stamp as unknown: it never records, seals or proves it."""
    ws = spec(emu, admin_token)
    assert apply(ws, _NoStamps(port(ws))).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    time.sleep(1.1)
    client.secrets.put_secret(SCOPE, INDEX_URL, string_value=EVIL)
    emu.reset_counts("ws1")
    wplan, seen = plan(ws, _NoStamps(port(ws)))
    changes = {str(c.address): c.action for c in wplan.changes}
    entry = seen.ledger.entries.get(INDEX_URL)
    assert changes.get(f"ws1/secret/{INDEX_URL}") is Action.UPDATE, (
        f"plan says no change while the live index URL is {EVIL!r}: "
        f"entry stamp={entry and entry.last_updated_ms} sealed={entry and entry.sealed}, "
        f"marker_ms={seen.ledger.marker_ms}, secrets/get calls={_gets(emu)}"
    )


def test_a_same_second_repeat_put_waits_from_its_own_stamp_listing(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """The same-second re-put path (apply.py): the key was last written in the second the
    apply's put lands in, so pkgrepo puts it again 1.05 s later. A write racing right
    after the re-put's stamp listing, in that same second, falls before the read back (the
    wait runs from that listing): not sealed, and the next plan catches it."""
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    rotated = spec(
        emu,
        admin_token,
        secrets={
            INDEX_URL: INDEX + "?r=2",
            EXTRA_INDEX_URLS: ws.secrets[EXTRA_INDEX_URLS].plaintext,
        },
    )

    class RaceAfterRePut(SdkWorkspace):
        def __init__(self, inner: SdkWorkspace) -> None:
            self.__dict__.update(inner.__dict__)
            self.puts = 0
            self.raced = False

        def put_secret(self, key, value):  # type: ignore[no-untyped-def]
            super().put_secret(key, value)
            if key == INDEX_URL:
                self.puts += 1

        def list_secrets(self):  # type: ignore[no-untyped-def]
            listed = super().list_secrets()
            if self.puts == 2 and not self.raced:
                self.raced = True
                client.secrets.put_secret(SCOPE, INDEX_URL, string_value=EVIL)
            return listed

    delay = math.floor(time.time()) + 1.02 - time.time()
    time.sleep(delay)
    client.secrets.put_secret(SCOPE, INDEX_URL, string_value="hand edit")  # second S
    p = RaceAfterRePut(port(rotated))
    apply(rotated, p)
    assert p.puts == 2 and p.raced, (p.puts, p.raced)  # the re-put path was taken
    again, seen = plan(rotated)
    changes = {str(c.address): c.action for c in again.changes}
    assert changes.get(f"ws1/secret/{INDEX_URL}") is Action.UPDATE
    entry = seen.ledger.entries.get(INDEX_URL)
    assert entry is None or not entry.sealed


def test_cli_style_apply_then_fresh_port_plan_reads_no_value(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """A first apply, then a plan from a fresh port (as a separate CLI run): the marker is
    written after the seal and its stamp recorded in the same ledger write, so the very
    next plan proves both keys: no secrets/get, no scopes/list."""
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    emu.reset_counts("ws1")
    wplan, seen = plan(ws)
    reads = emu.requests("ws1")
    assert not wplan.needs_apply
    assert _gets(emu) == 0
    assert reads.get(("GET", "/api/2.0/secrets/scopes/list"), 0) == 0
    assert seen.ledger.marker_ms == seen.live.secrets[MARKER_KEY].last_updated_ms
