"""``pkgrepo emulator serve``: run the local Databricks Secrets API emulator in the foreground."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click

from reconciler.core.errors import UserError
from reconciler.emulator import ADMIN_TOKEN, USER_TOKEN, EmulatorConfig, load_config
from reconciler.emulator.config import EXAMPLE
from reconciler.emulator.handle import EmulatorHandle
from reconciler.emulator.persistence import StateFileError
from reconciler.terminal import output

_EXAMPLE_HELP = "\n".join("  " + line for line in EXAMPLE.splitlines())


@click.group("emulator")
def command() -> None:
    """A local stand-in for the Databricks Secrets API, for demos, tests and benchmarks.

    \b
    The real databricks-sdk (and the older databricks-cli) work against it
    unchanged: same paths, JSON, status codes and error codes, token auth,
    permissions, name and size limits, plus injectable latency, throttling and
    faults. See `pkgrepo emulator serve --help`.
    """


@command.command(
    "serve",
    epilog="\b\nConfiguration file format (--config):\n" + _EXAMPLE_HELP,
)
@click.option(
    "--host", "bind", default="127.0.0.1", show_default=True, help="Address to listen on."
)
@click.option(
    "--port",
    default=8020,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port; the start line shows which).",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Load from and save to this file after every change (mode 0600). It holds"
    " secret values in clear: for the emulator only.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML/JSON file with principals, tokens, groups and per-workspace settings"
    " (format below).",
)
@click.option("--quiet", is_flag=True, help="Do not log requests.")
def serve(
    bind: str, port: int, state_file: Path | None, config_file: Path | None, quiet: bool
) -> None:
    """Serve many emulated workspaces on one port until Ctrl-C.

    \b
    Each workspace has its own host: http://HOST:PORT/<workspace-name>
    (letters, digits, '.', '_', '-'); the root http://HOST:PORT is the workspace
    named "default". A workspace exists, empty, from its first request.
    \b
      WorkspaceClient(host="http://127.0.0.1:8020/dev", token="dapi-emulator-admin")
      DATABRICKS_HOST=http://127.0.0.1:8020/prod DATABRICKS_TOKEN=dapi-emulator-admin
    \b
    Default tokens (unless the config sets default_tokens: false):
      dapi-emulator-admin  admin@pkgrepo.local, a workspace admin everywhere
      dapi-emulator-user   user@pkgrepo.local, a plain member of 'users'
    \b
    By default each workspace behaves as the real service does (FIDELITY.md):
    secrets/get answers a principal with MANAGE on the scope (rest_get:
    manage_only | refused | allowed), timestamps are whole seconds, an existing
    scope is 400 RESOURCE_ALREADY_EXISTS. The config can make a workspace Key
    Vault backed, Standard tier, or lose and lag ACL writes. Each request is
    logged to stderr as method, path, status and milliseconds (never a body).
    """
    config = load_config(config_file) if config_file is not None else EmulatorConfig()
    log = None if quiet else output.info
    handle = EmulatorHandle(config, state_file, bind=bind, port=port, request_log=log)
    try:
        handle.start()
    except StateFileError as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:
        raise UserError(f"cannot listen on {bind}:{port}: {exc.strerror}") from exc
    output.echo(
        f"pkgrepo emulator listening on {handle.url} (workspace hosts: {handle.url}/<name>);"
        f" admin token: {ADMIN_TOKEN}, user token: {USER_TOKEN}"
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        handle.serve_forever()
    except KeyboardInterrupt:
        output.info("emulator stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        handle.stop()


def _terminate(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise KeyboardInterrupt
