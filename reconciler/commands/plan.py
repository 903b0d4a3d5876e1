"""``pkgrepo plan``: show what apply would change, without changing anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reconciler.commands import verify as verify_cmd
from reconciler.commands.context import (
    CommandTarget,
    Session,
    fleet_options,
    new_salt,
    open_session,
)
from reconciler.core.errors import UserError
from reconciler.core.plan import Plan, Unreadable
from reconciler.core.results import FleetPlan
from reconciler.edges import planfile
from reconciler.render import FORMATS, junit, render
from reconciler.render import verify as render_verify
from reconciler.render.discovery import discovery_markdown
from reconciler.terminal import output
from reconciler.terminal.progress import FleetProgress


def plan_of(fleet_plan: FleetPlan, session: Session) -> Plan:
    """The plan of a fleet run: every selected workspace, planned or named as unreadable,
    with the file's safety thresholds."""
    hosts = {spec.name: spec.host for spec in session.specs}
    unreadable = tuple(
        Unreadable(r.workspace, hosts.get(r.workspace, ""), r.error or "could not be read")
        for r in fleet_plan.failed
    )
    return Plan(
        workspaces=tuple(fleet_plan.plans),
        salt=fleet_plan.salt,
        unreadable=unreadable,
        thresholds=session.desired.thresholds,
        orphaned=session.orphaned,
    )


@click.command("plan")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Save the plan to this file for `pkgrepo apply FILE` (holds no secret).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people, json for CI bots, markdown for a pull-request comment, junit "
    "for CI test reports (a workspace that cannot be applied is a failing test).",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when there are changes (0 none, 1 error), as terraform does.",
)
@click.option("--quiet", "-q", is_flag=True, help="No per-workspace progress lines.")
@verify_cmd.skip_verify_option
@fleet_options
def command(
    file: Path,
    out: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    quiet: bool,
    skip_verify: bool,
    target: CommandTarget,
) -> int:
    """Read the live workspaces and show what `apply` would change.

    \b
    Nothing is written. Secret values are never shown: index URLs appear with
    their credentials masked, certificates by subject, expiry and fingerprint.

    \b
    Examples:
      pkgrepo plan pkgrepo.yaml
      pkgrepo plan pkgrepo.yaml --workspace 'prod-*' --out plan.json
      pkgrepo plan pkgrepo.yaml --format markdown > plan.md
      pkgrepo plan pkgrepo.yaml --format junit > plan.xml
      pkgrepo plan pkgrepo.yaml --detailed-exitcode   # 0 none, 2 changes, 1 error
    """
    session = open_session(file, target)
    if out and session.hmac_key is None:
        raise UserError(
            "--out needs PKGREPO_LEDGER_KEY: the digests that pin the reviewed "
            "values in a plan file are keyed with it"
        )
    with FleetProgress(len(session.specs), quiet=quiet) as progress:
        session.fleet.listener = progress
        fleet_plan = session.fleet.plan(session.specs, salt=new_salt())
    plan = plan_of(fleet_plan, session)
    report = verify_cmd.step(
        session.desired, session.specs, verify_cmd.changing(plan.workspaces), skip=skip_verify
    )
    if fmt == "markdown" and session.discovery is not None:
        output.echo(discovery_markdown(session.discovery))
    shown = render(plan, fmt, color=fmt == "text" and sys.stdout.isatty()).rstrip("\n")
    if fmt == "junit":  # the verify results fail their workspaces and are a suite of their own
        shown = junit.render(plan, verification=report).rstrip("\n")
    elif fmt == "json":
        document = json.loads(shown)
        document["verification"] = render_verify.to_document(report)
        shown = json.dumps(document, indent=2)
    elif (section := verify_cmd.section(report, fmt)) is not None:
        shown = f"{shown}\n\n{section.rstrip()}"
    output.echo(shown)
    if not report.ok:
        output.error(verify_cmd.refuse_message(report, consequence="apply would refuse it"))
        if out:
            output.error(f"plan file {out} not written: a package index check failed")
        return 1
    if fmt != "text":  # the plan on stdout is for a machine or a page: say it here too
        for failed in plan.unreadable:
            output.error(f"{failed.workspace}: {failed.error}")
    if not plan.complete:
        output.error(
            f"{len(plan.unreadable)} of {len(fleet_plan.results)} workspace(s) could not be planned"
        )
        if out:
            output.error(f"plan file {out} not written: some workspaces could not be planned")
        return 1
    if out:
        planfile.write(
            out,
            plan,
            source=file,
            source_sha256=session.desired.source_sha256,
            mask=output.scrub,
            ledger_key=session.hmac_key,
        )
        output.info(f"Saved the plan to {out}. Apply it with: pkgrepo apply {out}")
    return 2 if detailed_exitcode and plan.has_changes else 0
