"""The advisory apply lock: contention, expiry, abandoned locks and force-unlock."""

from __future__ import annotations

import pytest

from reconciler.lock import LockHeld, WorkspaceLock, force_unlock, holder_key, parse_holder
from tests.fakes import FakeClock, FakeWorkspace


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
    assert parse_holder(fake.lock_keys() or {}).who == "ci_runner-2.7"  # type: ignore[union-attr]


def test_an_expired_lock_is_taken_over() -> None:
    fake, clock = FakeWorkspace(), FakeClock()
    WorkspaceLock("prod", fake, clock, who="dead", ttl_seconds=60).acquire()
    clock.now += 61
    taker = WorkspaceLock("prod", fake, clock, who="alive", wait_seconds=0)
    taker.acquire()
    assert parse_holder(fake.lock_keys() or {}).who == "alive"  # type: ignore[union-attr]


def test_a_lock_without_a_holder_is_taken_over_after_a_grace_period() -> None:
    fake, clock = FakeWorkspace(), FakeClock()
    assert fake.lock_create()  # a run died between creating the scope and naming itself
    WorkspaceLock("prod", fake, clock, who="next", wait_seconds=30).acquire()
    assert parse_holder(fake.lock_keys() or {}).who == "next"  # type: ignore[union-attr]
    assert 10 <= sum(clock.slept) < 30


def test_release_leaves_a_lock_someone_else_took_over() -> None:
    fake, clock = FakeWorkspace(), FakeClock()
    mine = WorkspaceLock("prod", fake, clock, who="me", ttl_seconds=1)
    mine.acquire()
    fake.lock = {holder_key("other", 10**10): 1}
    mine.release()
    assert parse_holder(fake.lock_keys() or {}).who == "other"  # type: ignore[union-attr]


def test_force_unlock_removes_any_lock_and_reports_the_holder() -> None:
    fake, clock = FakeWorkspace(), FakeClock()
    WorkspaceLock("prod", fake, clock, who="stuck").acquire()
    holder = force_unlock(fake)
    assert holder is not None and holder.who == "stuck"
    assert fake.lock_keys() is None
    assert force_unlock(fake) is None
