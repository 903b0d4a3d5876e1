"""``pkgrepo force-unlock``: remove a workspace's apply lock left by a run that died."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler import output
from reconciler.adapter import SdkWorkspace
from reconciler.commands.context import load_desired
from reconciler.errors import UserError
from reconciler.lock import force_unlock


@click.command("force-unlock")
@click.argument("workspace")
@click.option(
    "--file",
    "-f",
    "file",
    required=True,
    envvar="PKGREPO_FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The desired-state file that names the workspace (for its host and auth).",
)
def command(workspace: str, file: Path) -> int:
    """Remove the apply lock of WORKSPACE, whoever holds it.

    \b
    `pkgrepo apply` takes a lock per workspace so that two runs never interleave
    their writes; a lock expires on its own after 15 minutes. Use this only when
    the run that holds it is known to be gone (a killed CI job), never to break
    into a run that is still going.

    \b
    Example:
      pkgrepo force-unlock prod-eu --file pkgrepo.yaml
    """
    desired = load_desired(file)
    try:
        spec = desired.workspace(workspace)
    except KeyError:
        raise UserError(f"{file}: no workspace named {workspace!r}") from None
    holder = force_unlock(SdkWorkspace.connect(spec))
    if holder is None:
        output.echo(f"{workspace}: not locked; nothing to do")
    else:
        output.echo(f"{workspace}: removed the lock held by {holder.who}")
    return 0
