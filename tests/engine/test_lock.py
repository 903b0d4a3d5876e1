"""The advisory apply lock: contention, expiry, abandoned locks, races and force-unlock."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from reconciler.lock import LockHeld, WorkspaceLock, force_unlock, holder_key, parse_holder
from reconciler.model import LiveSecret
from tests.fakes import FakeClock, FakeWorkspace


def holder(fake: FakeWorkspace) -> str:
    found = parse_holder(fake.lock_keys() or {})
    assert found is not None
    return found.who


def test_a_second_run_waits_then_says_who_holds_the_lock() -> None:
    fake, clock = FakeWorkspace(), FakeClock()
    first = WorkspaceLock("prod", fake, clock, who="ci@runner-1.42", wait_seconds=5)
    first.acquire()
    second = WorkspaceLock("prod", fake, clock, who="ci@runner-2.7", wait_seconds=5)
    with pytest.raises(LockHeld) as raised:
        second.acquire()
    message = str(raised.value)
    # key names allow only letters, digits and - _ . so "@" is shown as "_"
    assert message.startswith("prod: locked by ci_runner-1.42 since ")
    assert "pkgrepo force-unlock prod" in message
    assert sum(clock.slept) >= 5  # it waited before giving up
    first.release()
    second.acquire()  # free again
    assert holder(fake) == "ci_runner-2.7"


def test_an_expired_lock_is_taken_over() -> None:
    fake, clock = FakeWorkspace(), FakeClock()
    WorkspaceLock("prod", fake, clock, who="dead", ttl_seconds=60).acquire()
    clock.now += 30
    with pytest.raises(LockHeld):  # not expired yet
        WorkspaceLock("prod", fake, clock, who="early", wait_seconds=0).acquire()
    clock.now += 31
    WorkspaceLock("prod", fake, clock, who="alive", wait_seconds=0).acquire()
    assert holder(fake) == "alive"
    assert len(fake.lock or {}) == 1


class StaleView(FakeWorkspace):
    """A waiter that read the holders just before a rival claimed the lock."""

    stale: Mapping[str, LiveSecret] | None = None

    def lock_keys(self) -> Mapping[str, LiveSecret] | None:
        if self.stale is not None:
            view, self.stale = self.stale, None
            return view
        return super().lock_keys()


def test_only_one_of_two_waiters_takes_over_an_expired_lock() -> None:
    fake, clock = StaleView(), FakeClock()
    WorkspaceLock("prod", fake, clock, who="dead", ttl_seconds=60).acquire()
    clock.now += 61
    fake.stale = fake.lock_keys()  # what the second waiter saw before the first claimed
    WorkspaceLock("prod", fake, clock, who="first", wait_seconds=0).acquire()
    fake.stale = {holder_key("dead", 60): LiveSecret(holder_key("dead", 60), 1)}
    with pytest.raises(LockHeld):
        WorkspaceLock("prod", fake, clock, who="second", wait_seconds=0).acquire()
    assert holder(fake) == "first"
    assert len(fake.lock or {}) == 1


def test_a_lock_without_a_holder_is_taken_over_after_a_grace_period() -> None:
    fake, clock = FakeWorkspace(), FakeClock()
    assert fake.lock_create()  # a run died between creating the scope and naming itself
    WorkspaceLock("prod", fake, clock, who="next", wait_seconds=30).acquire()
    assert holder(fake) == "next"
    assert 10 <= sum(clock.slept) < 30


def test_of_two_claims_the_earlier_key_wins_and_the_other_withdraws() -> None:
    fake, clock = FakeWorkspace(), FakeClock()
    assert fake.lock_create()
    fake.lock_put(holder_key("rival", 900))  # the rival wrote first
    late = WorkspaceLock("prod", fake, clock, who="late", wait_seconds=0)
    assert late._claim() is False  # the step a racing claimer takes
    assert holder(fake) == "rival"
    assert list(fake.lock or {}) == [holder_key("rival", 900)]


def test_release_leaves_a_lock_someone_else_took_over() -> None:
    fake, clock = FakeWorkspace(), FakeClock()
    mine = WorkspaceLock("prod", fake, clock, who="me", ttl_seconds=1)
    mine.acquire()
    fake.lock = {holder_key("other", 900): 1}
    mine.release()
    assert holder(fake) == "other"


def test_force_unlock_removes_any_lock_and_reports_the_holder() -> None:
    fake, clock = FakeWorkspace(), FakeClock()
    WorkspaceLock("prod", fake, clock, who="stuck").acquire()
    found = force_unlock(fake)
    assert found is not None and found.who == "stuck"
    assert fake.lock_keys() is None
    assert force_unlock(fake) is None
