"""``pkgrepo force-unlock``: remove apply locks left by runs that are gone, for one
workspace or a whole selection at once."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click

from reconciler.commands.context import CommandTarget, open_session
from reconciler.commands.selection import selection_options
from reconciler.core.errors import PlanRefused, UserError, WorkspaceError
from reconciler.core.model import WorkspaceSpec
from reconciler.edges.adapter import SdkWorkspace
from reconciler.engine.clock import SystemClock
from reconciler.engine.fleet import each_workspace
from reconciler.engine.lock import Holder, read_holder
from reconciler.engine.port import LockPort
from reconciler.engine.retry import call_with_retry
from reconciler.terminal import output

_PARALLELISM = 16
_RETRY_SECONDS = 60.0
T = TypeVar("T")


@dataclass(frozen=True)
class _Found:
    spec: WorkspaceSpec
    port: LockPort | None
    locked: bool = False
    holder: Holder | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.spec.name}: cannot read its lock: {self.error}"
        if not self.locked:
            return f"{self.spec.name}: not locked"
        if self.holder is None:
            return f"{self.spec.name}: locked (no holder recorded)"
        return f"{self.spec.name}: {self.holder.describe()}"


def _retrying(name: str, fn: Callable[[], T]) -> T:
    clock = SystemClock()
    return call_with_retry(
        fn, workspace=name, clock=clock, deadline=clock.monotonic() + _RETRY_SECONDS
    )


def _inspect(spec: WorkspaceSpec, port: LockPort) -> _Found:
    locked, holder = _retrying(spec.name, lambda: read_holder(port))
    return _Found(spec, port, locked, holder)


def _remove(found: _Found) -> str:
    """Remove one lock, unless another run took it since it was shown."""
    assert found.port is not None
    name = found.spec.name
    port = found.port
    try:
        locked, now = _retrying(name, lambda: read_holder(port))
        if not locked:
            return f"{name}: no longer locked; nothing to do"
        shown = found.holder.key if found.holder else None
        current = now.key if now else None
        if current != shown:
            who = f"run {now.run}" if now else "a run with no holder recorded"
            return f"{name}: locked by {who} since it was shown; left alone (run again to see it)"
        _retrying(name, port.lock_delete)
    except WorkspaceError as exc:
        raise UserError(f"{name}: lock not removed: {exc.detail}") from None
    held = f"run {found.holder.run}" if found.holder else "no recorded holder"
    return f"{name}: removed the lock held by {held}"


@click.command("force-unlock")
@click.argument("workspaces", nargs=-1)
@click.option(
    "--file",
    "-f",
    "file",
    required=True,
    envvar="PKGREPO_FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The desired-state file that names the workspaces (for their hosts and auth).",
)
@click.option(
    "--auto-approve",
    is_flag=True,
    help="Remove the locks shown without asking (needed when not on a terminal).",
)
@selection_options
def command(
    workspaces: tuple[str, ...],
    file: Path,
    auto_approve: bool,
    names: tuple[str, ...],
    labels: tuple[str, ...],
    shard: str | None,
) -> int:
    """Remove the apply locks of the selected workspaces, whoever holds them.

    \b
    `pkgrepo apply` holds a lock per workspace on a short lease (60 s) that it
    renews while it works, so that two runs never interleave their writes. The
    lock of a run that died passes on by itself once its lease runs out: a rerun
    waits for it and takes over. Use this only for a lock that is stuck, when the
    run holding it is known to be gone, never to break into a run still going.

    \b
    Selects workspaces like the other commands (WORKSPACE names or globs,
    --workspace, --select, --shard; none: every workspace in the file), shows
    which are locked and by whom, and asks before removing them.

    \b
    Examples:
      pkgrepo force-unlock prod-eu --file pkgrepo.yaml
      pkgrepo force-unlock --file pkgrepo.yaml --select env=prod --auto-approve
    """
    target = CommandTarget(names=tuple(workspaces) + tuple(names), labels=labels, shard=shard)
    session = open_session(file, target)
    if not session.specs:
        raise UserError("the selection matches no workspace in the file")
    reached = each_workspace(
        session.specs, SdkWorkspace.connect, _inspect, parallelism=_PARALLELISM
    )
    found = [r.value or _Found(r.spec, None, error=r.error) for r in reached]
    for item in found:
        (output.error if item.error else output.echo)(item.describe())
    locked = [f for f in found if f.locked and f.port is not None]
    unreadable = [f for f in found if f.error is not None]
    if not locked:
        output.echo("no lock to remove")
        return 1 if unreadable else 0
    _confirm(len(locked), auto_approve)
    code = 1 if unreadable else 0
    for item in locked:
        try:
            output.echo(_remove(item))
        except UserError as exc:
            output.error(str(exc))
            code = 1
    return code


def _confirm(count: int, auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise UserError(
            f"not on a terminal: review the {count} lock(s) above and pass --auto-approve"
        )
    if not click.confirm(
        f"Remove {count} lock(s)? Only if the runs holding them are gone", default=False
    ):
        raise PlanRefused("nothing was removed")
