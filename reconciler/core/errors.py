"""Every error pkgrepo raises on purpose, and how a command ends on it.

| error | meaning | exit |
|---|---|---|
| ``UserError`` and below | something the user can act on: one message, no stack trace | 1 |
| ``ConfigError`` (``config.problems.InvalidConfig``) | the desired-state file is invalid | 1 |
| ``WorkspaceError`` | one workspace could not be read or written; fails that one alone | 1 |
| ``PlanRefused`` | a plan may not be applied as it stands | 1 |
| ``UnsafePlan``: ``DestroyNotAllowed``, ``PastSafetyLimits`` | needs a flag | 1 |
| ``LockHeld`` / ``LeaseLost`` | another run holds the lock / this run lost it | 1 |
| ``Cancelled`` | interrupted before a write (SIGINT exits 130, SIGTERM 143) | 130/143 |
| ``TransientError`` | worth retrying; retried within a deadline, then a ``WorkspaceError`` | 1 |
| anything else | a bug: one scrubbed line (``--debug``: the traceback) | 3 |

A plan with changes (``--detailed-exitcode``) and drift exit 2; that is a result, not an
error. Messages never carry a secret value: callers pass redacted text only, and every line
printed goes through the output scrubber as well.
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


class LockHeld(UserError):
    """Another run holds the workspace's lock."""


class LeaseLost(WorkspaceError):
    """This run can no longer be sure it holds the workspace's lock: it stops writing there."""


class Cancelled(UserError):
    """The run was interrupted before this write: it was not sent."""


class UnsafePlan(PlanRefused):
    """The plan's own safety verdict forbids this apply without a flag (``plan.Safety``):
    the one place that decision is made, for files and saved plans alike."""

    flag = ""


class DestroyNotAllowed(UnsafePlan):
    """The plan deletes a scope, or its last grants, and ``--allow-destroy`` was not given."""

    flag = "--allow-destroy"


class PastSafetyLimits(UnsafePlan):
    """The plan changes more than the safety limits allow, and ``--force`` was not given."""

    flag = "--force"
