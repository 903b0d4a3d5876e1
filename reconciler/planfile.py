"""The saved plan (``plan --out FILE``, ``apply FILE``).

It is the JSON plan document (``schemas/plan.schema.json``) wrapped with where it came from:
the desired-state file and the workspaces selected. It holds redacted texts and digests
only, never a value: ``apply`` re-resolves the values, re-plans, and refuses when any
digest differs (the reviewed plan is the applied plan) or the live state moved (stale).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import PlanRefused, UserError
from reconciler.plan import Plan, WorkspacePlan
from reconciler.private_file import write_private
from reconciler.render.json import plan_from_document, to_document

KIND = "pkgrepo-planfile"
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PlanFile:
    plan: Plan
    source: Path
    """The desired-state file the plan was made from (relative to the working directory
    when it was below it)."""


def write(path: Path, plan: Plan, *, source: Path, mask: Callable[[str], str], keyed: bool) -> None:
    """Save ``plan``. ``mask`` scrubs known secret values from the text (a token can sit in
    an index URL's path, which redaction shows); ``keyed`` says PKGREPO_LEDGER_KEY is set."""
    if not keyed:
        raise UserError(
            "plan files need PKGREPO_LEDGER_KEY: the digests that pin the reviewed values are "
            "keyed with it, so the file alone cannot be used to guess a secret"
        )
    document = {"kind": KIND, "source": _portable(source), "plan": to_document(plan)}
    text = mask(json.dumps(document, indent=2, sort_keys=False) + "\n")
    try:
        write_private(path, text.encode())
    except OSError as exc:
        raise UserError(f"cannot write plan file {path}: {exc.strerror}") from None


def _portable(source: Path) -> str:
    """The source as CI can find it again: relative to the working directory when it is
    below it (plan and apply jobs run from the repository root, on different machines)."""
    absolute = source.resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(absolute)


def looks_like_planfile(path: Path) -> bool:
    """A plan file is JSON whose first non-blank character is ``{``; YAML desired-state
    files never start that way in practice (and are re-checked when loaded). Only a
    regular file is opened: a FIFO or device would block or never end."""
    if not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(256).lstrip()
    except OSError:
        return False
    return head.startswith(b"{") and KIND.encode() in head


def read(path: Path) -> PlanFile:
    try:
        if not path.is_file():
            raise UserError(f"{path}: not a regular file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise PlanRefused(f"{path}: plan file is larger than any plan pkgrepo writes")
    except OSError as exc:
        raise UserError(f"cannot read plan file {path}: {exc.strerror}") from None
    try:
        document: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PlanRefused(f"{path}: plan file is not valid JSON") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise PlanRefused(f"{path}: not a pkgrepo plan file")
    source = document.get("source")
    inner = document.get("plan")
    if not isinstance(source, str) or not isinstance(inner, dict) or len(document) != 3:
        raise PlanRefused(f"{path}: plan file is not valid: expected kind, source and plan")
    return PlanFile(plan=plan_from_document(inner), source=Path(source))


def mismatches(reviewed: WorkspacePlan, fresh: WorkspacePlan) -> list[str]:
    """Why the fresh plan of a workspace is not the reviewed one (empty when identical)."""
    problems = []
    if reviewed.host != fresh.host:
        problems.append(f"the workspace host changed from {reviewed.host} to {fresh.host}")
    if reviewed.live_digest != fresh.live_digest:
        problems.append("the workspace changed since the plan was made (stale plan)")
    if dict(reviewed.desired_digests) != dict(fresh.desired_digests):
        changed = sorted(
            key
            for key in set(reviewed.desired_digests) | set(fresh.desired_digests)
            if reviewed.desired_digests.get(key) != fresh.desired_digests.get(key)
        )
        problems.append(f"desired values differ from the reviewed plan: {', '.join(changed)}")
    if not problems and _steps(reviewed) != _steps(fresh):
        problems.append("the changes differ from the reviewed plan")
    return problems


def _steps(plan: WorkspacePlan) -> list[tuple[str, str]]:
    """What apply would do: addresses and actions. The before/after texts and reasons are
    for display only (Terraform's rule too) and never decide whether a plan still holds."""
    return [(str(c.address), c.action.value) for c in plan.changes]


def verify(reviewed: Plan, fresh: Sequence[WorkspacePlan]) -> None:
    """Refuse unless every workspace's fresh plan is the reviewed one."""
    by_name = {p.workspace: p for p in fresh}
    problems = []
    for old in reviewed.workspaces:
        new = by_name.get(old.workspace)
        if new is None:
            problems.append(f"{old.workspace}: no longer in the desired-state file")
            continue
        problems.extend(f"{old.workspace}: {p}" for p in mismatches(old, new))
    if problems:
        raise PlanRefused(
            "the plan file cannot be applied as reviewed:\n  "
            + "\n  ".join(problems)
            + "\nrun `pkgrepo plan --out` again and review the new plan"
        )
