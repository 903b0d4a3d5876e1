"""The lock as an attack surface: any workspace user can create the lock scope and renew a
holder key in it. pkgrepo honours a lock scope only when whoever may write to it is
pkgrepo's identity, a manager of the managed scope, or a workspace admin (asked through
SCIM); anyone else's is named once, their access revoked and their holder keys removed, and
the apply goes on. When the workspace cannot say whether a writer is an admin, the lock is
honoured while renewed, with a warning saying the lookup failed.

Before: a plain user's lock scope was named in a warning but honoured while renewed, so a
user who kept renewing a holder key blocked every apply until an admin ran
``force-unlock``; another admin's lock was warned about as if it were a stranger's.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
from databricks.sdk import WorkspaceClient

from reconciler.cli import main
from reconciler.emulator import (
    ADMIN_TOKEN,
    USER_TOKEN,
    EmulatorConfig,
    EmulatorHandle,
    Faults,
    OneShotFailure,
    Principal,
)
from reconciler.engine.lock import LOCK_SCOPE
from tests.cli.conftest import WriteDesired

ADMIN2 = Principal("admin2@pkgrepo.local", groups=frozenset({"admins"}), tokens=("dapi-admin2",))
HOSTILE = {
    "control": Principal("evil\x1b[31m\x07\nuser@pkgrepo.local", tokens=("dapi-evil",)),
    "long": Principal("x" * 3000 + "@pkgrepo.local", tokens=("dapi-long",)),
}


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(principals=(ADMIN2, *HOSTILE.values()))


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A live holder is waited for 3 s (not 90): long enough to see it renew."""
    monkeypatch.setenv("PKGREPO_LOCK_WAIT_SECONDS", "3")


def hold_lock(emu: EmulatorHandle, token: str, *, lease: int = 600) -> WorkspaceClient:
    """The principal with ``token`` creates the lock scope of ``dev`` and writes a holder."""
    client = WorkspaceClient(host=emu.host("dev"), token=token)
    client.secrets.create_scope(LOCK_SCOPE)
    client.secrets.put_secret(LOCK_SCOPE, f"holder.rblock00001.lease.{lease}", string_value="x")
    client.secrets.put_secret(LOCK_SCOPE, "beat.rblock00001", string_value="x")
    return client


@contextmanager
def renewing(client: WorkspaceClient) -> Iterator[None]:
    """The holder keeps renewing its beat every 0.2 s while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(0.2):
            with suppress(Exception):  # once its access is revoked, its writes fail
                client.secrets.put_secret(LOCK_SCOPE, "beat.rblock00001", string_value="x")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def lock_acls(emu: EmulatorHandle) -> dict[str, str]:
    admin = WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN)
    return {
        str(a.principal): a.permission.value
        for a in admin.secrets.list_acls(LOCK_SCOPE)
        if a.permission
    }


def lock_keys(emu: EmulatorHandle) -> set[str]:
    admin = WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN)
    if LOCK_SCOPE not in {s.name for s in admin.secrets.list_scopes()}:
        return set()
    return {str(s.key) for s in admin.secrets.list_secrets(LOCK_SCOPE)}


def test_a_plain_users_renewed_lock_does_not_block_an_apply(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    write_desired: WriteDesired,
    emu: EmulatorHandle,
) -> None:
    rogue = hold_lock(emu, USER_TOKEN)
    rogue.secrets.put_secret(LOCK_SCOPE, "holder.x.ttl.99999999999999", string_value="x")
    path = write_desired(names=("dev",))
    with renewing(rogue), caplog.at_level(logging.WARNING):
        code = main(["apply", str(path), "--auto-approve", "-q"])
        out, err = capsys.readouterr()
        keys_after = lock_keys(emu)
    assert code == 0, out + err
    assert "Traceback" not in out + err and "unexpected" not in out + err
    warned = caplog.text + err
    said = "was created by user@pkgrepo.local, which is neither a workspace admin"
    assert caplog.text.count(said) == 1, caplog.text  # one warning, naming the user
    assert "its lock is not honoured" in warned
    assert "holder.rblock00001.lease.600" not in keys_after  # removed, never renewed again
    assert main(["plan", str(path), "--detailed-exitcode", "-q"]) == 0
    assert LOCK_SCOPE not in {
        s.name
        for s in WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN).secrets.list_scopes()
    }  # released as usual


def test_another_admins_live_lock_still_blocks(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    write_desired: WriteDesired,
    emu: EmulatorHandle,
) -> None:
    """Another admin running pkgrepo: mutual exclusion as ever, and no warning about it."""
    other = hold_lock(emu, "dapi-admin2")
    path = write_desired(names=("dev",))
    with renewing(other), caplog.at_level(logging.WARNING):
        code = main(["apply", str(path), "--auto-approve", "-q"])
        out, err = capsys.readouterr()
    assert code == 1, out + err
    assert re.search(
        r"dev: locked by run rblock00001 since \S+ \S+ UTC; lease 600s, not renewed for \d+s",
        out + err,
    ), out + err
    assert "admin2" not in caplog.text + err  # a fellow admin is not a stranger
    assert lock_acls(emu) == {"admin2@pkgrepo.local": "MANAGE"}  # left as it was
    assert "holder.rblock00001.lease.600" in lock_keys(emu)


def test_a_refused_lookup_keeps_the_lock_honoured_and_says_so(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    write_desired: WriteDesired,
    emu: EmulatorHandle,
) -> None:
    """The workspace refuses to say who is an admin (403): a lock that may be legitimate is
    never broken over it."""
    refused = tuple(
        OneShotFailure(
            "preview/scim/v2/Users",
            nth=n,
            status=403,
            error_code="PERMISSION_DENIED",
            message="not allowed",
        )
        for n in range(1, 30)
    )
    emu.set_faults("dev", Faults(one_shot=refused))
    rogue = hold_lock(emu, USER_TOKEN)
    path = write_desired(names=("dev",))
    with renewing(rogue), caplog.at_level(logging.WARNING):
        code = main(["apply", str(path), "--auto-approve", "-q"])
        out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "dev: locked by run rblock00001" in out + err
    warned = caplog.text + err
    assert (
        "created by user@pkgrepo.local, which is neither pkgrepo's identity nor a manager of "
        "the managed scope, and whether it is a workspace admin could not be checked "
        "(the lookup failed:"
    ) in warned, warned
    assert "not honoured" not in warned
    assert lock_acls(emu) == {"user@pkgrepo.local": "MANAGE"}  # nothing revoked


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_principal_names_neither_crash_nor_print_raw(
    kind: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    write_desired: WriteDesired,
    emu: EmulatorHandle,
) -> None:
    principal = HOSTILE[kind]
    rogue = hold_lock(emu, principal.tokens[0])
    path = write_desired(names=("dev",))
    with renewing(rogue), caplog.at_level(logging.WARNING):
        code = main(["apply", str(path), "--auto-approve", "-q"])
        out, err = capsys.readouterr()
    assert code == 0, out + err
    text = caplog.text + out + err
    assert "Traceback" not in text and "unexpected" not in text
    assert principal.name not in text
    assert not any(c in text for c in "\x1b\x07")
    assert "its lock is not honoured" in text
    assert main(["plan", str(path), "--detailed-exitcode", "-q"]) == 0
