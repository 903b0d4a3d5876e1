"""``pkgrepo apply``: make the workspaces match the desired state (or a saved plan)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import click

from reconciler.commands import verify as verify_cmd
from reconciler.commands.context import (
    CommandTarget,
    Session,
    fleet_options,
    ledger_key,
    new_salt,
    open_session,
)
from reconciler.commands.interrupt import Interrupts
from reconciler.commands.plan import plan_of
from reconciler.core import report
from reconciler.core.errors import PlanRefused, UserError
from reconciler.core.model import Ensure
from reconciler.core.plan import Plan
from reconciler.core.results import FleetPlan, Status, WorkspaceResult
from reconciler.edges import fleet_record, planfile
from reconciler.engine.apply import ApplyOptions
from reconciler.render import render
from reconciler.terminal import output
from reconciler.terminal.progress import FleetProgress


@click.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--auto-approve",
    is_flag=True,
    help="Do not ask for confirmation (needed when not on a terminal).",
)
@click.option(
    "--allow-destroy", is_flag=True, help="Allow deleting a scope or removing every ACL of a scope."
)
@click.option(
    "--force",
    is_flag=True,
    help="Apply even past the safety thresholds of the file's `safety` block.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="Halt the rollout once K workspaces have failed.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints the results as one document.",
)
@click.option(
    "--acl-settle-seconds",
    type=click.IntRange(min=1, max=3600),
    default=int(ApplyOptions.acl_settle_seconds),
    show_default=True,
    metavar="SECONDS",
    help="How long each ACL write may take to show before the workspace fails (the service "
    "acknowledges ACL writes it applies late, or only once sent again: pkgrepo reads "
    "each one back and re-sends it meanwhile).",
)
@click.option("--quiet", "-q", is_flag=True, help="No per-workspace progress lines.")
@verify_cmd.skip_verify_option
@fleet_options
def command(
    file: Path,
    auto_approve: bool,
    allow_destroy: bool,
    force: bool,
    max_failures: int | None,
    fmt: str,
    acl_settle_seconds: int,
    quiet: bool,
    skip_verify: bool,
    target: CommandTarget,
) -> int:
    """Apply a desired-state FILE, or a plan FILE saved by `pkgrepo plan --out`.

    \b
    With a desired-state file, the plan is shown and confirmed first (on a terminal;
    elsewhere pass --auto-approve). With a saved plan, values are resolved again and
    the apply is refused unless the desired values and the live workspaces are exactly
    what the plan was made from: the reviewed plan is the applied plan.

    \b
    Workspaces are applied concurrently, wave by wave (`wave:` in the file, lower
    first); a wave starts only when the previous one fully succeeded. After applying,
    each workspace is planned again: success means nothing is left to change.

    \b
    Before anything is written, the package indexes of the repository values that
    change are verified (as `pkgrepo verify` does); if one does not answer, nothing
    is applied. --skip-verify rolls them out unchecked, with a warning.

    \b
    Examples:
      pkgrepo apply plan.json
      pkgrepo apply pkgrepo.yaml --workspace dev --auto-approve
      pkgrepo apply pkgrepo.yaml --select env=prod --max-failures 2 --auto-approve
    """
    if planfile.looks_like_planfile(file):
        if target.names or target.labels or target.shard:
            raise UserError(
                "a saved plan applies to exactly the workspaces it lists; "
                "--workspace, --select and --shard go with `pkgrepo plan`"
            )
        saved = planfile.read(file, ledger_key=ledger_key())
        session = open_session(
            saved.source, target, only=tuple(w.workspace for w in saved.plan.workspaces)
        )
        changed_file = planfile.source_problems(saved, session.desired.source_sha256)
        moved = planfile.host_problems(saved.plan, session.specs)
        if moved or (changed_file and not saved.plan.workspaces):
            # Refused before connecting: credentials never go to a host nobody reviewed.
            planfile.refuse(changed_file + moved)
        if not saved.plan.workspaces:
            output.info(f"{file} lists no workspace: nothing to apply.")
            return 0
        fleet_plan = _plan(session, saved.plan.salt, quiet)
        _fail_on_plan_errors(fleet_plan, changed_file)
        planfile.verify(saved, fleet_plan.plans, source_sha256=session.desired.source_sha256)
        plan = plan_of(fleet_plan, session)
        _verify_indexes(session, plan, skip_verify, fmt)
        _check_safety(plan, allow_destroy=allow_destroy, force=force)
    else:
        session = open_session(file, target)
        fleet_plan = _plan(session, new_salt(), quiet)
        plan = plan_of(fleet_plan, session)
        shown = render(plan, "text", color=sys.stdout.isatty() and fmt == "text").rstrip("\n")
        # With --format json, stdout carries only the results document.
        (output.echo if fmt == "text" else output.info)(shown)
        _verify_indexes(session, plan, skip_verify, fmt)
        if plan.needs_apply:
            # The verdict was shown with the plan; an apply past it is refused before
            # anyone is asked to confirm, never after.
            _check_safety(plan, allow_destroy=allow_destroy, force=force)
            _confirm(auto_approve)
    if not plan.needs_apply:
        _print_results(session, fleet_plan, [], fmt)
        _remember(session, fleet_plan.results)
        return 1 if fleet_plan.failed else 0
    fleet = session.fleet
    output.info(f"run id {fleet.run_id}: other runs see this run as the holder of its locks")
    finished: dict[str, WorkspaceResult] = {}

    def give_up(why: str) -> None:
        """The grace ran out (or a second signal came): list what is known, and exit."""
        known = [finished.get(s.name) or _unfinished(s.name, s.wave) for s in session.specs]
        _print_results(session, fleet_plan, known, fmt)
        output.error(_interrupted_line(interrupts.name, known, why))

    with (
        Interrupts(fleet.cancel, give_up) as interrupts,
        FleetProgress(len(session.specs), quiet=quiet) as progress,
    ):

        def listen(phase: str, result: WorkspaceResult) -> None:
            finished[result.workspace] = result
            progress(phase, result)

        fleet.listener = listen
        results = fleet.apply(
            session.specs,
            fleet_plan,
            options=ApplyOptions(
                allow_destroy=allow_destroy, acl_settle_seconds=float(acl_settle_seconds)
            ),
            max_failures=max_failures,
        )
        _print_results(session, fleet_plan, results, fmt)
        _remember(session, results)
        if interrupts.signum is not None:
            return _after_interrupt(interrupts, results)
    return 1 if any(r.status in (Status.FAILED, Status.SKIPPED) for r in results) else 0


def _remember(session: Session, results: Sequence[WorkspaceResult]) -> None:
    """With ``--fleet-record``: every workspace this run left managed is added to the
    record, every one it left absent is dropped (the orphan alarm for it is answered)."""
    if session.record is None:
        return
    ensure = {spec.name: spec.ensure for spec in session.specs}
    done = [r.workspace for r in results if r.status in _DONE]
    fleet_record.update(
        session.record,
        managed=[n for n in done if ensure.get(n) is Ensure.PRESENT],
        released=[n for n in done if ensure.get(n) is Ensure.ABSENT],
    )


def _unfinished(workspace: str, wave: int) -> WorkspaceResult:
    return WorkspaceResult(
        workspace,
        wave,
        Status.INTERRUPTED,
        error="still finishing when pkgrepo exited: what it applied is not known here; its "
        "lock passes on when the lease runs out, and the next run sees its writes",
    )


_DONE = (Status.APPLIED, Status.UP_TO_DATE)


def _interrupted_line(name: str, results: Sequence[WorkspaceResult], why: str = "") -> str:
    count = Counter(r.status for r in results)
    partly = count[Status.INTERRUPTED]
    untouched = count[Status.SKIPPED]
    text = (
        f"interrupted by {name or 'a signal'}: {count[Status.APPLIED]} workspace(s) applied, "
        f"{partly} stopped part way, {untouched} not started"
    )
    if count[Status.FAILED]:
        text += f", {count[Status.FAILED]} failed"
    if why == "timeout":
        text += "; in-flight work did not finish within the grace period"
    return text + ". Run the same command again to finish: it picks up where this one stopped."


def _after_interrupt(interrupts: Interrupts, results: Sequence[WorkspaceResult]) -> int:
    """Exit code and last line after a signal: the results table is already printed."""
    if all(r.status in _DONE for r in results):
        output.warning(
            f"{interrupts.name} received after every workspace had finished: "
            "everything listed above was applied"
        )
        return 0
    output.error(_interrupted_line(interrupts.name, results))
    return interrupts.exit_code


def _plan(session: Session, salt: str, quiet: bool) -> FleetPlan:
    with FleetProgress(len(session.specs), quiet=quiet) as progress:
        session.fleet.listener = progress
        return session.fleet.plan(session.specs, salt=salt)


def _verify_indexes(session: Session, plan: Plan, skip: bool, fmt: str) -> None:
    """Refuse to roll out a package index that does not answer (before any prompt)."""
    report = verify_cmd.step(
        session.desired, session.specs, verify_cmd.changing(plan.workspaces), skip=skip
    )
    section = verify_cmd.section(report, "text")
    if section is not None:
        (output.echo if fmt == "text" else output.info)(section.rstrip("\n"))
    if not report.ok:
        raise PlanRefused(verify_cmd.refuse_message(report))


def _fail_on_plan_errors(fleet_plan: FleetPlan, also: Sequence[str] = ()) -> None:
    """A saved plan is applied whole or not at all: every workspace must re-plan."""
    if fleet_plan.failed:
        lines = [*also, *(f"{r.workspace}: {r.error}" for r in fleet_plan.failed)]
        raise UserError(
            "cannot plan every workspace of the saved plan, nothing was applied:"
            "\n  " + "\n  ".join(lines)
        )


def _confirm(auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise UserError(
            "not on a terminal: review the plan above and pass --auto-approve "
            "(or apply a saved plan file)"
        )
    # Terraform's rule: only the word itself approves. A stray "y" or Enter typed ahead
    # into a terminal does not apply changes to a fleet.
    output.info("\nDo you want to apply these changes? Only 'yes' will be accepted.")
    try:
        answer = click.prompt("Enter a value", default="", show_default=False, err=True)
    except click.exceptions.Abort:  # Ctrl-C or end of input at the prompt
        answer = ""
    if answer.strip() != "yes":
        raise PlanRefused("apply cancelled; nothing was changed")


def _check_safety(plan: Plan, *, allow_destroy: bool, force: bool) -> None:
    plan.safety().enforce(force=force, allow_destroy=allow_destroy)


def _print_results(
    session: Session, fleet_plan: FleetPlan, results: Sequence[WorkspaceResult], fmt: str
) -> None:
    shown = results or fleet_plan.results
    if fmt == "json":
        output.echo(json.dumps(report.document(shown), indent=2))
        return
    said = {f.workspace for f in fleet_plan.failed}  # the plan shown above named them
    output.echo(report.summary(shown, said=said))
