"""``pkgrepo show``: render saved plans without applying them (or reaching any workspace).

One plan file is shown as ``plan`` showed it. Several (the shards of a CI matrix) become one
report: the overall counts and safety verdicts first, then each plan under its file name,
so a merge request gets one comment with a total instead of pasted fragments.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reconciler.core.plan import Plan
from reconciler.edges import planfile
from reconciler.render import FORMATS, junit, render, to_document
from reconciler.render._common import Summary, plural
from reconciler.render.markdown import escape
from reconciler.terminal import output


@click.command("show")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people, json for CI bots, markdown for a merge-request comment, junit "
    "for CI test reports.",
)
def command(files: tuple[Path, ...], fmt: str) -> int:
    """Show plan FILES saved by `pkgrepo plan --out`, without applying them.

    \b
    Reads only the files: no workspace is reached and no credential or ledger key
    is needed. Several files (one per CI shard) are merged into one report with
    the overall counts, then each plan under its file name.

    \b
    Examples:
      pkgrepo show plan.json
      pkgrepo show plan-*.json --format markdown > comment.md
    """
    saved = [(path, planfile.read_unverified(path)) for path in files]
    color = fmt == "text" and sys.stdout.isatty()
    if len(saved) == 1:
        path, plan_file = saved[0]
        output.echo(render(plan_file.plan, fmt, color=color).rstrip("\n"))
        output.info(
            f"{path}: a saved plan of {plan_file.source}; apply it with: pkgrepo apply {path}"
        )
        return 0
    plans = [(str(path), plan_file.plan) for path, plan_file in saved]
    if fmt == "json":
        output.echo(json.dumps(_merged_document(plans), indent=2))
    elif fmt == "markdown":
        output.echo(_merged_markdown(plans).rstrip("\n"))
    elif fmt == "junit":  # one suite per plan file
        suites = [junit.plan_suite(plan, name=f"pkgrepo plan {name}") for name, plan in plans]
        output.echo(junit.document(suites).rstrip("\n"))
    else:
        output.echo(_merged_text(plans, color=color).rstrip("\n"))
    return 0


def _totals(plans: list[tuple[str, Plan]]) -> str:
    summaries = [Summary.of(plan) for _, plan in plans]
    create = sum(s.create for s in summaries)
    update = sum(s.update for s in summaries)
    delete = sum(s.delete for s in summaries)
    workspaces = sum(s.workspaces for s in summaries)
    changed = sum(s.workspaces_changed for s in summaries)
    return (
        f"{create} to create, {update} to update, {delete} to delete across {changed} of "
        f"{plural(workspaces, 'workspace')} in {len(plans)} plan files"
    )


def _verdicts(plans: list[tuple[str, Plan]]) -> list[str]:
    """One line per plan file that needs a flag; each file is applied on its own."""
    lines = []
    for name, plan in plans:
        safety = plan.safety()
        if plan.has_changes and not safety.within_limits:
            lines.append(f"{name}: {safety.verdict_text()}")
    return lines


def _merged_text(plans: list[tuple[str, Plan]], *, color: bool) -> str:
    parts = []
    for name, plan in plans:
        parts.append(f"== {name} ==\n{render(plan, 'text', color=color)}")
    parts.append(f"Total: {_totals(plans)}.")
    needs = _verdicts(plans)
    if needs:
        parts.extend(f"Safety: {line}" for line in needs)
    else:
        parts.append("Safety: every plan file is within limits.")
    return "\n".join(parts) + "\n"


def _merged_markdown(plans: list[tuple[str, Plan]]) -> str:
    blocks = [f"## pkgrepo plan: {_totals(plans)}"]
    needs = _verdicts(plans)
    if needs:
        blocks.append(
            "\n".join(
                f"- \N{WARNING SIGN}\N{VARIATION SELECTOR-16} **Safety:** {escape(line)}"
                for line in needs
            )
        )
    else:
        blocks.append("\N{WHITE HEAVY CHECK MARK} **Safety: every plan file is within limits.**")
    for name, plan in plans:
        demoted = "\n".join(
            "##" + line if line.startswith("#") else line
            for line in render(plan, "markdown").splitlines()
        )
        blocks.append(f"### Plan file {escape(name)}\n\n{demoted}")
    return "\n\n".join(blocks) + "\n"


def _merged_document(plans: list[tuple[str, Plan]]) -> dict[str, object]:
    summaries = [Summary.of(plan) for _, plan in plans]
    return {
        "kind": "pkgrepo-plans",
        "summary": {
            "create": sum(s.create for s in summaries),
            "update": sum(s.update for s in summaries),
            "delete": sum(s.delete for s in summaries),
            "workspaces": sum(s.workspaces for s in summaries),
            "workspaces_changed": sum(s.workspaces_changed for s in summaries),
            "plan_files": len(plans),
        },
        "plans": [{"file": name, "plan": to_document(plan)} for name, plan in plans],
    }
