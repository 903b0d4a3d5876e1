"""The ``pkgrepo`` command line: one module per subcommand under ``reconciler/commands``.

This is the only place that turns exceptions into exit codes: a ``UserError`` prints one
readable message and exits 1; anything unexpected prints a short notice (the trace only with
``--debug``) and exits 1 as well, so CI never mistakes a crash for "changes present" (2).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click

from reconciler import __version__, output
from reconciler.errors import UserError

COMMAND_MODULES = (
    "validate",
    "verify",
    "plan",
    "apply",
    "drift",
    "export",
    "schema",
    "force_unlock",
    "emulator",
)


class _Group(click.Group):
    """Loads subcommands from ``reconciler.commands`` on first use, so ``--help`` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name.replace("_", "-") for name in COMMAND_MODULES if _load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = cmd_name.replace("-", "_")
        if module not in COMMAND_MODULES:
            return None
        return _load(module)


def _load(module: str) -> click.Command | None:
    import importlib

    try:
        mod = importlib.import_module(f"reconciler.commands.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"reconciler.commands.{module}":
            return None
        raise
    command = getattr(mod, "command", None)
    return command if isinstance(command, click.Command) else None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pkgrepo")
@click.option(
    "--debug",
    is_flag=True,
    envvar="PKGREPO_DEBUG",
    help="Log every step (secret values are scrubbed) and show traces of unexpected errors.",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Keep the default Python package repositories of Databricks workspaces in Git.

    \b
    A desired-state YAML file declares, for one or many workspaces, the index URL,
    extra index URLs, CA certificate and ACLs of the `databricks-package-management`
    secret scope. pkgrepo validates the file, plans the changes against the live
    workspaces, and applies them.

    \b
    Typical flow:
      pkgrepo validate pkgrepo.yaml
      pkgrepo plan pkgrepo.yaml --out plan.json
      pkgrepo apply plan.json
      pkgrepo drift pkgrepo.yaml --format junit --output drift.xml

    \b
    Exit codes: 0 success and no changes, 1 error, 2 changes present
    (plan --detailed-exitcode, drift).
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    output.configure_logging(debug=debug)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (never raises for a user mistake)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="pkgrepo", standalone_mode=False)
    except click.exceptions.Abort:
        output.error("aborted")
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except UserError as exc:
        output.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except Exception as exc:  # anything unexpected: short notice, trace only on request
        if debug:
            logging.getLogger("pkgrepo").exception("unexpected error")
        output.error(f"unexpected error ({type(exc).__name__}); rerun with --debug for details")
        return 1
    return result if isinstance(result, int) else 0
