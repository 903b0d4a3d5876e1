"""A run that takes a lock over inside a scope it did not create claims only once the
scope's ACLs show no untrusted writer left: a failed ACL read there must not let two runs
hold the lock (found by a hostile review)."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.errors import TransientError
from reconciler.core.model import Permission
from reconciler.engine.lock import WorkspaceLock
from tests.support.clock import FakeClock
from tests.support.emulated_port import DEPLOYER, PLAIN_USER, EmulatedWorkspace

TRUSTED = frozenset({DEPLOYER, "admins"})


class LookupFails:
    """A run whose lookup of the user fails (it honours the user's lock), and whose ACL
    read fails once while it takes the lock over."""

    def __init__(self, fake: EmulatedWorkspace) -> None:
        self.fake = fake
        self.reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.fake, name)

    def admin_status(self, principal: str) -> bool | str:
        return "the lookup failed: TemporarilyUnavailable"

    def lock_writers(self) -> Mapping[str, Permission] | None:
        self.reads += 1
        if self.reads == 2:
            raise TransientError("blip")
        return self.fake.lock_writers()


def test_a_failed_acl_read_while_taking_over_claims_only_once_the_user_is_gone() -> None:
    """Had the run claimed with the user still a writer, another run's revoke of that user
    would remove this run's holder key as the user's, and both would hold the lock."""
    fake = EmulatedWorkspace(identity=DEPLOYER)
    user = fake.as_principal(PLAIN_USER)  # a plain user made the lock scope and holds it
    assert user.lock_create()
    user.lock_put("holder.ruser.lease.5")
    run = WorkspaceLock(
        "prod", LookupFails(fake), FakeClock(), run="rc", heartbeat=False, trusted=TRUSTED
    )  # type: ignore[arg-type]
    run.acquire()
    assert run.held
    assert PLAIN_USER not in (fake.lock_writers() or {})


def test_a_lock_scope_without_its_creators_grant_is_waited_for_one_lease_at_most() -> None:
    """A user made the lock scope, wrote a holder key declaring a ten-minute lease and then
    dropped their own grant, so no untrusted writer shows. No pkgrepo run makes such a
    scope: its holder is waited for this run's lease at most, and the run says why."""
    fake = EmulatedWorkspace(identity=DEPLOYER)
    user = fake.as_principal(PLAIN_USER)
    assert user.lock_create()
    user.lock_put("holder.ruser.lease.600")
    assert user.lock_revoke(PLAIN_USER)  # the user drops their own grant
    clock = FakeClock()
    run = WorkspaceLock(
        "prod", fake, clock, run="rc", heartbeat=False, lease_seconds=60, trusted=TRUSTED
    )
    started = clock.monotonic()
    run.acquire()
    assert run.held
    assert clock.monotonic() - started < 120  # not the 600 s the key declares
