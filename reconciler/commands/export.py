"""``pkgrepo export``: write a desired-state file that reproduces live workspaces.

For adopting pkgrepo where the settings were made by hand. Workspaces are read concurrently
through the adapter with value reads switched on (they answer inside a notebook or job);
every value read is registered with the output scrubber the moment it arrives, so no later
message can show it. The document itself is built by ``reconciler.edges.export``.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from reconciler import config
from reconciler.commands.selection import from_flags, select, selection_options
from reconciler.core.errors import ConfigError, UserError
from reconciler.core.model import AuthSpec, LiveState, SecretValue, WorkspaceSpec
from reconciler.edges import export
from reconciler.edges.adapter import SdkWorkspace
from reconciler.edges.ledger_store import WorkspaceLedgerStore
from reconciler.edges.private_file import write_private
from reconciler.engine.fleet import DEFAULT_PARALLELISM, each_workspace
from reconciler.engine.port import WorkspacePort
from reconciler.engine.workspace import observe
from reconciler.terminal import output

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@click.command("export")
@click.option(
    "--output",
    "-o",
    "output_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the desired-state YAML here (certificates go to certs/ beside it).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="[NAME=]URL",
    help="A workspace to export. Repeatable. NAME defaults to the URL's last path "
    "segment or first host label.",
)
@click.option(
    "--token-env",
    "token_envs",
    multiple=True,
    metavar="VAR",
    help="The environment variable holding the token: once for every --host, or "
    "once per --host in the same order.",
)
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="NAME",
    help="A ~/.databrickscfg profile instead of a token: once, or once per --host.",
)
@click.option(
    "--from",
    "from_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Export the workspaces of this desired-state file (host and auth as written there).",
)
@functools.partial(selection_options, note="With --from only.")
@click.option(
    "--parallelism",
    "-p",
    type=click.IntRange(min=1, max=512),
    default=DEFAULT_PARALLELISM,
    show_default=True,
    help="Workspaces read at the same time.",
)
@click.option("--force", is_flag=True, help="Overwrite the output file and certificate files.")
def command(
    output_file: Path,
    hosts: tuple[str, ...],
    token_envs: tuple[str, ...],
    profiles: tuple[str, ...],
    from_file: Path | None,
    names: tuple[str, ...],
    labels: tuple[str, ...],
    shard: str | None,
    parallelism: int,
    force: bool,
) -> int:
    """Write a desired-state file that reproduces live workspaces as they are.

    \b
    ACLs are written as found. Secret values are read where `secrets/get` answers
    (inside a Databricks notebook or job); credentials inside URLs become
    ${env:NAME} placeholders and only the variable names are printed, so the file
    holds no secret. A certificate goes to certs/<workspace>-pip-cert.pem beside
    the file. A value that cannot be read becomes {env: <WS>_PIP_INDEX_URL} (and
    the like) with a comment: set the variable to the value. Set the printed
    variables, then `pkgrepo plan FILE` shows no changes (outside a notebook,
    a value pkgrepo's ledger cannot vouch for shows as unverifiable).

    \b
    Examples:
      pkgrepo export --host prod-eu=https://adb-123.7.azuredatabricks.net \\
          --token-env PROD_EU_TOKEN -o pkgrepo.yaml
      pkgrepo export --host https://dbc-a1b2.cloud.databricks.com --profile dev -o dev.yaml
      pkgrepo export --from pkgrepo.yaml --select env=prod -o prod-as-found.yaml
    """
    if not hosts and from_file is None:
        raise UserError("nothing to export: give --host URL (repeatable) or --from FILE")
    if (names or labels or shard) and from_file is None:
        raise UserError("--workspace, --select and --shard choose workspaces of --from FILE")
    if (token_envs or profiles) and not hosts:
        raise UserError("--token-env and --profile go with --host")
    targets: list[tuple[export.ExportTarget, WorkspaceSpec]] = []
    if from_file is not None:
        targets += _from_file(from_file, output_file, names, labels, shard)
    targets += _from_hosts(hosts, token_envs, profiles)
    _check_unique(targets)
    _refuse_overwrite(output_file, [export.cert_path(t.name) for t, _ in targets], force)
    live = _read_all([spec for _, spec in targets], parallelism)
    source = str(from_file) if from_file else "--host"
    built = export.build(
        [(t, live[t.name]) for t, _ in targets], now=dt.datetime.now(dt.UTC), source=source
    )
    output.register_secrets(v.value for v in built.variables if v.value)
    _write(output_file, built)
    _report(output_file, built, len(targets))
    return 0


# -- which workspaces ---------------------------------------------------------------------


def _from_hosts(
    hosts: Sequence[str], token_envs: Sequence[str], profiles: Sequence[str]
) -> list[tuple[export.ExportTarget, WorkspaceSpec]]:
    if token_envs and profiles:
        raise UserError("give --token-env or --profile, not both")
    for flag, given in (("--token-env", token_envs), ("--profile", profiles)):
        if len(given) not in (0, 1, len(hosts)):
            raise UserError(
                f"{flag} is given {len(given)} times for {len(hosts)} --host: "
                "give it once for all of them, or once per --host"
            )
    out = []
    for index, text in enumerate(hosts):
        name, url = _name_and_url(text)
        auth_yaml: dict[str, Any] | None = None
        auth = AuthSpec()
        if token_envs:
            var = token_envs[index if len(token_envs) > 1 else 0]
            auth, auth_yaml = _token_auth(var), {"token": {"env": var}}
        elif profiles:
            profile = profiles[index if len(profiles) > 1 else 0]
            auth, auth_yaml = AuthSpec(kind="profile", profile=profile), {"profile": profile}
        target = export.ExportTarget(name=name, host=url, auth=auth_yaml)
        out.append((target, WorkspaceSpec(name=name, host=url, auth=auth)))
    return out


def _name_and_url(text: str) -> tuple[str, str]:
    name, eq, url = text.partition("=")
    if not eq or "://" in name:
        name, url = "", text
    if "://" not in url:
        raise UserError(
            f"--host {text!r}: expected [NAME=]URL, e.g. "
            "prod-eu=https://adb-1234567890123456.7.azuredatabricks.net"
        )
    if not name:
        rest = url.split("://", 1)[1]
        host, _, path = rest.partition("/")
        segments = [s for s in path.split("/") if s]
        name = segments[-1] if segments else host.split("@")[-1].split(":")[0].split(".")[0]
    if not _NAME.match(name):
        raise UserError(
            f"--host {text!r}: workspace name {name!r} is not valid (letters, "
            "digits, _ . -); name it with NAME=URL"
        )
    return name, url.rstrip("/")


def _token_auth(var: str) -> AuthSpec:
    if not _ENV_NAME.match(var):
        raise UserError(f"--token-env {var!r}: expected an environment variable name")
    token = os.environ.get(var)
    if not token:
        raise UserError(f"--token-env {var}: the environment variable is not set")
    output.register_secrets([token])
    return AuthSpec(kind="token", token=SecretValue(token))


def _from_file(
    path: Path,
    output_file: Path,
    names: tuple[str, ...],
    labels: tuple[str, ...],
    shard: str | None,
) -> list[tuple[export.ExportTarget, WorkspaceSpec]]:
    # Export reads the workspaces; it needs their credentials, not the values the file
    # would write (index URLs and their tokens): those may be unset here.
    loaded = config.load(path, require_env=False)
    output.register_secrets(loaded.secrets)
    needed = [note for note in loaded.unresolved if "auth" in note.json_path]
    if needed:
        raise ConfigError([str(note) for note in needed])
    specs = select(loaded.desired.workspaces, from_flags(names, labels, shard))
    out = []
    for spec in specs:
        auth = loaded.auth_as_written.get(spec.name)
        target = export.ExportTarget(
            name=spec.name,
            host=spec.host,
            auth=_rebase(auth, path.parent, output_file.parent, spec.name) if auth else None,
            labels=dict(spec.labels),
            wave=spec.wave,
        )
        out.append((target, spec))
    return out


def _rebase(
    auth: Mapping[str, Any], source_dir: Path, output_dir: Path, workspace: str
) -> dict[str, Any]:
    """The auth block for the new file: ``{file: ...}`` paths rebased to its directory; a
    token or client secret typed into the source file is not copied (it would be a secret
    in Git) but replaced by ``{env: <WS>_DATABRICKS_TOKEN}``."""
    out: dict[str, Any] = {}
    for key, value in auth.items():
        if isinstance(value, dict) and "file" in value:
            file = Path(str(value["file"]))
            if not file.is_absolute():
                file = Path(os.path.relpath((source_dir / file).resolve(), output_dir.resolve()))
            out[key] = {"file": str(file)}
        elif key in ("token", "client_secret") and isinstance(value, str) and "${" not in value:
            suffix = "DATABRICKS_TOKEN" if key == "token" else "CLIENT_SECRET"
            out[key] = {"env": f"{export.env_prefix(workspace)}_{suffix}"}
        else:
            out[key] = value
    return out


def _check_unique(targets: Sequence[tuple[export.ExportTarget, WorkspaceSpec]]) -> None:
    seen_names: set[str] = set()
    seen_hosts: dict[str, str] = {}
    for target, _ in targets:
        if target.name in seen_names:
            raise UserError(
                f"workspace {target.name!r} is given twice; name one with --host NAME=URL"
            )
        seen_names.add(target.name)
        host = target.host.rstrip("/").lower()
        if host in seen_hosts:
            raise UserError(
                f"workspaces {seen_hosts[host]!r} and {target.name!r} have the same host"
            )
        seen_hosts[host] = target.name


def _refuse_overwrite(output_file: Path, certs: Sequence[str], force: bool) -> None:
    if force:
        return
    existing = [p for p in (output_file, *(output_file.parent / c for c in certs)) if p.exists()]
    if existing:
        listed = ", ".join(str(p) for p in existing)
        raise UserError(f"{listed} already exist(s); pass --force to overwrite")


# -- reading and writing ------------------------------------------------------------------


def _read_all(specs: Sequence[WorkspaceSpec], parallelism: int) -> dict[str, LiveState]:
    def connect(spec: WorkspaceSpec) -> WorkspacePort:
        return SdkWorkspace.connect(
            spec, ledger_in_workspace=False, read_values=True, on_value=output.register_secret
        )

    def read(spec: WorkspaceSpec, port: WorkspacePort) -> LiveState:
        # Every value read back was registered by ``on_value`` as it arrived.
        return observe(spec, port, WorkspaceLedgerStore(), None).live

    reached = each_workspace(specs, connect, read, parallelism=parallelism)
    failed = [f"{r.spec.name}: {r.error}" for r in reached if r.error is not None]
    if failed:
        raise UserError(
            "cannot read every workspace, nothing was written:\n  " + "\n  ".join(failed)
        )
    return {r.spec.name: r.value for r in reached if r.value is not None}


def _write(output_file: Path, built: export.Export) -> None:
    base = output_file.parent
    try:
        for relative, content in built.files.items():
            # Owner-only: a certificate file holds no secret, but it came from a secret
            # scope, and the export never widens who can read what it copied.
            write_private(base / relative, content.encode("utf-8"))
        base.mkdir(parents=True, exist_ok=True)
        output_file.write_text(built.text, encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"cannot write the export: {exc.strerror or type(exc).__name__} ({exc.filename})"
        ) from None


def _report(output_file: Path, built: export.Export, count: int) -> None:
    output.info(f"Wrote {output_file} ({count} workspace{'s' if count != 1 else ''}).")
    for relative in built.files:
        output.info(f"Wrote {output_file.parent / relative}.")
    for note in built.notes:
        output.warning(note)
    if built.variables:
        output.info(
            "Set these environment variables before `pkgrepo plan "
            f"{output_file}` (their names only; values are never printed):"
        )
        width = max(len(v.name) for v in built.variables)
        for variable in built.variables:
            output.echo(f"  {variable.name.ljust(width)}  {variable.purpose}")
    output.info(f"Then check it: pkgrepo validate {output_file} && pkgrepo plan {output_file}")
