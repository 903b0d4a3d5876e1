"""The ``pkgrepo`` command line: one module per subcommand under ``reconciler/commands``.

This is the only place that turns exceptions into exit codes: a ``UserError`` prints one
readable message and exits 1; anything unexpected is a bug in pkgrepo, and exits 3 (so CI
tells it from a user mistake, 1, and from "changes present", 2) with its type and scrubbed
message, and its scrubbed trace with ``--debug`` or ``PKGREPO_DEBUG=1``.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Sequence

import click

from reconciler import __version__
from reconciler.core.errors import UserError
from reconciler.core.redact import mask_credentials
from reconciler.terminal import output

EXIT_CRASH = 3
"""An unexpected error: a bug in pkgrepo, not a mistake in the input."""
_MAX_CRASH_MESSAGE = 500
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EIO,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
}

COMMAND_MODULES = (
    "validate",
    "verify",
    "plan",
    "apply",
    "drift",
    "export",
    "schema",
    "show",
    "force_unlock",
    "emulator",
)


SUMMARIES = {
    "validate": "Check FILE against the schema and the built-in policy checks.",
    "verify": "Check that the package indexes in FILE answer, before rolling them out.",
    "plan": "Read the live workspaces and show what `apply` would change.",
    "apply": "Apply a desired-state FILE, or a plan FILE saved by `pkgrepo plan --out`.",
    "drift": "Report every difference between the workspaces and the desired state in FILE.",
    "export": "Write a desired-state file that reproduces live workspaces as they are.",
    "schema": "Print the JSON schema (draft 2020-12) of the desired-state file.",
    "show": "Show plan FILES saved by `pkgrepo plan --out`, without applying them.",
    "force_unlock": "Remove the apply locks of the selected workspaces, whoever holds them.",
    "emulator": "A local stand-in for the Databricks Secrets API, for demos, tests and benchmarks.",
}
"""Each command's one-line help, so ``pkgrepo --help`` lists them without importing them
(and the SDK behind them). A test checks each against the command's own docstring."""


class _Group(click.Group):
    """Loads subcommands from ``reconciler.commands`` on first use, so ``--help`` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name.replace("_", "-") for name in COMMAND_MODULES]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = [module.replace("_", "-") for module in COMMAND_MODULES]
        limit = formatter.width - 6 - max(len(name) for name in names)  # as click does
        rows = []
        for name, module in zip(names, COMMAND_MODULES, strict=True):
            summary = SUMMARIES.get(module)
            if summary is None:  # a command without a summary here: ask it
                command = _load(module)
                summary = command.get_short_help_str(limit=150) if command else ""
            rows.append((name, _shorten(summary, limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = cmd_name.replace("-", "_")
        if module not in COMMAND_MODULES:
            return None
        return _load(module)


def _shorten(text: str, limit: int) -> str:
    """Cut at a word to fit ``limit`` characters, with "...", as click's short help does."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 3, 0)].rsplit(" ", 1)[0] + "..."


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
    Exit codes: 0 success and no changes, 1 error (usage mistakes included),
    2 changes present (plan --detailed-exitcode, drift), 3 unexpected error (a
    bug: report it with the trace that --debug or PKGREPO_DEBUG=1 shows).
    """
    ctx.ensure_object(dict)
    debug = debug or debug_from_env()
    ctx.obj["debug"] = debug
    output.configure_logging(debug=debug)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (never raises for a user mistake)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or debug_from_env()
    try:
        result = cli.main(args=args, prog_name="pkgrepo", standalone_mode=False)
    except click.exceptions.Abort:
        output.error("aborted")
        return 1
    except click.ClickException as exc:
        # A usage mistake (unknown command or option, bad choice) is an error like any
        # other: exit 1. Click's own 2 would read as "changes present" to a CI step that
        # runs `plan --detailed-exitcode` or `drift`.
        exc.show()
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except UserError as exc:
        output.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except BrokenPipeError:  # the reader went away (`pkgrepo plan | head`): nothing to say
        _silence_stdout()
        return 1
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
            # the machine, not pkgrepo: a full disk, a read-only or unreadable place
            where = f" ({exc.filename})" if exc.filename else ""
            output.error(f"{exc.strerror or type(exc).__name__}{where}")
            return 1
        _report_crash(exc, debug=debug)  # a bug: say what it was, never with a secret in it
        return EXIT_CRASH
    return result if isinstance(result, int) else 0


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush does
    not fail again (the documented recipe for SIGPIPE in Python)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def debug_from_env() -> bool:
    """``PKGREPO_DEBUG`` as any usual yes (1, true, yes, on, ...); anything else is no, never
    a usage error (a stray value must not break every command)."""
    return os.environ.get("PKGREPO_DEBUG", "").strip().lower() in _TRUE


def _report_crash(exc: BaseException, *, debug: bool) -> None:
    """Type and message always; the trace only on request. Both pass the scrubber (values
    pkgrepo resolved) and the credential masker (anything that looks like one)."""
    message = _safe(str(exc)[: _MAX_CRASH_MESSAGE * 8])
    if len(message) > _MAX_CRASH_MESSAGE:
        message = message[:_MAX_CRASH_MESSAGE] + "..."
    if debug:
        trace = "".join(traceback.format_exception(exc))
        output.info(_safe(trace).rstrip("\n"))
    detail = f": {message}" if message else ""
    output.error(f"unexpected error ({type(exc).__name__}){detail}")
    if debug:
        output.info("This is a bug in pkgrepo; please report it with the trace above.")
    else:
        output.info("This is a bug in pkgrepo; rerun with --debug to see the trace and report it.")


def _safe(text: str) -> str:
    printable = "".join(c if c.isprintable() or c == "\n" else "?" for c in text)
    return mask_credentials(output.scrub(printable))
