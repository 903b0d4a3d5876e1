"""``pkgrepo plan`` and ``pkgrepo apply`` over 50 workspaces, as a platform team runs them.

Each test gets a fresh emulator serving ``ws-00``..``ws-49`` and a generated ``pkgrepo.yaml``
(labels ``env``/``region``, canary waves, a ``safety`` block). What the emulator received is
read from the journal, in the order it received it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.model import INDEX_URL, MARKER_KEY, SCOPE
from reconciler.emulator import EmulatorHandle, Faults, OneShotFailure, running_emulator
from tests.fleet.conftest import (
    COUNT,
    INDEX,
    NAMES,
    FleetFile,
    Journal,
    canary_waves,
    env_of,
    fleet_config,
    in_wave,
    names_where,
    one_wave,
    region_of,
)
from tests.support.cli import Pkgrepo

APPLY = ("apply", "--auto-approve", "-q")


def converge(pkgrepo: Pkgrepo, path: str) -> None:
    done = pkgrepo(*APPLY, path)
    assert done.code == 0, done.err
    assert pkgrepo("plan", path, "-q", "--detailed-exitcode").code == 0


def test_apply_rolls_out_wave_by_wave_and_converges(
    pkgrepo: Pkgrepo, fleet_file: FleetFile, journal: Journal
) -> None:
    path = fleet_file.write(wave_of=canary_waves)
    start = journal.mark()
    done = pkgrepo(*APPLY, path, "--format", "json")
    assert done.code == 0, done.err
    results = done.results()
    assert set(results) == set(NAMES)
    assert {r["result"] for r in results.values()} == {"applied"}

    seen = journal.since(start)
    writes = journal.writes(start)
    assert set(writes) == set(NAMES)
    for wave in (0, 1):
        earlier, later = in_wave(canary_waves, wave), in_wave(canary_waves, wave + 1)
        last_of_earlier = max(e.seq for e in seen if e.workspace in earlier)
        first_write_of_later = min(writes[name][0].seq for name in later)
        assert last_of_earlier < first_write_of_later, f"wave {wave + 1} started early"
    # one pass converges: a fresh plan is empty
    assert pkgrepo("plan", path, "-q", "--detailed-exitcode").code == 0


@pytest.fixture
def canary_fails(journal: Journal) -> Iterator[EmulatorHandle]:
    """ws-02, a wave-0 canary, answers its first ACL grant with a 400 (permanent)."""
    broken = Faults(one_shot=(OneShotFailure("secrets/acls/put", status=400),))
    with running_emulator(fleet_config({"ws-02": broken})) as handle:
        yield journal.watch(handle)


def test_failing_canary_stops_later_waves(
    pkgrepo: Pkgrepo, canary_fails: EmulatorHandle, tmp_path: Path, journal: Journal
) -> None:
    path = FleetFile(tmp_path / "pkgrepo.yaml", canary_fails).write(wave_of=canary_waves)
    start = journal.mark()
    done = pkgrepo(*APPLY, path, "--format", "json")
    assert done.code == 1
    results = done.results()
    assert set(results) == set(NAMES)
    assert results["ws-02"]["result"] == "failed"
    assert results["ws-02"]["error"].startswith("grant MANAGE to admins: ")
    canaries = in_wave(canary_waves, 0)
    later = set(NAMES) - canaries
    # the rest of the canary wave still ran: one failure does not stop its own wave
    assert {results[n]["result"] for n in canaries - {"ws-02"}} == {"applied"}
    for name in later:
        assert results[name]["result"] == "skipped"
        assert results[name]["error"] == "not started: wave 0 had 1 failure(s)"
    # not a single write reached a workspace of a later wave
    assert set(journal.writes(start)) == canaries

    # the injected failure was one-shot: a rerun converges everything
    converge(pkgrepo, path)


@pytest.fixture
def two_broken(journal: Journal) -> Iterator[EmulatorHandle]:
    broken = Faults(one_shot=(OneShotFailure("secrets/acls/put", status=400),))
    with running_emulator(fleet_config({"ws-00": broken, "ws-01": broken})) as handle:
        yield journal.watch(handle)


def test_max_failures_halts_and_names_what_was_left_untouched(
    pkgrepo: Pkgrepo, two_broken: EmulatorHandle, tmp_path: Path, journal: Journal
) -> None:
    path = FleetFile(tmp_path / "pkgrepo.yaml", two_broken).write(wave_of=one_wave)
    start = journal.mark()
    # one at a time, so which workspaces were still to start when it halted is certain
    done = pkgrepo(*APPLY, path, "--max-failures", "2", "--parallelism", "1")
    assert done.code == 1
    summary = done.out[done.out.index("WORKSPACE") :]
    assert f"{COUNT} workspace(s): 2 failed, {COUNT - 2} skipped" in summary
    untouched = set(NAMES) - {"ws-00", "ws-01"}
    for name in sorted(untouched):
        assert f"  {name}: not started: --max-failures 2 reached" in summary
    assert "  ws-00: grant MANAGE to admins: " in summary
    assert "  ws-01: grant MANAGE to admins: " in summary
    assert set(journal.writes(start)) == {"ws-00", "ws-01"}


@pytest.fixture
def one_bad_workspace() -> Iterator[EmulatorHandle]:
    broken = Faults(one_shot=(OneShotFailure("secrets/acls/put", status=400),))
    with running_emulator(fleet_config({"ws-23": broken})) as handle:
        yield handle


def test_a_failure_never_hides_the_other_results(
    pkgrepo: Pkgrepo, one_bad_workspace: EmulatorHandle, tmp_path: Path
) -> None:
    path = FleetFile(tmp_path / "pkgrepo.yaml", one_bad_workspace).write(wave_of=one_wave)
    done = pkgrepo(*APPLY, path)
    assert done.code == 1
    summary = done.out[done.out.index("WORKSPACE") :].splitlines()
    rows = {line.split()[0]: line.split()[2] for line in summary[1 : COUNT + 1]}
    assert set(rows) == set(NAMES)
    assert rows.pop("ws-23") == "FAILED"
    assert set(rows.values()) == {"applied"}
    assert f"{COUNT} workspace(s): {COUNT - 1} applied, 1 failed" in summary[COUNT + 1]
    assert any(line.startswith("  ws-23: grant") for line in summary)
    # the other 49 converged; ws-23 converges on the rerun
    plan = pkgrepo("plan", path, "-q", "--format", "json")
    assert plan.code == 0
    changed = {ws["workspace"] for ws in plan.document()["workspaces"] if ws["changes"]}
    assert changed == {"ws-23"}
    converge(pkgrepo, path)


@pytest.fixture
def unreadable_workspace() -> Iterator[EmulatorHandle]:
    broken = Faults(one_shot=(OneShotFailure("secrets/list", status=400),))
    with running_emulator(fleet_config({"ws-31": broken})) as handle:
        yield handle


def test_a_workspace_that_cannot_be_planned_does_not_hide_the_others(
    pkgrepo: Pkgrepo, unreadable_workspace: EmulatorHandle, tmp_path: Path
) -> None:
    path = FleetFile(tmp_path / "pkgrepo.yaml", unreadable_workspace).write()
    done = pkgrepo("plan", path, "-q", "--format", "json")
    assert done.code == 1
    assert done.planned() == set(NAMES) - {"ws-31"}
    assert "ws-31: list secrets" in done.err


# -- selection and sharding: read-only, one emulator for the module ----------------------------


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[EmulatorHandle]:
    with running_emulator(fleet_config()) as handle:
        yield handle


@pytest.fixture
def shared_file(tmp_path: Path, shared_emu: EmulatorHandle) -> str:
    return FleetFile(tmp_path / "pkgrepo.yaml", shared_emu).write()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--workspace", "ws-1*"), names_where(lambda i: 10 <= i < 20)),
        (("--select", "env=prod"), names_where(lambda i: env_of(i) == "prod")),
        (
            ("--select", "env=prod", "--select", "region=eu"),
            names_where(lambda i: env_of(i) == "prod" and region_of(i) == "eu"),
        ),
        (
            ("--workspace", "ws-1*", "--select", "env=prod"),
            names_where(lambda i: 10 <= i < 20 and env_of(i) == "prod"),
        ),
        (
            ("--workspace", "ws-0*", "--workspace", "ws-49"),
            names_where(lambda i: i < 10 or i == 49),
        ),
    ],
    ids=["glob", "label", "two-labels", "glob-and-label", "two-globs"],
)
def test_selection_plans_exactly_the_matching_workspaces(
    pkgrepo: Pkgrepo,
    shared_file: str,
    shared_emu: EmulatorHandle,
    flags: tuple[str, ...],
    expected: set[str],
) -> None:
    shared_emu.reset_counts()
    done = pkgrepo("plan", shared_file, "-q", "--format", "json", *flags)
    assert done.code == 0, done.err
    assert done.planned() == expected
    # the workspaces left out are not even read
    contacted = {name for name in NAMES if shared_emu.requests(name)}
    assert contacted == expected


def test_shards_cover_the_fleet_exactly_once(pkgrepo: Pkgrepo, shared_file: str) -> None:
    shards = []
    for i in range(1, 5):
        done = pkgrepo("plan", shared_file, "-q", "--format", "json", "--shard", f"{i}/4")
        assert done.code == 0, done.err
        shards.append(done.planned())
    assert all(shards), "a shard is empty"
    assert sum(len(s) for s in shards) == COUNT
    assert set().union(*shards) == set(NAMES)


def test_a_glob_matching_nothing_is_a_user_error(pkgrepo: Pkgrepo, shared_file: str) -> None:
    done = pkgrepo("plan", shared_file, "-q", "--workspace", "prod-*")
    assert done.code == 1
    assert "'prod-*' matches no workspace" in done.err


# -- throttling --------------------------------------------------------------------------------

THROTTLED = ("ws-03", "ws-17", "ws-31", "ws-45")


@pytest.fixture
def throttled() -> Iterator[EmulatorHandle]:
    # A burst of 2: a plan's concurrent reads are throttled however slow the machine is.
    slow = Faults(rate_limit_rps=10, rate_limit_burst=2, retry_after_seconds=0)
    with running_emulator(fleet_config(dict.fromkeys(THROTTLED, slow))) as handle:
        yield handle


def test_throttled_workspaces_still_converge(
    pkgrepo: Pkgrepo, throttled: EmulatorHandle, tmp_path: Path
) -> None:
    path = FleetFile(tmp_path / "pkgrepo.yaml", throttled).write()
    done = pkgrepo(*APPLY, path, "--format", "json")
    assert done.code == 0, done.err
    assert {r["result"] for r in done.results().values()} == {"applied"}
    for name in THROTTLED:
        answers = throttled.responses(name)
        assert sum(n for (_, _, status), n in answers.items() if status == 429) > 0, name
    assert pkgrepo("plan", path, "-q", "--detailed-exitcode").code == 0


# -- safety thresholds -------------------------------------------------------------------------


def test_changing_most_managed_keys_needs_force(
    pkgrepo: Pkgrepo, fleet_file: FleetFile, journal: Journal
) -> None:
    converge(pkgrepo, fleet_file.write())
    moved = fleet_file.write(index_url=INDEX.replace("pypi.corp", "nexus.corp"))
    start = journal.mark()
    refused = pkgrepo(*APPLY, moved)
    assert refused.code == 1
    assert f"changes {COUNT} of {2 * COUNT} managed keys (50%)" in refused.err
    assert "--force" in refused.err
    assert journal.writes(start) == {}
    assert pkgrepo("plan", moved, "-q", "--detailed-exitcode").code == 2

    forced = pkgrepo(*APPLY, moved, "--force", "--format", "json")
    assert forced.code == 0, forced.err
    assert {r["result"] for r in forced.results().values()} == {"applied"}
    assert pkgrepo("plan", moved, "-q", "--detailed-exitcode").code == 0


def test_deleting_a_key_fleet_wide_counts_toward_the_share_not_the_scope_limit(
    pkgrepo: Pkgrepo, fleet_file: FleetFile, journal: Journal
) -> None:
    converge(pkgrepo, fleet_file.write())
    fewer = fleet_file.write(extra_index_urls=(), max_update_share=0.3, max_delete_workspaces=0)
    start = journal.mark()
    refused = pkgrepo(*APPLY, fewer)
    assert refused.code == 1
    assert f"changes {COUNT} of {2 * COUNT} managed keys (50%)" in refused.err
    assert "deletes the scope" not in refused.err  # no scope is deleted: that limit holds
    assert journal.writes(start) == {}

    # within the share, a key deleted in every workspace needs no --force: the delete
    # limit counts deleted scopes, as its documentation says
    fewer = fleet_file.write(extra_index_urls=(), max_update_share=1.0, max_delete_workspaces=0)
    done = pkgrepo(*APPLY, fewer)
    assert done.code == 0, done.err
    assert pkgrepo("plan", fewer, "-q", "--detailed-exitcode").code == 0
    emu = fleet_file.emu
    for name in NAMES:
        keys = {s.key for s in emu.backend(name).list_secrets(emu.admin, SCOPE)}
        assert keys == {INDEX_URL, MARKER_KEY}, name
