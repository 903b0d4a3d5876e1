"""Errors a user can act on.

Anything raised as a ``UserError`` ends the command with its message and exit code 1, and no
stack trace. Messages must never carry a secret value: callers pass redacted text only.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, missing credentials, refused plan."""

    exit_code = 1


class ConfigError(UserError):
    """The desired-state file is invalid. ``problems`` holds every finding, sorted by position."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class WorkspaceError(UserError):
    """One workspace could not be read or written (bad token, not an admin, unreachable)."""

    def __init__(self, workspace: str, message: str) -> None:
        self.workspace = workspace
        self.detail = message
        """The message without the workspace name, for lists already grouped by workspace."""
        super().__init__(f"{workspace}: {message}")


class TransientError(Exception):
    """A failure worth retrying (throttling, 5xx, connection reset)."""


class PlanRefused(UserError):
    """A plan may not be applied as it stands (stale, tampered, unsafe without a flag)."""
