"""The lock as an attack surface: any workspace user can create the lock scope and fill it
with holder keys. A lock scope made by anyone but pkgrepo's identity or a manager of the
managed scope is named in a warning; its lock holds only while renewed (one lease at most),
and a malformed holder key never crashes a run.

Before: a user's holder key with a huge TTL crashed every apply ("unexpected ValueError"),
and a long one blocked applies until an admin ran ``force-unlock``.
"""

from __future__ import annotations

import logging

import pytest
from databricks.sdk import WorkspaceClient

from reconciler.cli import main
from reconciler.emulator import ADMIN_TOKEN, USER_TOKEN, EmulatorHandle
from reconciler.lock import LOCK_SCOPE
from tests.cli.conftest import WriteDesired


def test_a_lock_scope_made_by_a_plain_user_is_named_and_does_not_block(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    write_desired: WriteDesired,
    emu: EmulatorHandle,
) -> None:
    rogue = WorkspaceClient(host=emu.host("dev"), token=USER_TOKEN)
    rogue.secrets.create_scope(LOCK_SCOPE)
    for key in ("holder.rblock00001.lease.2", "beat.rblock00001", "holder.x.ttl.99999999999999"):
        rogue.secrets.put_secret(LOCK_SCOPE, key, string_value="held")
    path = write_desired(names=("dev",))
    with caplog.at_level(logging.WARNING):
        code = main(["apply", str(path), "--auto-approve", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "Traceback" not in out + err and "unexpected" not in out + err
    warned = caplog.text + err
    assert "was created by user@pkgrepo.local, which is neither pkgrepo's identity" in warned
    assert "taking over the lock of run rblock00001" in warned
    admin = WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN)
    assert LOCK_SCOPE not in {s.name for s in admin.secrets.list_scopes()}  # released
    assert main(["plan", str(path), "--detailed-exitcode", "-q"]) == 0


def test_a_lock_scope_made_by_an_admin_is_honoured(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    write_desired: WriteDesired,
    emu: EmulatorHandle,
) -> None:
    """Trusted: its holder is waited out for its lease (short here), never removed on sight."""
    admin = WorkspaceClient(host=emu.host("dev"), token=ADMIN_TOKEN)
    admin.secrets.create_scope(LOCK_SCOPE)
    admin.secrets.put_secret(LOCK_SCOPE, "holder.rlive00001.lease.2", string_value="held")
    path = write_desired(names=("dev",))
    with caplog.at_level(logging.WARNING):
        code = main(["apply", str(path), "--auto-approve", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "neither pkgrepo's identity" not in caplog.text + err
    assert "taking over the lock of run rlive00001" in caplog.text + err
