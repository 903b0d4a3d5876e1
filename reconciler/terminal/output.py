"""All terminal output and logging goes through here, so tests capture it in one place and
every line passes the secret scrubber first.

Secret values known to the process (resolved from ``env``/``file`` sources, tokens) are
registered with ``register_secrets``; any log record or message that contains one of them, in
plain, URL-encoded or base64 form, has it replaced by ``****`` before it is written.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable

import click

from reconciler.core.redact import Scrubber

_scrubber = Scrubber()
_adding = threading.Lock()


def register_secrets(values: Iterable[str]) -> None:
    """Make these values unprintable for the rest of the process (from any thread: values
    read back arrive from the fleet's workers)."""
    with _adding:
        _scrubber.add(values)


def register_secret(value: str) -> None:
    """One value, registered the moment it is read (the adapter's ``on_value``)."""
    register_secrets([value])


def scrub(text: str) -> str:
    return _scrubber.scrub(text)


def echo(text: str = "", *, nl: bool = True, color: bool | None = None) -> None:
    """Write to stdout (the command's result)."""
    click.echo(scrub(text), nl=nl, color=color)


def info(text: str) -> None:
    """Write to stderr (progress and notes, not the result)."""
    click.echo(scrub(text), err=True)


def error(text: str) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + scrub(text), err=True)


def warning(text: str) -> None:
    click.echo(click.style("warning: ", fg="yellow", bold=True) + scrub(text), err=True)


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = scrub(formatted)
        return True


class _Format(logging.Formatter):
    """Warnings and errors logged by the engine read as ``warning()`` and ``error()`` write
    them (``warning: ...``): one format for the user, whoever raised it. Debug lines name
    the logger they come from."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        level = record.levelname.lower()
        if record.levelno >= logging.WARNING:
            return f"{level}: {message}"
        return f"{level} {record.name}: {message}"


def configure_logging(*, debug: bool) -> None:
    """Warnings by default; everything (SDK request logs included) with ``--debug``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_pkgrepo", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._pkgrepo = True  # type: ignore[attr-defined]
    handler.addFilter(_ScrubFilter())
    handler.setFormatter(_Format())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    # The SDK warns about best-effort probes it recovers from (host metadata discovery);
    # pkgrepo reports what actually failed, so its warnings show only with --debug.
    logging.getLogger("databricks.sdk").setLevel(logging.DEBUG if debug else logging.ERROR)
