"""``pkgrepo validate``: check a desired-state file without touching any workspace.

It runs the loader (schema, merge, value resolution) and the built-in policy checks, so a CI
job or a pre-commit hook can gate a change on it with no network access and no credentials:
like ``terraform validate``, a value whose environment variable is not set is reported as a
note and checked without it. ``--resolve`` requires every value, as ``plan`` does. Output is
one line per finding, located ``FILE:LINE:COL``, or a stable JSON document for bots.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from reconciler import config
from reconciler.core import policy
from reconciler.terminal import output

FORMATS = ("text", "json")
UNRESOLVED = "unresolved"
"""The id of a note about a value whose environment variable is missing."""


@click.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text: one `FILE:LINE:COL: severity [check] workspace: message` line per finding; "
    'json: {"valid": ..., "findings": [...], "workspaces": N}.',
)
@click.option(
    "--resolve",
    is_flag=True,
    help="Require every environment variable FILE refers to, resolve every value and run "
    "the checks that need it (as plan does). Without it, a missing variable is a note.",
)
def command(file: Path, fmt: str, resolve: bool) -> int:
    """Check FILE against the schema and the built-in policy checks.

    \b
    Every problem is reported at once with its file position. Exit 0 when the
    file is valid (warnings and notes are shown), 1 when it has an error.
    Needs no network and no credentials: a value whose environment variable is
    not set is reported as a note and checked without it (the scheme and host
    around a ${env:NAME} placeholder are still checked). --resolve requires
    every value, as plan, apply and drift do.

    \b
    Checks: https-only, no-literal-credentials, users-read-only, admin-manage,
    cert-valid, cert-expired, cert-expiring (30 days), extra-urls-unique,
    extra-urls-whitespace, value-size, hosts-distinct, public-pypi-extra
    (warning); cert-validates-index is checked by verify, plan and apply (it
    needs the network). Waive one for a workspace
    with `waivers: [{check: https-only, reason: "local emulator"}]`.

    \b
    Examples:
      pkgrepo validate pkgrepo.yaml
      ARTIFACTORY_TOKEN=x pkgrepo validate --resolve examples/env-and-cert.yaml
      pkgrepo validate pkgrepo.yaml --format json | jq '.findings[]'
    """
    now = dt.datetime.now(dt.UTC)
    try:
        loaded = config.load(file, require_env=resolve)
    except config.InvalidConfig as exc:
        output.register_secrets(exc.secrets)
        # The workspaces that built are policy-checked too: one round of fixes, not two.
        partial = exc.partial
        found: tuple[policy.Finding, ...] = ()
        if partial is not None:
            output.register_secrets(partial.secrets)
            found = policy.evaluate(partial.desired, partial.provenance, now=now)
        return _report_invalid(file, exc.details, found, exc.notes, fmt)
    output.register_secrets(loaded.secrets)
    findings = policy.evaluate(loaded.desired, loaded.provenance, now=now)
    count = len(loaded.desired.workspaces)
    valid = not policy.has_errors(findings)
    notes = loaded.unresolved
    if fmt == "json":
        rows = [_finding_json(str(file), f) for f in findings]
        rows += [_problem_json(n, severity="note") for n in notes]
        _print_json({"valid": valid, "findings": rows, "workspaces": count})
    else:
        for finding, names in policy.grouped(findings):
            output.echo(policy.format_grouped(str(file), finding, names))
        _echo_notes(notes)
        output.info(_summary(file, findings, count, len(notes)))
    return 0 if valid else 1


def _report_invalid(
    file: Path,
    problems: tuple[config.Problem, ...],
    findings: tuple[policy.Finding, ...],
    notes: tuple[config.Problem, ...],
    fmt: str,
) -> int:
    if fmt == "json":
        rows = [_problem_json(p) for p in problems]
        rows += [_finding_json(str(file), f) for f in findings]
        rows += [_problem_json(n, severity="note") for n in notes]
        _print_json({"valid": False, "findings": rows, "workspaces": None})
    else:
        located = [(p.line, p.column, str(p)) for p in problems]
        located += [
            (first.line or 1 << 30, first.column, policy.format_grouped(str(file), first, names))
            for first, names in policy.grouped(findings)
        ]
        for _, _, text in sorted(located, key=lambda item: item[:2]):
            output.echo(text)
        _echo_notes(notes)
        errors = [f for f in findings if f.severity is policy.Level.ERROR]
        count = len(problems) + len(policy.grouped(errors))
        plural = "s" if count != 1 else ""
        output.info(f"{file}: invalid, {count} problem{plural}")
    return 1


def _echo_notes(notes: tuple[config.Problem, ...]) -> None:
    for note in notes:
        output.echo(
            f"{note.file}:{note.line}:{note.column}: note [{UNRESOLVED}] {note.path}: "
            f"{note.message}"
        )


def _summary(file: Path, findings: tuple[policy.Finding, ...], count: int, notes: int) -> str:
    errors = sum(f.severity is policy.Level.ERROR for f in findings)
    warnings = len(findings) - errors
    spaces = f"{count} workspace{'s' if count != 1 else ''}"
    unresolved = (
        f", {notes} value(s) checked without their environment variables (--resolve needs them)"
        if notes
        else ""
    )
    if not findings:
        return f"{file}: valid, {spaces}{unresolved}"
    state = "valid" if not errors else "invalid"
    return f"{file}: {state}, {spaces}, {errors} error(s), {warnings} warning(s){unresolved}"


def _finding_json(file: str, finding: policy.Finding) -> dict[str, Any]:
    return {
        "file": file,
        "line": finding.line or None,
        "column": finding.column or None,
        "severity": finding.severity.value,
        "check": finding.check,
        "workspace": finding.workspace,
        "path": finding.path,
        "message": finding.message,
    }


def _problem_json(problem: config.Problem, *, severity: str = "error") -> dict[str, Any]:
    path = problem.json_path
    workspace = path[1] if len(path) > 1 and path[0] == "workspaces" else None
    return {
        "file": problem.file,
        "line": problem.line,
        "column": problem.column,
        "severity": severity,
        "check": "config" if severity == "error" else UNRESOLVED,
        "workspace": workspace,
        "path": problem.path,
        "message": problem.message,
    }


def _print_json(document: dict[str, Any]) -> None:
    output.echo(json.dumps(document, indent=2, sort_keys=True))
