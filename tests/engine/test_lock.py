"""The leased apply lock: a live holder is waited for, a silent one is taken over after a
whole lease on the waiter's own clock, a holder that cannot renew stops writing in time,
clock offsets change nothing, races have one winner, and force-unlock.

Driven by a fake clock, with renewals made by hand (``heartbeat=False``): the test decides
exactly when the holder renews. The workspace is an emulated one in this process (the
emulator's backends behind the port), its service clock following the fake clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from reconciler.core.errors import LeaseLost, LockHeld
from reconciler.core.model import LiveSecret, Permission
from reconciler.emulator import AclLevel
from reconciler.engine.lock import (
    LOCK_SCOPE,
    MAX_LEASE_SECONDS,
    MAX_LOOKUPS,
    WorkspaceLock,
    beat_key,
    force_unlock,
    holder_key,
    parse_holder,
)
from tests.support.clock import FakeClock
from tests.support.emulated_port import COLLEAGUE, MALLORY, EmulatedService, EmulatedWorkspace


def workspace(clock: FakeClock, **kwargs: object) -> EmulatedWorkspace:
    """An emulated workspace whose service clock is ``clock``'s wall clock."""
    return EmulatedWorkspace(clock=clock.time, **kwargs)  # type: ignore[arg-type]


def holder(fake: EmulatedWorkspace) -> str:
    found = parse_holder(fake.lock_keys() or {})
    assert found is not None
    return found.run


def lock(fake: EmulatedWorkspace, clock: FakeClock, run: str, **kwargs: object) -> WorkspaceLock:
    return WorkspaceLock("prod", fake, clock, run=run, heartbeat=False, **kwargs)  # type: ignore[arg-type]


@dataclass
class BeatingClock(FakeClock):
    """A fake clock that lets a holder renew every ``every`` seconds while others sleep."""

    every: float = 20.0
    renew: Callable[[], object] | None = None
    _since: float = 0.0

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self._since += seconds
        if self.renew is not None and self._since >= self.every:
            self._since = 0.0
            self.renew()


@dataclass
class OffsetClock(FakeClock):
    """A runner whose wall clock is ``offset`` seconds off (monotonic time is unaffected)."""

    offset: float = 0.0
    base: FakeClock = field(default_factory=FakeClock)

    def monotonic(self) -> float:
        return self.base.monotonic()

    def time(self) -> float:
        return self.base.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)


def test_a_live_holder_is_waited_for_then_named_with_its_lease() -> None:
    clock = BeatingClock()
    fake = workspace(clock)
    first = lock(fake, clock, "r1a2b3c", lease_seconds=60)
    first.acquire()
    clock.renew = first.renew  # the holder keeps renewing every 20 s
    second = lock(fake, clock, "r9f8e7d", lease_seconds=60, wait_seconds=200)
    with pytest.raises(LockHeld) as raised:
        second.acquire()
    message = str(raised.value)
    assert message.startswith("prod: locked by run r1a2b3c since 2023-11-14 22:13:20 UTC")
    assert "lease 60s, not renewed for " in message and "runs out at " in message
    assert "force-unlock --workspace prod" in message
    assert sum(clock.slept) >= 200  # it waited the whole wait, and never took over
    assert holder(fake) == "r1a2b3c"
    first.release()
    second.acquire()  # free again
    assert holder(fake) == "r9f8e7d"


def test_a_holder_that_stops_renewing_is_taken_over_after_one_lease_of_the_waiters_time() -> None:
    clock = FakeClock()
    fake = workspace(clock)
    lock(fake, clock, "rdead", lease_seconds=60).acquire()  # then the run is killed
    waiter = lock(fake, clock, "rnext", lease_seconds=60, wait_seconds=0)
    waiter.acquire()  # a silent holder is waited out however short the wait asked for
    assert holder(fake) == "rnext"
    assert 60 <= sum(clock.slept) <= 63
    assert sorted(fake.lock or {}) == [beat_key("rnext"), holder_key("rnext", 60)]


def test_a_renewal_seen_late_restarts_the_waiters_count() -> None:
    clock = BeatingClock(every=30)
    fake = workspace(clock)
    first = lock(fake, clock, "rslow", lease_seconds=60)
    first.acquire()
    renewals = [0]

    def renew_twice() -> None:
        if renewals[0] < 2:
            renewals[0] += 1
            first.renew()

    clock.renew = renew_twice  # renews at 30 s and 60 s, then dies
    waiter = lock(fake, clock, "rnext", lease_seconds=60, wait_seconds=150)
    waiter.acquire()
    assert holder(fake) == "rnext"
    assert 120 <= sum(clock.slept) <= 123  # the last renewal was seen at 60 s


def test_a_clock_offset_of_hours_between_runners_changes_nothing() -> None:
    base = BeatingClock()
    fake = EmulatedWorkspace(clock=base.time, offset=-7 * 3600)  # the service: 7 h behind
    ahead = OffsetClock(offset=+5 * 3600, base=base)
    behind = OffsetClock(offset=-9 * 3600, base=base)
    first = WorkspaceLock("prod", fake, ahead, run="rahead", heartbeat=False)
    first.acquire()
    base.renew = first.renew
    # A waiter whose wall clock is 14 hours behind the holder's never takes a live lock...
    with pytest.raises(LockHeld):
        WorkspaceLock(
            "prod", fake, behind, run="rbehind", heartbeat=False, wait_seconds=300
        ).acquire()
    assert holder(fake) == "rahead"
    first.check()  # ...and the holder, renewing, still holds it
    # ...and once the holder is gone, takes it after exactly one lease, as any runner would.
    base.renew = None
    started = base.now
    WorkspaceLock("prod", fake, behind, run="rbehind", heartbeat=False, wait_seconds=0).acquire()
    assert holder(fake) == "rbehind"
    assert 60 <= base.now - started <= 63


def test_a_holder_that_cannot_renew_stops_writing_before_its_lease_could_pass() -> None:
    clock = FakeClock()
    fake = workspace(clock)
    mine = lock(fake, clock, "rmine", lease_seconds=60)
    acquired_at = clock.now
    mine.acquire()
    mine.check()
    fake.fail("secrets/put", 1000)  # the service stops answering renewals
    while True:
        assert mine.renew() is False
        try:
            mine.check()
        except LeaseLost as exc:
            assert "stopped writing here: could not renew the lock within its 60s lease" in str(exc)
            break
        clock.sleep(1)
    # It stopped a margin before anyone could take over (a whole lease after the last
    # record change any waiter could have seen, which is no earlier than the acquisition).
    assert clock.now - acquired_at <= 60 - mine.margin
    fake.heal()
    assert mine.renew() is False  # never resumes, even once renewals work again
    with pytest.raises(LeaseLost):
        mine.check()


def test_a_holder_whose_lock_was_taken_over_learns_it_at_its_next_renewal() -> None:
    clock = FakeClock()
    fake = workspace(clock)
    mine = lock(fake, clock, "rmine", lease_seconds=60)
    mine.acquire()
    force_unlock(fake)
    lock(fake, clock, "rother", lease_seconds=60).acquire()
    assert mine.renew() is False
    with pytest.raises(LeaseLost, match="taken over by run rother"):
        mine.check()
    mine.release()  # leaves the other run's lock alone
    assert holder(fake) == "rother"


class StaleView(EmulatedWorkspace):
    """A waiter that read the holders just before a rival claimed the lock."""

    stale: Mapping[str, LiveSecret] | None = None

    def lock_keys(self) -> Mapping[str, LiveSecret] | None:
        if self.stale is not None:
            view, self.stale = self.stale, None
            return view
        return super().lock_keys()


def test_only_one_of_two_waiters_takes_over_a_silent_lock() -> None:
    clock = FakeClock()
    fake = StaleView(clock=clock.time)
    lock(fake, clock, "rdead", lease_seconds=60).acquire()
    dead_keys = dict(fake.lock_keys() or {})
    lock(fake, clock, "rfirst", wait_seconds=0).acquire()  # took over after a lease
    # The second waiter watched the same dead record for a lease, and its last read was
    # sent just before the first one claimed: its delete of the dead key finds it gone.
    second = lock(fake, clock, "rsecond", wait_seconds=0)
    fake.stale = dead_keys
    dead = parse_holder(dead_keys)
    assert dead is not None
    acquired, _ = second._step(None, dead.record, clock.now - 61)
    assert acquired is False
    assert holder(fake) == "rfirst"
    assert sorted(fake.lock or {}) == sorted([holder_key("rfirst", 60), beat_key("rfirst")])


def test_a_lock_without_a_holder_is_taken_over_after_a_grace_period() -> None:
    clock = FakeClock()
    fake = workspace(clock)
    assert fake.lock_create()  # a run died between creating the scope and naming itself
    lock(fake, clock, "rnext", wait_seconds=30).acquire()
    assert holder(fake) == "rnext"
    assert 10 <= sum(clock.slept) < 30


def test_of_two_claims_the_earlier_key_wins_and_the_other_withdraws() -> None:
    clock = FakeClock()
    fake = workspace(clock)
    assert fake.lock_create()
    fake.lock_put(holder_key("rrival", 60))  # the rival wrote first
    late = lock(fake, clock, "rlate", wait_seconds=0)
    assert late._claim() is False  # the step a racing claimer takes
    assert holder(fake) == "rrival"
    assert list(fake.lock or {}) == [holder_key("rrival", 60)]


def test_release_removes_the_lock_and_stops_renewing() -> None:
    clock = FakeClock()
    fake = workspace(clock)
    mine = lock(fake, clock, "rmine")
    mine.acquire()
    mine.release()
    assert fake.lock_keys() is None
    assert mine.renew() is False or fake.lock_keys() is None


@pytest.mark.parametrize(
    "keys",
    [
        {"holder.rhuge.lease.999999999": 1},
        # ("holder.!!!.lease.60" cannot exist: the service refuses "!" in a key name)
        {"holder.rneg.lease.-5": 1, "holder.-_-.lease.60": 2, "garbage": 3},
        {"holder..lease.": 1, "beat.": 2, "holder.x.ttl.99999999999999999999": 3},
    ],
    ids=["huge-lease", "malformed", "empty-parts"],
)
def test_a_hand_written_lock_key_never_crashes_and_holds_at_most_the_maximum_lease(
    keys: dict[str, int],
) -> None:
    clock = FakeClock()
    fake = workspace(clock)
    hand = fake.as_principal(COLLEAGUE)  # an admin writes the keys by hand
    assert hand.lock_create()
    for key in keys:
        hand.lock_put(key)
    waiter = lock(fake, clock, "rnext", wait_seconds=0)
    waiter.acquire()
    assert holder(fake) == "rnext"
    assert sum(clock.slept) <= MAX_LEASE_SECONDS + 3


def test_force_unlock_removes_any_lock_and_reports_the_holder() -> None:
    clock = FakeClock()
    fake = workspace(clock)
    lock(fake, clock, "rstuck").acquire()
    found = force_unlock(fake)
    assert found is not None and found.run == "rstuck"
    assert fake.lock_keys() is None
    assert force_unlock(fake) is None


def test_a_lock_taken_by_an_earlier_version_is_honoured_for_its_time_to_live() -> None:
    clock = FakeClock()
    fake = workspace(clock)
    assert fake.lock_create()
    fake.lock_put("holder.ci_runner-1.4242.ttl.900")  # user@host.pid, 15 minutes
    first = parse_holder(fake.lock_keys() or {})
    assert first is not None and first.run == "ci_runner-1.4242"
    assert first.lease_seconds == MAX_LEASE_SECONDS  # bounded like any other lease
    lock(fake, clock, "rnew", wait_seconds=0).acquire()  # waited out, never taken at once
    assert holder(fake) == "rnew"
    assert MAX_LEASE_SECONDS <= sum(clock.slept) <= MAX_LEASE_SECONDS + 3


class Exploding(EmulatedWorkspace):
    def lock_put(self, key: str) -> None:
        if key.startswith("beat.") and self.calls["lock_put"] >= 2:
            raise RuntimeError("a failure nobody mapped")
        super().lock_put(key)


def test_an_unexpected_failure_of_a_renewal_is_a_failed_renewal_not_a_crash() -> None:
    clock = FakeClock()
    fake = Exploding(clock=clock.time)
    mine = lock(fake, clock, "rmine", lease_seconds=60)
    mine.acquire()
    assert mine.renew() is False  # no exception escapes the heartbeat
    clock.sleep(60)
    with pytest.raises(LeaseLost):
        mine.check()


def test_a_live_holder_with_a_long_lease_is_waited_for_only_as_long_as_asked() -> None:
    clock = BeatingClock(every=5)
    fake = workspace(clock)
    first = lock(fake, clock, "rlong", lease_seconds=600)
    first.acquire()
    clock.renew = first.renew
    with pytest.raises(LockHeld, match=r"waited 3[0-2]s"):
        lock(fake, clock, "rnext", wait_seconds=30).acquire()
    assert 30 <= sum(clock.slept) <= 32  # not the 600 s of its lease


# -- a lock scope made by someone pkgrepo does not trust -------------------------------------

TRUSTED = frozenset({"deployer@example.com", "admins"})


class RacingView(StaleView):
    """A second run that read the lock scope's keys and ACLs just before a first run took
    the scope away from the user who made it."""

    stale_writers: Mapping[str, Permission] | None = None

    def lock_writers(self) -> Mapping[str, Permission] | None:
        if self.stale_writers is not None:
            view, self.stale_writers = self.stale_writers, None
            self._op("lock_writers")
            return view
        return super().lock_writers()


def users_lock(fake: EmulatedWorkspace) -> EmulatedWorkspace:
    """Mallory, a plain user, creates the lock scope and holds it on a long lease."""
    mallory = fake.as_principal(MALLORY)
    assert mallory.lock_create()
    mallory.lock_put(holder_key("rmallory", 600))
    mallory.lock_put(beat_key("rmallory"))
    return mallory


def revoked(fake: EmulatedWorkspace) -> set[str]:
    """Of those who ever held a grant on the lock scope (its creator), who has none now."""
    return {MALLORY} - set(fake.lock_grants() or {})


def test_a_users_lock_is_taken_away_and_claimed_at_once() -> None:
    clock = FakeClock()
    fake = workspace(clock)
    users_lock(fake)
    lock(fake, clock, "rmine", trusted=TRUSTED, wait_seconds=0).acquire()
    assert holder(fake) == "rmine"
    assert sum(clock.slept) == 0  # no lease of the user's was waited out
    assert revoked(fake) == {MALLORY}


def test_of_two_runs_that_find_a_users_lock_only_one_removes_it() -> None:
    """The second run read the user's keys and grant before the first revoked it: its own
    revoke finds nothing, so it removes nothing (least of all the first run's new holder
    key) and waits for the first run like any other holder."""
    clock = BeatingClock()
    fake = RacingView(clock=clock.time)
    users_lock(fake)
    users_keys = dict(fake.lock_keys() or {})
    users_grant = dict(fake.lock_writers() or {})
    first = lock(fake, clock, "rfirst", trusted=TRUSTED)
    first.acquire()
    assert clock.slept == []  # the user's lease was not waited out
    clock.renew = first.renew  # the first run is alive and keeps renewing
    second = lock(fake, clock, "rsecond", trusted=TRUSTED, wait_seconds=30)
    fake.stale, fake.stale_writers = users_keys, users_grant
    with pytest.raises(LockHeld, match="locked by run rfirst"):
        second.acquire()
    assert holder(fake) == "rfirst"
    assert sorted(fake.lock or {}) == sorted([holder_key("rfirst", 60), beat_key("rfirst")])


def test_a_writer_whose_admin_status_is_unknown_is_honoured_while_renewed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = BeatingClock()
    fake = workspace(clock)
    mallory = users_lock(fake)
    fake.admin_status = lambda principal: "the lookup failed: refused"  # type: ignore[method-assign]
    clock.renew = lambda: mallory.lock_put(beat_key("rmallory"))  # the user keeps renewing
    with pytest.raises(LockHeld, match="locked by run rmallory"), caplog.at_level("WARNING"):
        lock(fake, clock, "rmine", trusted=TRUSTED, wait_seconds=30).acquire()
    assert revoked(fake) == set()
    assert (
        caplog.text.count(
            "created by mallory@example.com, which is neither pkgrepo's identity nor a manager of "
            "the managed scope, and whether it is a workspace admin could not be checked "
            "(the lookup failed: refused)"
        )
        == 1
    )


class ChurningUser(EmulatedWorkspace):
    """The user rewrites a holder key under a new name just before its access is revoked."""

    def lock_revoke(self, principal: str) -> bool:
        mallory = self.as_principal(MALLORY)
        if holder_key("rmallory", 600) in (mallory.lock_keys() or {}):
            mallory.lock_delete_key(holder_key("rmallory", 600))
            mallory.lock_put(holder_key("rmallory2", 600))
        return super().lock_revoke(principal)


def test_a_holder_key_slipped_in_during_the_revoke_holds_no_longer_than_a_lease_of_ours() -> None:
    clock = FakeClock()
    fake = ChurningUser(clock=clock.time)
    users_lock(fake)
    lock(fake, clock, "rmine", trusted=TRUSTED, lease_seconds=60, wait_seconds=0).acquire()
    assert holder(fake) == "rmine"
    assert 60 <= sum(clock.slept) <= 63  # not the 600 s the user's key declares


PADDING = tuple(f"a{i:02d}-admin@example.com" for i in range(MAX_LOOKUPS))
"""Workspace admins whose names sort before the user's."""


def test_a_writer_list_padded_with_admins_does_not_hide_the_user() -> None:
    """The user granted WRITE on her lock scope to many admins (names sorting before her
    own) to push herself past the writers pkgrepo looks up."""
    clock = FakeClock()
    fake = EmulatedWorkspace(EmulatedService(clock=clock.time, admins=PADDING))
    mallory = users_lock(fake)
    for admin in PADDING:
        mallory.secrets.put_acl(mallory.caller, LOCK_SCOPE, admin, AclLevel.WRITE)
    lock(fake, clock, "rmine", trusted=TRUSTED, wait_seconds=0).acquire()
    assert holder(fake) == "rmine"
    assert sum(clock.slept) == 0
    assert fake.calls["admin_status"] <= MAX_LOOKUPS
    assert MALLORY in revoked(fake)
