"""``pkgrepo drift``: report what differs between Git and the live workspaces, for a cron.

It plans like ``pkgrepo plan`` (same selection and run flags, nothing is written to any
workspace) and turns the plan into a ``DriftReport``: each difference with its kind and
severity, and the workspaces that could not be read. The exit code is what a scheduler
alerts on: 0 in sync, 2 drift, 1 when any workspace could not be read.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

import click

from reconciler.commands.context import (
    LEDGER_KEY_ENV,
    CommandTarget,
    fleet_options,
    new_salt,
    open_session,
)
from reconciler.core import drift, policy
from reconciler.core.errors import UserError
from reconciler.core.plan import Severity
from reconciler.render.drift import FORMATS, headline, render
from reconciler.terminal import output
from reconciler.terminal.progress import FleetProgress


@click.command("drift")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people, json for dashboards (schemas/drift.schema.json), "
    "markdown for a CI job summary, junit for CI test reports.",
)
@click.option(
    "--output",
    "-o",
    "output_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file instead of stdout (it holds no secret).",
)
@click.option(
    "--summary",
    "summary_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help='Also append the Markdown report to FILE, e.g. "$GITHUB_STEP_SUMMARY".',
)
@click.option(
    "--fail-on",
    "fail_on",
    type=click.Choice([s.value for s in Severity]),
    default=Severity.LOW.value,
    show_default=True,
    help="The lowest severity that fails the job (exit 2, a JUnit failure): `high` still "
    "reports low-severity drift but exits 0 for it.",
)
@click.option(
    "--accept-unverified",
    is_flag=True,
    help="Run without PKGREPO_LEDGER_KEY: values cannot be verified, only the ledger's "
    "timestamps are compared (unverified). Without this flag drift refuses to run "
    "without the key, so a CI job that lost its secret does not stay green.",
)
@click.option("--quiet", "-q", is_flag=True, help="No per-workspace progress lines.")
@fleet_options
def command(
    file: Path,
    fmt: str,
    output_file: Path | None,
    summary_file: Path | None,
    fail_on: str,
    accept_unverified: bool,
    quiet: bool,
    target: CommandTarget,
) -> int:
    """Report every difference between the workspaces and the desired state in FILE.

    \b
    Reads the live workspaces and changes nothing. Each difference says what
    happened (its kind: changed-in-git, modified-outside, added-out-of-band,
    removed-out-of-band, acl-added, acl-removed, acl-changed, scope-missing,
    unverifiable, ledger-missing, creator-grant, new), who it is attributed to,
    its severity, and the two ways to settle it: apply (Git wins) or change Git
    (live wins). High severity: it widens access or redirects installs (a new
    WRITE or MANAGE grant, `users` above READ, an index or extra index URL added
    or changed outside pkgrepo, the scope deleted, the ledger missing).
    PKGREPO_LEDGER_KEY (the key apply used) is required, so values changed
    outside pkgrepo are told apart from values changed in Git.

    \b
    Exit codes: 0 no drift (or only below --fail-on), 2 drift, 1 when a
    workspace could not be read (the others are still reported) or the
    ledger key is missing.

    \b
    Examples:
      pkgrepo drift pkgrepo.yaml
      pkgrepo drift pkgrepo.yaml --select env=prod --format json -o drift.json
      pkgrepo drift pkgrepo.yaml --fail-on high --format junit -o drift.xml
      pkgrepo drift pkgrepo.yaml --shard 2/4 --format junit -o drift-2.xml \\
          --summary "$GITHUB_STEP_SUMMARY"
    """
    session = open_session(file, target)
    if session.hmac_key is None and not accept_unverified:
        raise UserError(
            f"{LEDGER_KEY_ENV} is not set: drift cannot verify any value, so an index "
            "pointed at another host could pass unnoticed. Set it to the key apply uses "
            "(a CI secret), or pass --accept-unverified to compare only the ledger's "
            "timestamps"
        )
    with FleetProgress(len(session.specs), quiet=quiet) as progress:
        session.fleet.listener = progress
        fleet_plan = session.fleet.plan(session.specs, salt=new_salt())
    hosts = {spec.name: spec.host for spec in session.specs}
    report = drift.with_warnings(
        replace(
            drift.from_fleet(fleet_plan, hosts, fail_on=Severity(fail_on)),
            orphaned=session.orphaned,
        ),
        policy.expiring_certificates(session.specs, now=dt.datetime.now(dt.UTC)),
    )
    color = fmt == "text" and output_file is None and sys.stdout.isatty()
    text = output.scrub(render(report, fmt, color=color))
    if output_file is None:
        output.echo(text.rstrip("\n"))
    else:
        _write(output_file, text, append=False)
        output.info(f"Wrote the drift report ({fmt}) to {output_file}.")
    if summary_file is not None:
        _write(summary_file, output.scrub(render(report, "markdown")), append=True)
    if output_file is not None or fmt != "text":  # the report is not on the terminal
        for ws in report.workspaces:
            if ws.error is not None:
                output.error(f"{ws.workspace}: {ws.error}")
        output.info(f"drift: {headline(report)}")
    return report.exit_code


def _write(path: Path, text: str, *, append: bool) -> None:
    try:
        with path.open("a" if append else "w", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None
