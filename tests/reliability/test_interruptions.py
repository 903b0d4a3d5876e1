"""Interrupted applies: the emulator restarted (or killed) under a running ``pkgrepo apply``,
and ``pkgrepo apply`` itself killed with SIGKILL, or stopped with SIGTERM, half way.

What an operator should expect after a killed run, and what these tests hold pkgrepo to:

- ``plan`` and ``drift`` work at once (they take no lock) and show what is left to do; a
  key the dead run was writing is its own "interrupted write" (low), never "modified
  outside pkgrepo".
- A plain rerun of the same command converges: it waits out the dead run's lease (its
  locks are no longer renewed) and takes over, with no ``force-unlock`` and no ``--force``.
- SIGTERM (what CI sends on cancel) stops new writes, records the ledger, releases every
  lock, lists what was and was not applied, and exits 143 within 10 s; a rerun at once
  takes every lock without waiting.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.model import SCOPE, LiveSecret
from reconciler.core.results import WorkspaceResult
from reconciler.emulator import EmulatorHandle, Faults
from reconciler.engine.lock import LOCK_SCOPE, parse_holder
from reconciler.terminal.progress import FleetProgress
from tests.reliability.harness import (
    LEDGER_FILE,
    PLANTED,
    AclPoller,
    AclRecorder,
    Baseline,
    EmulatorProcess,
    Fleet,
    Result,
    assert_converged_state,
    assert_untouched,
    baseline,
    emulator_state,
    file_state,
    finish,
    lock_scope,
    managed,
    pkgrepo_process,
    seed,
    subprocess_env,
    wait_until,
    write_fleet,
)
from tests.support.cli import run_cli
from tests.support.leaks import Scanner

# -- the emulator restarted under a running apply ---------------------------------------------


def _progress(state_file: Path, names: tuple[str, ...]) -> tuple[int, int]:
    """(workspaces locked right now, workspaces whose managed scope holds the index URL)."""
    try:
        workspaces: Mapping[str, Any] = json.loads(state_file.read_text())["workspaces"]
    except (OSError, ValueError):
        return 0, 0
    locked = done = 0
    for name in names:
        ws = workspaces.get(name)
        if ws is None:
            continue
        locked += lock_scope(ws) is not None
        scope = managed(ws)
        done += scope is not None and any(
            s["key"] == "pip-extra-index-urls" for s in scope["secrets"]
        )
    return locked, done


def _mid_apply(state_file: Path, names: tuple[str, ...], round_: int) -> bool:
    """Some workspaces locked and some written: the n-th restart waits for n*3 written."""
    locked, done = _progress(state_file, names)
    return locked >= 1 and done >= 3 * round_


def restart_scenario(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    workspaces: int,
    faults: Mapping[str, Any],
    restarts: list[int],
) -> None:
    """Seed with no faults, restart with ``faults``, start an apply, and restart the emulator
    (with each signal of ``restarts``) whenever some workspaces are locked mid-apply."""
    emulator = EmulatorProcess(tmp_path).start()
    try:
        fleet = write_fleet(tmp_path / "repo", emulator.url, workspaces)
        seed(fleet)
        emulator.stop()
        emulator.configure(faults)
        emulator.start()
        state = file_state(emulator.state)
        before = baseline(fleet, state)
        with AclPoller(emulator.url, fleet.names) as poller:
            apply = pkgrepo_process(
                ["apply", str(fleet.file), "--auto-approve"], env=subprocess_env()
            )
            try:
                for round_, sig in enumerate(restarts, start=1):
                    wait_until(
                        partial(_mid_apply, emulator.state, fleet.names, round_),
                        timeout=60,
                        what="an apply half way",
                    )
                    emulator.restart(sig)
                first = finish(apply)
            finally:
                if apply.poll() is None:
                    apply.kill()
        assert "Traceback" not in first.text and "unexpected error" not in first.text, first.err
        assert first.code == 0, first.out[-3000:] + first.err[-3000:]
        assert emulator.starts == len(restarts) + 2
        check = run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"])
        assert check.code == 0, check.text[-3000:]
        assert_untouched(before, state)
        assert_converged_state(fleet, state)
        assert poller.polls > 0
        assert poller.violations == [], poller.violations[:5]
    finally:
        emulator.stop()


def test_emulator_restarted_mid_apply_the_apply_rides_it_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    restart_scenario(
        tmp_path, capsys, workspaces=20, faults={"latency_ms": 40}, restarts=[signal.SIGTERM]
    )


@pytest.mark.slow
def test_emulator_restarted_and_killed_three_times_mid_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    restart_scenario(
        tmp_path,
        capsys,
        workspaces=40,
        faults={"latency_range_ms": [20, 200], "seed": 3},
        restarts=[signal.SIGTERM, signal.SIGKILL, signal.SIGTERM],
    )


# -- pkgrepo killed with SIGKILL half way ------------------------------------------------------

RUN_ID = re.compile(r"run id (r[0-9a-f]{12})")


@dataclass
class Killed:
    locked: list[str]
    """Workspaces the dead run left locked."""
    run: str
    """Its run id, as its log printed it and its locks name it."""


def _written(recorder: AclRecorder) -> int:
    """Writes the service accepted to what pkgrepo manages (the scope and its ledger)."""
    return sum(1 for w in recorder.writes if w.scope == SCOPE or w.scope == "(files)")


def _kill_mid_apply(
    emu: EmulatorHandle,
    fleet: Fleet,
    recorder: AclRecorder,
    *,
    after_writes: int | None = None,
    sig: int = signal.SIGKILL,
    env: Mapping[str, str] | None = None,
    latency_ms: float = 40,
) -> tuple[Result, Killed]:
    """Start an apply and send ``sig`` once some workspaces are locked and written (or once
    the service accepted ``after_writes`` writes); returns its result and what it left."""
    for name in fleet.names:
        emu.set_faults(name, Faults(latency_ms=latency_ms))
    process = pkgrepo_process(["apply", str(fleet.file), "--auto-approve"], env=subprocess_env(env))
    try:

        def mid_apply() -> bool:
            if after_writes is not None:
                return _written(recorder) >= after_writes
            locked = [n for n in fleet.names if _locked(emu, n)]
            written = {w.workspace for w in recorder.writes if w.scope == SCOPE}
            return len(locked) >= 3 and len(written) >= 3

        wait_until(mid_apply, timeout=120, what="an apply half way")
        process.send_signal(sig)
        result = finish(process, timeout=10 if sig == signal.SIGTERM else 30)
    finally:
        if process.poll() is None:
            process.kill()
    for name in fleet.names:
        emu.set_faults(name, Faults())
    match = RUN_ID.search(result.err)
    assert match is not None, result.err[-2000:]
    return result, Killed([n for n in fleet.names if _locked(emu, n)], match.group(1))


def _locked(emu: EmulatorHandle, name: str) -> bool:
    return any(s.name == LOCK_SCOPE for s in emu.backend(name).list_scopes(emu.admin))


def _holders(emu: EmulatorHandle, names: list[str]) -> set[str]:
    found = set()
    for name in names:
        keys = {
            s.key: LiveSecret(s.key, s.last_updated_timestamp)
            for s in emu.backend(name).list_secrets(emu.admin, LOCK_SCOPE)
        }
        holder = parse_holder(keys)
        if holder is not None:
            found.add(holder.run)
    return found


def _drift_blames_nobody_for_pkgrepos_own_writes(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> Counter[str]:
    """``drift`` right after the kill: what is left shows, and no key the dead run was
    writing reads as changed outside pkgrepo. Returns the count of items by kind."""
    drift = run_cli(capsys, *["drift", str(fleet.file), "--format", "json", "-q"])
    assert drift.code in (0, 2), drift.text[-2000:]
    kinds: Counter[str] = Counter()
    for workspace in json.loads(drift.out)["workspaces"]:
        assert workspace["error"] is None, workspace
        for item in workspace["items"]:
            kinds[item["kind"]] += 1
            assert item["kind"] != "modified-outside", item
            if "/secret/" in item["address"] and item["severity"] != "low":
                # Only where the service reads values back can a plan see that a legacy
                # workspace's index (written before pkgrepo) points at another host: that is
                # HIGH before the kill as after it, and never blamed on anyone.
                assert workspace["workspace"] in fleet.legacy, item
                assert item["address"].endswith("/secret/pip-index-url"), item
                assert item["kind"] in ("changed-in-git", "unverifiable"), item
    return kinds


def settle_stale_locks(emu: EmulatorHandle, fleet: Fleet, killed: Killed, rerun: Result) -> None:
    """After the rerun of a killed run: it took over every lock the dead run left, except on
    workspaces the dead run had finished and the rerun had nothing to do in. Those keep the
    dead run's lock record, unrenewed, until the next run that needs them takes it over
    after one lease: checked here, then cleared as that run would."""
    rows = dict(re.findall(r"^(ws\d\d)\s+\d+\s+(\S+)", rerun.out, re.MULTILINE))
    stale = [n for n in fleet.names if _locked(emu, n)]
    assert _holders(emu, stale) <= {killed.run}, stale
    assert {rows[n] for n in stale} <= {"ok"}, (stale, rows)
    taken = rerun.err.count(f"taking over the lock of run {killed.run}")
    # killed between creating a lock scope and naming itself in it: taken after the grace
    taken += rerun.err.count("taking over a lock without a holder")
    assert taken + len(stale) == len(killed.locked), (taken, stale, killed.locked)
    for name in stale:
        emu.backend(name).delete_scope(emu.admin, LOCK_SCOPE)


def _converge_and_check(
    fleet: Fleet,
    recorder: AclRecorder,
    state: Callable[[str], Any],
    before: Baseline,
    capsys: pytest.CaptureFixture[str],
    *,
    extra: Sequence[str] = (),
    dead: tuple[EmulatorHandle, Killed] | None = None,
) -> Result:
    """The same apply again converges (with ``dead``: see ``settle_stale_locks``)."""
    rerun = run_cli(capsys, *["apply", str(fleet.file), "--auto-approve", "-q", *extra])
    assert rerun.code == 0, rerun.text[-3000:]
    check = run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"])
    assert check.code == 0, check.text[-3000:]
    if dead is not None:
        settle_stale_locks(dead[0], fleet, dead[1], rerun)
    assert_untouched(before, state)
    assert_converged_state(fleet, state)
    assert recorder.violations == [], recorder.violations[:5]
    return rerun


def test_pkgrepo_killed_mid_apply_a_plain_rerun_takes_over_and_converges(
    emu: EmulatorHandle,
    fleet: Fleet,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL half way, then the same command again: no force-unlock, no --force. The
    rerun waits out the dead run's lease (5 s here) and takes each lock over."""
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    lease = {"PKGREPO_LOCK_LEASE_SECONDS": "5"}
    killed, dead = _kill_mid_apply(emu, fleet, recorder, env=lease)
    assert killed.code == -signal.SIGKILL
    assert dead.locked, "the kill came too late: no workspace was left locked"
    assert _holders(emu, dead.locked) == {dead.run}
    _drift_blames_nobody_for_pkgrepos_own_writes(fleet, capsys)
    assert [n for n in fleet.names if _locked(emu, n)] == dead.locked  # drift took no lock
    monkeypatch.setenv("PKGREPO_LOCK_LEASE_SECONDS", "5")
    rerun = _converge_and_check(fleet, recorder, state, before, capsys, dead=(emu, dead))
    assert f"taking over the lock of run {dead.run}" in rerun.err


def test_pkgrepo_killed_mid_apply_force_unlock_frees_the_selection_at_once(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the default 60 s lease, ``force-unlock`` over the whole file (one command, not
    one per workspace) shows the dead run's locks and removes them; the rerun converges."""
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    _, dead = _kill_mid_apply(emu, fleet, recorder)
    assert dead.locked
    refused = run_cli(capsys, *["force-unlock", "--file", str(fleet.file)])
    assert refused.code == 1 and "pass --auto-approve" in refused.err, refused.text
    assert [n for n in fleet.names if _locked(emu, n)] == dead.locked
    run = run_cli(capsys, *["force-unlock", "--file", str(fleet.file), "--auto-approve"])
    assert run.code == 0, run.text
    for name in fleet.names:
        if name in dead.locked:
            assert re.search(rf"^{name}: locked by run {dead.run} since ", run.out, re.M)
            assert f"{name}: removed the lock held by run {dead.run}\n" in run.out
        else:
            assert f"{name}: not locked\n" in run.out
    assert not any(_locked(emu, n) for n in fleet.names)
    rerun = _converge_and_check(fleet, recorder, state, before, capsys)
    assert "taking over" not in rerun.err


# -- SIGTERM (a cancelled CI job) and Ctrl-C --------------------------------------------------


def test_sigterm_mid_apply_stops_cleanly_and_an_immediate_rerun_waits_for_no_lock(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    stopped, left = _kill_mid_apply(emu, fleet, recorder, sig=signal.SIGTERM)  # exits in 10 s
    assert stopped.code == 128 + signal.SIGTERM, stopped.text[-3000:]
    assert "Traceback" not in stopped.text and "unexpected error" not in stopped.text
    assert "SIGTERM received: no new writes start; in-flight work is finishing" in stopped.err
    assert re.search(
        r"interrupted by SIGTERM: \d+ workspace\(s\) applied, \d+ stopped part way, "
        r"\d+ not started\. Run the same command again to finish",
        stopped.err,
    ), stopped.err[-2000:]
    rows = dict(re.findall(r"^(ws\d\d)\s+\d+\s+(\S+)", stopped.out, re.MULTILINE))
    assert sorted(rows) == list(fleet.names), stopped.out[-3000:]  # the results table
    assert set(rows.values()) <= {"applied", "INTERRUPTED", "skipped", "ok"}, rows
    assert "skipped" in rows.values() or "INTERRUPTED" in rows.values(), rows
    for name, result in rows.items():
        if result == "INTERRUPTED":
            assert re.search(
                rf"^  {name}: interrupted: \d+ of \d+ change\(s\) applied; "
                r"not applied: ",
                stopped.out,
                re.M,
            ), stopped.out[-3000:]
    assert left.locked == []  # every lock released
    leaks = Scanner(PLANTED.values())
    assert leaks.scan("stdout", stopped.out) + leaks.scan("stderr", stopped.err) == []
    ledgers = 0
    for name in fleet.names:  # the ledgers it recorded on the way out hold no value
        try:
            ledger = emu.files(name).export_file(emu.admin, LEDGER_FILE, format="AUTO")
        except Exception:  # not started: no ledger
            continue
        ledgers += 1
        assert leaks.scan(f"{name} ledger", ledger) == []
    assert ledgers > 0
    kinds = _drift_blames_nobody_for_pkgrepos_own_writes(fleet, capsys)
    assert kinds["interrupted-write"] == 0, kinds  # the ledger recorded what was written
    emu.reset_counts()
    _converge_and_check(fleet, recorder, state, before, capsys)
    waited = [n for n in fleet.names if _waiting(emu, n)]
    assert waited == [], f"the rerun waited for a lock in {waited}"


def _waiting(emu: EmulatorHandle, name: str) -> bool:
    """A lock create was refused since the counts were reset: someone held the lock."""
    return any(
        status != 200
        for (_m, path, status) in emu.responses(name)
        if path.endswith("/secrets/scopes/create")
    )


class Terminal:
    """``pkgrepo ARGS`` on a pseudo-terminal of its own, as a person runs it: Ctrl-C typed
    there reaches it as SIGINT from the terminal."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: becomes pkgrepo
            # As a shell starts a command at its terminal: Ctrl-C interrupts it, even when
            # this test run ignores SIGINT (started with `&` by a script, say), which the
            # child would otherwise inherit.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execve(sys.executable, [sys.executable, "-m", "reconciler", *args], dict(env))
        self.pid, self.fd = pid, fd
        self.text = ""
        self.code: int | None = None

    def read(self, timeout: float = 0.05) -> None:
        while True:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # the child is gone
                return
            if not chunk:
                return
            self.text += chunk.decode(errors="replace")

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait_until_reading(self, timeout: float = 60) -> None:
        """Until pkgrepo is blocked reading its terminal, as it is when a person answers a
        prompt. Typed text waits in the terminal, but a Ctrl-C typed between the prompt being
        written and the read starting is lost: Python notes the signal and looks at it only
        when the read returns. On a loaded machine that window is wide enough to hit.
        Where ``/proc`` cannot say, a second's pause stands in."""
        syscall = Path(f"/proc/{self.pid}/task/{self.pid}/syscall")  # the main thread's

        def reading_stdin() -> bool:
            if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return True  # it ended without reading: ``finish`` shows what it said
            fields = syscall.read_text().split()
            # "running", "-1 ..." (blocked, not in a call) or the call and its arguments
            return len(fields) > 2 and fields[0] != "-1" and int(fields[1], 16) == 0

        try:
            reading_stdin()
        except (OSError, ValueError):  # no /proc here, not ours to read, or not this format
            time.sleep(1)
            return
        wait_until(reading_stdin, timeout=timeout, what="pkgrepo reading its terminal")

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        def check() -> bool:
            self.read()
            return condition()

        wait_until(check, timeout=timeout, what=what)

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read()
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.read()
                os.close(self.fd)
                self.code = os.waitstatus_to_exitcode(status)
                return self.code
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"still running after {timeout}s: {self.text[-2000:]}")


def test_ctrl_c_on_a_terminal_says_work_is_finishing_and_ends_with_the_results_table(
    emu: EmulatorHandle, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """Typed Ctrl-C during an apply confirmed at the prompt: pkgrepo says at once that
    in-flight work is finishing, then lists every workspace with what was applied and what
    was not, and exits 130. The rerun converges."""
    state = emulator_state(emu)
    before = baseline(fleet, state)
    recorder = AclRecorder(emu).watch(fleet.names)
    for name in fleet.names:
        emu.set_faults(name, Faults(latency_ms=40))
    term = Terminal(["apply", str(fleet.file), "-p", "4"], subprocess_env())
    try:
        term.wait_for(lambda: "Enter a value" in term.text, "the confirmation prompt")
        term.type("yes\n")
        term.wait_for(lambda: _written(recorder) >= 8, "an apply half way")
        term.type("\x03")  # Ctrl-C
        term.wait_for(
            lambda: "in-flight work is finishing" in term.text, "the note that work is finishing"
        )
        code = term.finish()
    finally:
        if term.code is None:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(term.pid, signal.SIGKILL)
                os.waitpid(term.pid, 0)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", term.text).replace("\r", "")
    assert code == 128 + signal.SIGINT, plain[-3000:]
    assert "Traceback" not in plain and "error: aborted" not in plain, plain[-3000:]
    assert "SIGINT received: no new writes start; in-flight work is finishing" in plain
    table = plain[plain.rindex("WORKSPACE  WAVE  RESULT") :]
    rows = dict(re.findall(r"^(ws\d\d)\s+\d+\s+(\S+)", table, re.MULTILINE))
    assert sorted(rows) == list(fleet.names), table
    assert "skipped" in rows.values() or "INTERRUPTED" in rows.values(), rows
    assert re.search(r"interrupted by SIGINT: \d+ workspace\(s\) applied", table), table
    assert not any(_locked(emu, n) for n in fleet.names)
    for name in fleet.names:
        emu.set_faults(name, Faults())
    _converge_and_check(fleet, recorder, state, before, capsys)


def test_ctrl_c_after_the_work_is_done_reports_what_finished(
    emu: EmulatorHandle,
    fleet: Fleet,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The interrupt lands after the last workspace finished: no "error: aborted", the
    results table, a note that everything listed was applied, exit 0."""
    done: list[str] = []
    original = FleetProgress.__call__

    def listener(self: FleetProgress, phase: str, result: WorkspaceResult) -> None:
        original(self, phase, result)
        if phase == "apply":
            done.append(result.workspace)
            if len(done) == len(fleet.names):
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, just after the last one

    monkeypatch.setattr(FleetProgress, "__call__", listener)
    run = run_cli(capsys, *["apply", str(fleet.file), "--auto-approve", "-q"])
    assert run.code == 0, run.text[-3000:]
    assert "aborted" not in run.text
    rows = dict(re.findall(r"^(ws\d\d)\s+\d+\s+(\S+)", run.out, re.MULTILINE))
    assert set(rows.values()) == {"applied"}, rows
    assert (
        "SIGINT received after every workspace had finished: everything listed above was applied"
        in run.err
    )
    assert run_cli(capsys, *["plan", str(fleet.file), "--detailed-exitcode", "-q"]).code == 0


def test_ctrl_c_at_the_prompt_changes_nothing_and_says_so(
    emu: EmulatorHandle, fleet: Fleet
) -> None:
    state = emulator_state(emu)
    before = {n: state(n) for n in fleet.names}
    term = Terminal(["apply", str(fleet.file)], subprocess_env())
    try:
        term.wait_for(lambda: "Enter a value" in term.text, "the confirmation prompt")
        term.wait_until_reading()
        term.type("\x03")  # Ctrl-C instead of an answer
        code = term.finish()
    finally:
        if term.code is None:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(term.pid, signal.SIGKILL)
                os.waitpid(term.pid, 0)
    assert code == 1, term.text[-2000:]
    assert "apply cancelled; nothing was changed" in term.text
    assert "Traceback" not in term.text
    assert {n: state(n) for n in fleet.names} == before
