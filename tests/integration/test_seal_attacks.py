"""Attacks on sealed ledger entries (real SDK, emulator on loopback): races with the seal,
cancels and failures during it, replayed ledgers, replaced scopes. Each test asserts what a
correct pkgrepo must do."""

from __future__ import annotations

import math
import threading
import time

from databricks.sdk import WorkspaceClient

from reconciler.core.errors import Cancelled
from reconciler.core.model import EXTRA_INDEX_URLS, INDEX_URL, MARKER_KEY, SCOPE, SecretValue
from reconciler.core.plan import Action
from reconciler.edges.adapter import SdkWorkspace
from reconciler.edges.ledger_store import WorkspaceLedgerStore
from reconciler.emulator import EmulatorHandle, ServiceModes
from reconciler.engine.clock import InterruptibleClock, SystemClock
from reconciler.engine.workspace import apply_workspace
from tests.integration.test_engine_sdk import FAST, INDEX, SALT, apply, plan, port, spec

NEW_INDEX = "https://ci:rotated-Secret-77aa@artifactory.example.com/api/pypi/remote/simple"
EVIL = "https://evil.example.net/simple"


def _sleep_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


class _SlowStampAndRacingWriter(SdkWorkspace):
    """Another writer (an admin who can read the value: get answers here) races pkgrepo's
    apply. pkgrepo's put lands at S+0.2; the listing that reads its stamp comes back only in
    the next second S+1 (a throttled or slow ``secrets/list``: 429 + Retry-After, latency),
    and just before it the other writer writes the *desired* value again (stamp S+1). Right
    after pkgrepo's seal read back the writer puts its own value: were the read back still
    in second S+1 (a wait counted from the put, not from the listing), that write would
    carry the sealed stamp."""

    def __init__(self, inner: SdkWorkspace, admin_token: str) -> None:
        self.__dict__.update(inner.__dict__)
        self._other = WorkspaceClient(host=inner.client.config.host, token=admin_token)
        self._phase = "before-put"
        self._second = 0

    def put_secret(self, key, value):  # type: ignore[no-untyped-def]
        if key == INDEX_URL and self._phase == "before-put":
            now = time.time()
            _sleep_until(math.floor(now) + 1.2)  # land the put at 0.2 s into a second
            self._second = math.floor(time.time())
            super().put_secret(key, value)
            self._phase = "stamp"
            return
        super().put_secret(key, value)

    def list_secrets(self):  # type: ignore[no-untyped-def]
        if self._phase == "stamp":
            self._phase = "seal"
            _sleep_until(self._second + 1.02)  # the stamp listing is slow ...
            # ... and meanwhile someone writes the desired value once more: stamp S+1
            self._other.secrets.put_secret(SCOPE, INDEX_URL, string_value=NEW_INDEX)
            return super().list_secrets()
        if self._phase == "seal" and self.get_answers:
            self._phase = "done"
            listed = super().list_secrets()
            self._other.secrets.put_secret(SCOPE, INDEX_URL, string_value=EVIL)
            return listed
        return super().list_secrets()


def test_a_late_stamp_listing_delays_the_seal_so_a_racing_write_is_caught(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """The stamp sealed is the one a listing returned after the put; when that listing is
    late, the stamp can be a later second's (another writer's). The wait is counted from
    that listing, so the read back falls after that second too, and a write right after it
    carries a later stamp: it is read back and caught."""
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    rotated = spec(
        emu,
        admin_token,
        secrets={INDEX_URL: NEW_INDEX, EXTRA_INDEX_URLS: ws.secrets[EXTRA_INDEX_URLS].plaintext},
    )
    p = _SlowStampAndRacingWriter(port(rotated), admin_token)
    outcome = apply(rotated, p)
    assert p._phase == "done", p._phase
    live = emu.backend("ws1").secret_value(SCOPE, INDEX_URL).decode()
    assert live == EVIL  # the service holds the other writer's value
    again, seen = plan(rotated)
    entry = seen.ledger.entries[INDEX_URL]
    changes = {str(c.address): c.action for c in again.changes}
    # What a correct pkgrepo must say: the index URL differs from Git (get answers here).
    assert changes.get(f"ws1/secret/{INDEX_URL}") is Action.UPDATE, (
        f"plan says no change while the live index URL is {live!r}; "
        f"entry sealed={entry.sealed}, apply converged={outcome.converged}"
    )


def test_a_rewritten_marker_does_not_force_rewrites_where_values_can_be_read(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """A signed ledger whose marker stamp no longer matches ('an older copy was restored,
    or the marker key was rewritten') proves nothing: the values are read back and
    compared, so keys whose values match Git are not planned as 'cannot be verified:
    written again'."""
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    time.sleep(1.1)
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    client.secrets.put_secret(SCOPE, MARKER_KEY, string_value="rewritten")
    emu.reset_counts("ws1")
    wplan, _ = plan(ws)
    secret_changes = [str(c.address) for c in wplan.changes if c.address.kind.name == "SECRET"]
    gets = emu.requests("ws1").get(("GET", "/api/2.0/secrets/get"), 0)
    assert secret_changes == [], (secret_changes, f"secrets/get calls: {gets}")


def test_a_first_apply_where_get_is_refused_probes_once_and_does_not_wait(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """The plan of a first apply (no keys yet) cannot tell whether secrets/get answers: one
    probe decides, and where it is refused the seal's 1.1 s wait is skipped."""
    emu.set_modes("ws1", ServiceModes(rest_get="refused"))
    ws = spec(emu, admin_token)
    slept: list[float] = []

    class Recording(SystemClock):
        def sleep(self, seconds: float) -> None:
            slept.append(seconds)
            super().sleep(seconds)

    p = port(ws)
    wplan, seen = plan(ws, p)
    emu.reset_counts("ws1")
    outcome = apply_workspace(
        ws,
        wplan,
        seen,
        p,
        WorkspaceLedgerStore(),
        options=FAST,
        clock=SystemClock(),
        work_clock=Recording(),
        salt=SALT,
    )
    assert outcome.converged
    gets = emu.requests("ws1").get(("GET", "/api/2.0/secrets/get"), 0)
    assert (gets <= 1, [s for s in slept if s > 0.5]) == (True, []), (gets, slept)


def test_an_interrupt_during_the_seal_wait_is_not_reported_as_an_interrupted_apply(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """Every change is applied; Ctrl-C arrives during the 1.1 s seal wait. Sealing is
    optional work: nothing is sealed, the outcome is not 'stopped' (no 'interrupted: N of
    N change(s) applied; not applied: '), and the scope's marker is written on a first
    apply."""
    ws = spec(emu, admin_token)
    event = threading.Event()

    def guard() -> None:
        if event.is_set():
            raise Cancelled("interrupted")

    class CancelAfterLastPut(SdkWorkspace):
        def __init__(self, inner: SdkWorkspace) -> None:
            self.__dict__.update(inner.__dict__)

        def read_values(self, keys):  # type: ignore[no-untyped-def]
            return super().read_values(keys)

    p = CancelAfterLastPut(port(ws))
    wplan, seen = plan(ws, p)
    real_put = p.put_secret

    def put_then_interrupt(key, value):  # type: ignore[no-untyped-def]
        real_put(key, value)
        if key == INDEX_URL:  # the last put of this plan (keys in sorted order)
            threading.Timer(0.4, event.set).start()

    p.put_secret = put_then_interrupt  # type: ignore[method-assign]
    outcome = apply_workspace(
        ws,
        wplan,
        seen,
        p,
        WorkspaceLedgerStore(),
        options=FAST,
        clock=SystemClock(),
        work_clock=InterruptibleClock(SystemClock(), event),
        salt=SALT,
        guard=guard,
        stop_errors=(Cancelled,),
    )
    keys = {
        s.key
        for s in WorkspaceClient(host=emu.host("ws1"), token=admin_token).secrets.list_secrets(
            SCOPE
        )
    }
    assert (outcome.stopped, outcome.remaining, MARKER_KEY in keys) == (None, (), True), (
        outcome.stopped,
        [str(c.address) for c in outcome.applied],
        keys,
    )


def test_an_unexpected_error_reading_back_for_the_seal_does_not_fail_a_converged_apply(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """The read back answering garbage (a proxy's body: binascii.Error from b64decode is a
    ValueError) after every change was applied seals nothing and fails nothing: the
    apply converged."""
    ws = spec(emu, admin_token)

    class Garbage(SdkWorkspace):
        def __init__(self, inner: SdkWorkspace) -> None:
            self.__dict__.update(inner.__dict__)

        def read_values(self, keys):  # type: ignore[no-untyped-def]
            import base64

            base64.b64decode("not*base64", validate=True)

    p = Garbage(port(ws))
    outcome = apply(ws, p)
    assert outcome.converged


def test_replaying_an_older_sealed_ledger_vouches_for_nothing_live(
    emu: EmulatorHandle, admin_token: str
) -> None:
    ws = spec(emu, admin_token)
    p = port(ws)
    assert apply(ws, p).converged
    old = p._ledger()
    assert old is not None and b'"sealed": true' in old
    rotated = spec(
        emu,
        admin_token,
        secrets={INDEX_URL: NEW_INDEX, EXTRA_INDEX_URLS: ws.secrets[EXTRA_INDEX_URLS].plaintext},
    )
    assert apply(rotated).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    client.secrets.put_secret(SCOPE, INDEX_URL, string_value=INDEX)  # back to the old value
    p.write_ledger(old)  # the admin restores the older signed ledger
    changes = {str(c.address): c.action for c in plan(rotated)[0].changes}
    assert changes.get(f"ws1/secret/{INDEX_URL}") is Action.UPDATE


def test_scope_deleted_and_recreated_with_other_values_is_caught(
    emu: EmulatorHandle, admin_token: str
) -> None:
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    client.secrets.delete_scope(SCOPE)
    client.secrets.create_scope(SCOPE)
    client.secrets.put_secret(SCOPE, INDEX_URL, string_value=EVIL)
    client.secrets.put_secret(SCOPE, EXTRA_INDEX_URLS, string_value=EVIL)
    changes = {str(c.address): c.action for c in plan(ws)[0].changes}
    assert changes.get(f"ws1/secret/{INDEX_URL}") is Action.UPDATE


def test_key_deleted_and_recreated_is_caught(emu: EmulatorHandle, admin_token: str) -> None:
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    client.secrets.delete_secret(SCOPE, INDEX_URL)
    client.secrets.put_secret(SCOPE, INDEX_URL, string_value=EVIL)
    changes = {str(c.address): c.action for c in plan(ws)[0].changes}
    assert changes.get(f"ws1/secret/{INDEX_URL}") is Action.UPDATE


def test_millis_stamps_seal_and_a_later_edit_is_caught(
    emu: EmulatorHandle, admin_token: str
) -> None:
    emu.set_modes("ws1", ServiceModes(timestamps="millis"))
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    client.secrets.put_secret(SCOPE, INDEX_URL, string_value=EVIL)
    changes = {str(c.address): c.action for c in plan(ws)[0].changes}
    assert changes.get(f"ws1/secret/{INDEX_URL}") is Action.UPDATE


def test_a_ledger_under_the_previous_key_still_proves_and_a_wrong_key_does_not(
    emu: EmulatorHandle, admin_token: str
) -> None:
    from reconciler.edges.ledger_store import WorkspaceLedgerStore as Store
    from reconciler.engine.workspace import plan_workspace

    ws = spec(emu, admin_token)
    assert apply(ws).converged
    emu.reset_counts("ws1")
    wplan, seen = plan_workspace(
        ws,
        port(ws),
        Store(),
        SecretValue("new-key"),
        salt=SALT,
        previous_key=SecretValue("integration-ledger-key"),
    )
    assert seen.ledger.rotating and not wplan.changes
    assert emu.requests("ws1").get(("GET", "/api/2.0/secrets/get"), 0) == 0
    emu.reset_counts("ws1")
    wplan, seen = plan_workspace(ws, port(ws), Store(), SecretValue("wrong-key"), salt=SALT)
    assert not seen.ledger.trusted
    assert emu.requests("ws1").get(("GET", "/api/2.0/secrets/get"), 0) == 2  # read back


def test_a_scope_replaced_by_a_key_vault_scope_is_seen_as_key_vault_backed(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """A Key Vault scope re-created under the package scope's name, whose vault secrets
    were last updated in the same second as pkgrepo's sealed writes (Key Vault's `updated`
    is whole seconds too; modelled with the emulator's clock standing still), lacks the
    marker at the recorded stamp: nothing is proven, scopes/list is asked, and the plan
    sees a Key Vault backed scope."""
    from reconciler.core.model import Backend
    from reconciler.emulator import KeyVault

    emu.backend("ws1").set_clock(lambda: 1_800_000_000.5)
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    client.secrets.delete_scope(SCOPE)
    emu.set_modes(
        "ws1",
        ServiceModes(
            backend="azure_keyvault",
            keyvault=KeyVault(secrets={INDEX_URL: EVIL, EXTRA_INDEX_URLS: EVIL}),
        ),
    )
    wplan, seen = plan(ws)
    changes = {str(c.address): c.action for c in wplan.changes}
    assert seen.live.backend is Backend.AZURE_KEYVAULT, (seen.live.backend, changes, wplan.warnings)


def test_entries_recorded_unsealed_are_sealed_by_the_next_apply(
    emu: EmulatorHandle, admin_token: str
) -> None:
    """Entries recorded unsealed (written while get was refused, or by an older pkgrepo):
    the plan reads the values back, finds them as declared, and says the next apply seals
    them without rewriting any value; after that apply, plans read no value."""
    emu.set_modes("ws1", ServiceModes(rest_get="refused"))
    ws = spec(emu, admin_token)
    assert apply(ws).converged
    emu.set_modes("ws1", ServiceModes())  # get answers now (or: pkgrepo was upgraded)
    wplan, seen = plan(ws)
    assert not wplan.has_changes and wplan.needs_apply
    assert "seals 2 value(s)" in (wplan.ledger_update or "")
    stamps = {k: s.last_updated_ms for k, s in seen.live.secrets.items()}
    assert apply(ws).converged
    client = WorkspaceClient(host=emu.host("ws1"), token=admin_token)
    after = {s.key: s.last_updated_timestamp for s in client.secrets.list_secrets(SCOPE)}
    assert after[INDEX_URL] == stamps[INDEX_URL]  # sealed, not rewritten
    emu.reset_counts("ws1")
    again, seen = plan(ws)
    assert not again.needs_apply
    assert emu.requests("ws1").get(("GET", "/api/2.0/secrets/get"), 0) == 0
    assert seen.ledger.entries[INDEX_URL].sealed
