"""``pkgrepo verify``: probe the package indexes a desired-state file points workspaces at,
from the machine pkgrepo runs on, before they are rolled out. Also the verify step that
``plan`` and ``apply`` run for the repository values they would change."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

import click

from reconciler.commands.context import load_desired
from reconciler.commands.selection import from_flags, select, selection_options
from reconciler.core import verify
from reconciler.core.errors import UserError
from reconciler.core.model import DesiredState, Kind, WorkspaceSpec
from reconciler.core.plan import Action, WorkspacePlan
from reconciler.edges.probe import Prober
from reconciler.render import verify as render_verify
from reconciler.render._common import clean
from reconciler.terminal import output

SKIP_ENV = "PKGREPO_SKIP_VERIFY"
PROJECT_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
"""A PEP 508 project name, as the schema's ``verify.project`` accepts it."""
SKIP_WARNING = (
    "--skip-verify: the package indexes were not probed; a wrong URL, token or certificate "
    "would reach every notebook and job of these workspaces"
)
ProberFactory = Callable[[str, float], Prober]


def _prober(project: str, timeout: float) -> Prober:
    return Prober(project=project, timeout=timeout)


new_prober: ProberFactory = _prober
"""How commands make their prober (a test replaces it to count probes)."""


def skip_verify_option(fn: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "--skip-verify",
        is_flag=True,
        envvar=SKIP_ENV,
        help="Do not probe the package indexes of the values that change (prints a warning). "
        f"Also ${SKIP_ENV}=1.",
    )(fn)


def run(
    desired: DesiredState,
    specs: Iterable[WorkspaceSpec],
    *,
    project: str | None = None,
    timeout: float | None = None,
) -> verify.Report:
    """Probe each distinct repository combination of ``specs`` once."""
    combos = verify.combinations(specs)
    prober = new_prober(
        project or desired.verify.project,
        timeout if timeout is not None else desired.verify.timeout_seconds,
    )
    return prober.run(combos)


def step(
    desired: DesiredState,
    specs: Iterable[WorkspaceSpec],
    changing: frozenset[str],
    *,
    skip: bool,
) -> verify.Report:
    """The verify step of ``plan`` and ``apply``: only the workspaces whose repository values
    change are probed (the others already run with theirs)."""
    chosen = [spec for spec in specs if spec.name in changing]
    if not verify.combinations(chosen):
        return verify.Report(notes=("no repository value changes: nothing to verify",))
    if skip:
        output.warning(SKIP_WARNING)
        return verify.skipped("--skip-verify")
    report = run(desired, chosen)
    for res in report.results:
        for line in render_verify.waiver_lines(res.waived()):
            output.warning(f"package index check #{res.combination} failed and is {line}")
    return report


def changing(plans: Iterable[WorkspacePlan]) -> frozenset[str]:
    """The workspaces whose plan creates or updates a repository key."""
    keys: dict[str, list[str]] = {}
    for ws in plans:
        keys[ws.workspace] = [
            c.address.name
            for c in ws.changes
            if c.address.kind is Kind.SECRET and c.action in (Action.CREATE, Action.UPDATE)
        ]
    return verify.changing_repositories(keys)


def section(report: verify.Report, fmt: str) -> str | None:
    """The verify report as a section of a plan in format ``fmt``, or ``None`` when there is
    nothing worth showing."""
    if fmt == "markdown" and (report.results or report.skipped):
        return render_verify.render(report, fmt)
    if not report.results:  # skipped: the warning said so on stderr
        return None
    return render_verify.render(report, "text")


def refuse_message(report: verify.Report, *, consequence: str = "nothing was applied") -> str:
    names = report.failed_workspaces()
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    waivable = sorted(
        {
            url.check
            for failures in report.failures_by_workspace().values()
            for url in failures
            if url.check in verify.WAIVABLE
        }
    )
    waive = "".join(
        f"; where the clusters trust the index another way (a proxy that re-signs it), "
        f"waive it per workspace: `waivers: [{{check: {check}, reason: ...}}]`"
        for check in waivable
    )
    return (
        f"the package index check failed for {len(names)} workspace(s) ({shown}); "
        f"{consequence}. Fix the index URL, credentials or pip-cert, or rerun with "
        f"--skip-verify to roll it out anyway{waive}"
    )


@click.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(render_verify.FORMATS),
    default="text",
    show_default=True,
    help="text for people, json for bots, markdown for a pull-request comment, junit for CI.",
)
@click.option(
    "--output",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file instead of stdout.",
)
@click.option(
    "--project",
    default=None,
    metavar="NAME",
    help="The project whose index page is fetched (default: the file's verify.project, or pip).",
)
@click.option(
    "--probe-timeout",
    type=click.FloatRange(min=0.1, max=120),
    default=None,
    metavar="SECONDS",
    help="Wait at most this long to connect and for each read (default: the file's "
    "verify.timeout_seconds, or 10).",
)
@selection_options
def command(
    file: Path,
    fmt: str,
    out: Path | None,
    project: str | None,
    probe_timeout: float | None,
    names: tuple[str, ...],
    labels: tuple[str, ...],
    shard: str | None,
) -> int:
    """Check that the package indexes in FILE answer, before rolling them out.

    \b
    For each distinct (index URL, extra index URLs, pip-cert) combination of the
    selected workspaces, once however many workspaces share it, from this machine:
      - TLS: the index's certificate chain and name validate against the declared
        pip-cert (only those CAs, as `pip --cert` does), or the system trust store;
        the subject, issuer and expiry are shown, and why a chain fails.
      - credentials: the index accepts the URL's credentials (401/403: refused).
      - the Simple Repository API answers (PEP 691 JSON or PEP 503 HTML) for a
        probe project (`verify: {project: NAME}` in the file, default pip), or
        at the index root when the project is not there.
      - each extra index URL the same way.
    Credentials are never sent over an unvalidated connection nor to another host
    a redirect points at, and never shown. No workspace is contacted.

    \b
    What it cannot see: the clusters' own network path (firewalls, private
    endpoints, proxies) may differ from this machine's.

    \b
    Exit 0 when every index answers, 1 when one does not.

    \b
    Examples:
      pkgrepo verify pkgrepo.yaml
      pkgrepo verify pkgrepo.yaml --workspace 'prod-*' --format junit --output verify.xml
    """
    if project is not None and not PROJECT_NAME.fullmatch(project):
        raise UserError(
            f"--project: {clean(project)!r} is not a project name (letters, digits, `.`, `_`, "
            "`-`; starting and ending with a letter or digit)"
        )
    desired = load_desired(file)
    specs = select(desired.workspaces, from_flags(names, labels, shard))
    report = run(desired, specs, project=project, timeout=probe_timeout)
    if not report.results:
        report = verify.Report(notes=("no selected workspace declares a package index",))
    shown = render_verify.render(report, fmt)
    if out is not None:
        out.write_text(output.scrub(shown), encoding="utf-8")
        output.info(render_verify.summary(report))
    else:
        output.echo(shown.rstrip("\n"))
    return 0 if report.ok else 1
