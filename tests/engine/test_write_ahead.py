"""The write-ahead ledger and stopping part way: a write cut off by a kill is pkgrepo's own
(low, rewritten, not counted by the safety threshold), anything else that changed is still
"modified outside pkgrepo"; a cancel or a lost lease stops new writes; the ledger records
only the grants actually written."""

from __future__ import annotations

import pytest

from reconciler.core import ledger as ledger_doc
from reconciler.core.errors import Cancelled, LeaseLost, WorkspaceError
from reconciler.core.model import (
    EXTRA_INDEX_URLS,
    INDEX_URL,
    Permission,
    SecretValue,
    Thresholds,
    WorkspaceSpec,
)
from reconciler.core.plan import Action, Drift, Severity, safety_of
from reconciler.edges.ledger_store import WorkspaceLedgerStore
from reconciler.engine.apply import ApplyOptions
from reconciler.engine.workspace import ApplyOutcome, WriteAhead, apply_workspace
from tests.engine.test_plan_apply import KEY, SALT, converge, plan, spec
from tests.support.clock import FakeClock
from tests.support.emulated_port import EmulatedWorkspace

NEW_URL = "https://bob:rotated-TOKEN-456@pypi.corp.example/simple"


class Killed(BaseException):
    """The process died here (SIGKILL): nothing after it runs, no finally writes."""


class DiesAfterPut(EmulatedWorkspace):
    """Lets ``puts`` secret puts through, then the process dies."""

    puts: int = 1

    def put_secret(self, key: str, value: SecretValue) -> None:
        super().put_secret(key, value)
        self.puts -= 1
        if self.puts <= 0:
            raise Killed


def kill_mid_rotation(
    fake: EmulatedWorkspace, ws: WorkspaceSpec, write_ahead: WriteAhead | None = None
) -> None:
    wplan, seen = plan(ws, fake)
    with pytest.raises(Killed):
        apply_workspace(
            ws,
            wplan,
            seen,
            fake,
            WorkspaceLedgerStore(),
            options=ApplyOptions(),
            clock=FakeClock(),
            salt=SALT,
            write_ahead=write_ahead,
        )


def converged_then_rotated() -> tuple[DiesAfterPut, WorkspaceSpec]:
    fake = DiesAfterPut()
    fake.puts = 1000
    converge(spec(), fake)
    fake.puts = 1
    rotated = spec({INDEX_URL: NEW_URL, EXTRA_INDEX_URLS: "https://a.example/simple"})
    return fake, rotated


def test_a_write_cut_off_by_a_kill_is_pkgrepos_own_interrupted_write() -> None:
    fake, rotated = converged_then_rotated()
    kill_mid_rotation(fake, rotated)  # the new index URL was put; its ledger entry never
    wplan, _ = plan(rotated, fake)
    (change,) = [c for c in wplan.changes if c.action is not Action.NOOP]
    assert change.drift is Drift.INTERRUPTED
    assert change.severity is Severity.LOW
    assert change.action is Action.UPDATE  # written again, to confirm it
    assert change.reason.startswith("interrupted write by pkgrepo (run unknown, at ")
    assert "rotated-TOKEN" not in repr(wplan)
    # Not counted by the safety threshold: ten keys, all interrupted, is still "safe".
    safety = safety_of([wplan] * 10, Thresholds())
    assert safety.keys_changed == 0 and safety.rotation is None
    assert safety.force_reasons == ()
    fake.puts = 1000
    converge(rotated, fake)
    assert not plan(rotated, fake)[0].has_changes


def test_without_the_write_ahead_entry_the_same_kill_reads_as_an_outside_change() -> None:
    """What the intent is for: the same state with the intents stripped is HIGH drift."""
    fake, rotated = converged_then_rotated()
    kill_mid_rotation(fake, rotated)
    stored = ledger_doc.parse(fake.ledger, workspace="ws", hmac_key=KEY)
    assert set(stored.intents) == {INDEX_URL}
    bare = ledger_doc.Ledger(entries=stored.entries, acls=stored.acls, hmac_key=KEY)
    fake.ledger = ledger_doc.render(bare, workspace="ws")
    (change,) = [c for c in plan(rotated, fake)[0].changes if c.action is not Action.NOOP]
    assert (change.drift, change.severity) == (Drift.MODIFIED_OUTSIDE, Severity.HIGH)


def test_an_edit_after_the_writes_window_is_still_modified_outside() -> None:
    fake, rotated = converged_then_rotated()
    kill_mid_rotation(fake, rotated, WriteAhead("r0123456789ab", fake.service_ms, 60))
    fake.advance(3600)  # an hour later, someone sets the same key by hand
    fake.edit(INDEX_URL, "https://evil.example/simple")
    (change,) = [c for c in plan(rotated, fake)[0].changes if c.action is not Action.NOOP]
    assert (change.drift, change.severity) == (Drift.MODIFIED_OUTSIDE, Severity.HIGH)


def test_an_interrupted_write_of_a_value_git_no_longer_wants_is_not_excused() -> None:
    fake, rotated = converged_then_rotated()
    kill_mid_rotation(fake, rotated)
    again = spec({INDEX_URL: "https://c:third@pypi.corp.example/simple"})
    changes = [c for c in plan(again, fake)[0].changes if c.action is not Action.NOOP]
    index = next(c for c in changes if c.address.name == INDEX_URL)
    assert index.drift is Drift.MODIFIED_OUTSIDE


# -- stopping part way ----------------------------------------------------------------------


def stop_after(writes: int, error: Exception) -> tuple[EmulatedWorkspace, ApplyOutcome]:
    fake = EmulatedWorkspace()
    ws = spec()
    wplan, seen = plan(ws, fake)

    def guard() -> None:
        if fake.calls["writes"] >= writes:
            raise error

    outcome = apply_workspace(
        ws,
        wplan,
        seen,
        fake,
        WorkspaceLedgerStore(),
        options=ApplyOptions(),
        clock=FakeClock(),
        salt=SALT,
        guard=guard,
        stop_errors=(Cancelled, LeaseLost),
    )
    return fake, outcome


def test_a_cancel_stops_new_writes_and_records_the_ledger_for_what_was_written() -> None:
    fake, outcome = stop_after(2, Cancelled("interrupted (SIGTERM)"))  # scope + one key
    assert isinstance(outcome.stopped, Cancelled)
    assert fake.calls["writes"] == 2
    assert [str(c.address) for c in outcome.applied] == [
        "ws/scope",
        "ws/secret/pip-extra-index-urls",
    ]
    assert {str(c.address) for c in outcome.remaining} == {
        "ws/secret/pip-index-url",
        "ws/acl/admins",
        "ws/acl/users",
    }
    stored = ledger_doc.parse(fake.ledger, workspace="ws", hmac_key=KEY)
    assert set(stored.entries) == {EXTRA_INDEX_URLS}  # confirmed
    assert set(stored.intents) == {INDEX_URL}  # begun, never sent
    left = {str(c.address): c.drift for c in plan(spec(), fake)[0].changes}
    assert left == {
        "ws/secret/pip-index-url": Drift.NEW,
        "ws/acl/admins": Drift.NEW,
        "ws/acl/users": Drift.NEW,
    }


def test_a_lost_lease_stops_new_writes_and_leaves_the_ledger_to_the_new_holder() -> None:
    fake, outcome = stop_after(2, LeaseLost("ws", "stopped writing here: taken over"))
    assert isinstance(outcome.stopped, LeaseLost)
    assert fake.calls["writes"] == 2
    stored = ledger_doc.parse(fake.ledger, workspace="ws", hmac_key=KEY)
    assert stored.entries == {}  # only the write-ahead document, written under the lease
    assert set(stored.intents) == {INDEX_URL, EXTRA_INDEX_URLS}


# -- the ACLs recorded are the ACLs written -----------------------------------------------


class RefusesGrant(EmulatedWorkspace):
    """The service refuses one principal (for good): the apply fails half way."""

    refused: str = "users"

    def put_acl(self, principal: str, permission: Permission) -> None:
        if principal == self.refused:
            self._op("put_acl")
            raise WorkspaceError("ws", f"put ACL {principal}: BAD_REQUEST")
        super().put_acl(principal, permission)


def test_a_half_failed_apply_records_only_the_grants_it_wrote() -> None:
    fake = RefusesGrant()
    ws = spec(
        acls={"admins": Permission.MANAGE, "data-eng": Permission.READ, "users": Permission.READ}
    )
    wplan, seen = plan(ws, fake)
    with pytest.raises(WorkspaceError, match="put ACL users"):
        apply_workspace(
            ws,
            wplan,
            seen,
            fake,
            WorkspaceLedgerStore(),
            options=ApplyOptions(),
            clock=FakeClock(),
            salt=SALT,
        )
    stored = ledger_doc.parse(fake.ledger, workspace="ws", hmac_key=KEY)
    assert dict(stored.acls) == {"admins": Permission.MANAGE, "data-eng": Permission.READ}
    fake.refused = "nobody"  # the operator fixed it (the principal now exists)
    users = next(c for c in plan(ws, fake)[0].changes if c.address.name == "users")
    assert (users.action, users.drift, users.reason) == (Action.CREATE, Drift.NEW, "new grant")
    assert "removed outside pkgrepo" not in repr(plan(ws, fake)[0])


def test_a_grant_pkgrepo_wrote_and_someone_removed_is_still_reported() -> None:
    fake = EmulatedWorkspace()
    converge(spec(), fake)
    fake.revoke("users")  # by another admin
    users = next(c for c in plan(spec(), fake)[0].changes if c.address.name == "users")
    assert users.drift is Drift.ACL_REMOVED
