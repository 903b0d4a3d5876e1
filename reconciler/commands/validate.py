"""``pkgrepo validate``: check a desired-state file without touching any workspace.

It runs the loader (schema, merge, value resolution) and the built-in policy checks, so a CI
job can gate a pull request on it with no network access and no Databricks credentials
(only the environment variables and files the file refers to). Output is one line per
finding, located ``FILE:LINE:COL``, or a stable JSON document for bots.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from reconciler import config, output, policy

FORMATS = ("text", "json")


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
def command(file: Path, fmt: str) -> int:
    """Check FILE against the schema and the built-in policy checks.

    \b
    Every problem is reported at once with its file position. Exit 0 when the
    file is valid (warnings are shown), 1 when it has an error. Needs no network
    and no credentials, only the environment variables and files FILE refers to.

    \b
    Checks: https-only, no-literal-credentials, users-read-only, admin-manage,
    cert-valid, cert-expired, cert-expiring (30 days), extra-urls-unique,
    extra-urls-whitespace, value-size, hosts-distinct, public-pypi-extra
    (warning). Waive one for a workspace
    with `waivers: [{check: https-only, reason: "local emulator"}]`.

    \b
    Examples:
      pkgrepo validate pkgrepo.yaml
      ARTIFACTORY_TOKEN=x pkgrepo validate examples/env-and-cert.yaml
      pkgrepo validate pkgrepo.yaml --format json | jq '.findings[]'
    """
    try:
        loaded = config.load(file)
    except config.InvalidConfig as exc:
        output.register_secrets(exc.secrets)
        return _report_invalid(file, exc.details, fmt)
    output.register_secrets(loaded.secrets)
    now = dt.datetime.now(dt.UTC)
    findings = policy.evaluate(loaded.desired, loaded.provenance, now=now)
    count = len(loaded.desired.workspaces)
    valid = not policy.has_errors(findings)
    if fmt == "json":
        rows = [_finding_json(str(file), f) for f in findings]
        _print_json({"valid": valid, "findings": rows, "workspaces": count})
    else:
        for finding in findings:
            output.echo(finding.format(str(file)))
        output.info(_summary(file, findings, count))
    return 0 if valid else 1


def _report_invalid(file: Path, problems: tuple[config.Problem, ...], fmt: str) -> int:
    if fmt == "json":
        rows = [_problem_json(p) for p in problems]
        _print_json({"valid": False, "findings": rows, "workspaces": None})
    else:
        for problem in problems:
            output.echo(str(problem))
        plural = "s" if len(problems) != 1 else ""
        output.info(f"{file}: invalid, {len(problems)} problem{plural}")
    return 1


def _summary(file: Path, findings: tuple[policy.Finding, ...], count: int) -> str:
    errors = sum(f.severity is policy.Severity.ERROR for f in findings)
    warnings = len(findings) - errors
    spaces = f"{count} workspace{'s' if count != 1 else ''}"
    if not findings:
        return f"{file}: valid, {spaces}"
    state = "valid" if not errors else "invalid"
    return f"{file}: {state}, {spaces}, {errors} error(s), {warnings} warning(s)"


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


def _problem_json(problem: config.Problem) -> dict[str, Any]:
    path = problem.json_path
    workspace = path[1] if len(path) > 1 and path[0] == "workspaces" else None
    return {
        "file": problem.file,
        "line": problem.line,
        "column": problem.column,
        "severity": "error",
        "check": "config",
        "workspace": workspace,
        "path": problem.path,
        "message": problem.message,
    }


def _print_json(document: dict[str, Any]) -> None:
    output.echo(json.dumps(document, indent=2, sort_keys=True))
