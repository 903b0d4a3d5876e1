"""`--rate-limit`: the adapter takes a token before every request to a workspace host, so a
fleet run stays under a service limit the user knows, instead of being throttled and
backing off. (The engine knows nothing of it: `reconciler/edges/throttle.py`.)"""

from __future__ import annotations

from reconciler.emulator import Faults, WorkspaceSettings
from tests.fidelity.conftest import Desired, World
from tests.support.cli import Pkgrepo

# The service's limit in this test: 20 requests per second, bursts of 11, answered with 429.
LIMITED = Faults(rate_limit_rps=20, rate_limit_burst=11)


def _throttled(emu: object, workspace: str) -> int:
    return sum(n for (_m, _p, status), n in emu.responses(workspace).items() if status == 429)  # type: ignore[attr-defined]


def test_under_the_rate_limit_no_request_is_throttled(
    world: World, desired: Desired, pkgrepo: Pkgrepo
) -> None:
    """At `--rate-limit 10` (bursts of 10) an apply never exceeds a 20/s limit with bursts of
    11, so the service never throttles it; the same apply without the flag is throttled
    (and still converges by backing off), which shows the flag did the work. Within one
    run the client's bucket (10/s, 10) always holds at least one token fewer than the
    service's (20/s, 11), so on loopback the service never sees more than it allows."""
    emu = world(limited=WorkspaceSettings(faults=LIMITED), free=WorkspaceSettings(faults=LIMITED))
    path = desired(emu, "limited")
    run = pkgrepo("apply", path, "--auto-approve", "--rate-limit", "10")
    assert run.code == 0, run.text
    sent = sum(emu.requests("limited").values())
    assert sent > 10, "the apply made enough requests to be throttled"
    assert _throttled(emu, "limited") == 0, emu.responses("limited")
    assert pkgrepo("plan", path, "--detailed-exitcode", "--rate-limit", "10").code == 0

    path = desired(emu, "free")
    run = pkgrepo("apply", path, "--auto-approve")
    assert run.code == 0, run.text
    assert _throttled(emu, "free") > 0, "without --rate-limit the same apply is throttled"
