"""The saved plan (``plan --out FILE``, ``apply FILE``).

It is the JSON plan document (``schemas/plan.schema.json``) wrapped with where it came from
and signed:

- ``source``: the desired-state file, as a path relative to the plan file's folder (so the
  plan applies from any working directory, as long as the two files keep their places) and
  the SHA-256 of its bytes (so a different file at that path is refused);
- ``signed_by``: an identifier of the ledger key that signed it (never the key), so a wrong
  key is reported as a wrong key rather than as a changed plan;
- ``signature``: an HMAC-SHA256, under a key derived from ``PKGREPO_LEDGER_KEY``, of the
  canonical JSON of everything else. An unsigned, re-signed or edited file is refused.

It holds redacted texts and digests only, never a value: ``apply`` re-resolves the values,
re-plans, and refuses unless the fresh plan is the reviewed one in every field that decides
what is applied (the workspaces, hosts, digests, and every change's action, before and after).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from reconciler.core import keys
from reconciler.core.errors import PlanRefused, UserError
from reconciler.core.model import SecretValue, WorkspaceSpec
from reconciler.core.plan import Change, Plan, WorkspacePlan
from reconciler.edges.private_file import write_private
from reconciler.render.json import plan_from_document, to_document

KIND = "pkgrepo-planfile"
FORMAT_VERSION = "2"
MAX_BYTES = 64 * 1024 * 1024
_FIELDS = {"kind", "format_version", "source", "signed_by", "plan", "sections", "signature"}
_SECTIONS = {"source": "the source (the desired-state file it names)", "plan": "the changes"}
"""Signed one by one as well as together, so an edit can be named: only a holder of the
key could make a section's signature match an edited section."""
_REPLAN = "run `pkgrepo plan --out` again and review the new plan"


@dataclass(frozen=True)
class PlanFile:
    plan: Plan
    source: Path
    """The desired-state file the plan was made from, resolved against the plan file's
    folder."""
    source_sha256: str
    signed_by: str


def write(
    path: Path,
    plan: Plan,
    *,
    source: Path,
    source_sha256: str,
    mask: Callable[[str], str],
    ledger_key: SecretValue | None,
) -> None:
    """Save ``plan``, signed. ``mask`` scrubs known secret values from the text (a last
    line of defence: the redacted texts should hold none)."""
    if ledger_key is None:
        raise UserError(
            "plan files need PKGREPO_LEDGER_KEY: they are signed with it, and the digests "
            "that pin the reviewed values are keyed with it"
        )
    body = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "source": {"path": _relative_to_plan(source, path), "sha256": source_sha256},
        "signed_by": keys.key_id(ledger_key.plaintext),
        "plan": _masked(to_document(plan), mask),
    }
    body["sections"] = _section_signatures(ledger_key, body)
    document = {**body, "signature": _signature(ledger_key, body)}
    text = json.dumps(document, indent=2) + "\n"
    try:
        write_private(path, text.encode())
    except OSError as exc:
        raise UserError(f"cannot write plan file {path}: {exc.strerror}") from None


def _masked(document: Mapping[str, Any], mask: Callable[[str], str]) -> Any:
    try:
        return json.loads(mask(json.dumps(document)))
    except ValueError:
        raise UserError("plan file not written: it would have held a secret value") from None


def _folder(plan_path: Path) -> Path:
    return Path(os.path.realpath(plan_path.absolute().parent))


def _relative_to_plan(source: Path, plan_path: Path) -> str:
    """The source as seen from the plan file's folder (a CI job that downloads the plan
    next to its checkout finds it again), in ``/`` form."""
    absolute = Path(os.path.realpath(source))
    try:
        return Path(os.path.relpath(absolute, _folder(plan_path))).as_posix()
    except ValueError:  # another drive: no relative path exists
        return absolute.as_posix()


def _canonical(body: Mapping[str, Any]) -> bytes:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def _signature(ledger_key: SecretValue, body: Mapping[str, Any]) -> str:
    return keys.sign(ledger_key.plaintext, keys.PLAN_SIGNING, _canonical(body))


def _section_signatures(ledger_key: SecretValue, body: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: keys.sign(
            ledger_key.plaintext, keys.PLAN_SIGNING, name.encode() + b"\0" + _canonical(body[name])
        )
        for name in sorted(_SECTIONS)
    }


def _what_was_edited(ledger_key: SecretValue, document: Mapping[str, Any]) -> str:
    """Which part of a plan file whose signature fails was edited."""
    recorded = document.get("sections")
    expected = _section_signatures(ledger_key, document)
    if not isinstance(recorded, dict) or set(recorded) != set(expected):
        return "its section signatures were edited"
    edited = [
        _SECTIONS[name]
        for name in sorted(expected)
        if not (isinstance(recorded[name], str) and keys.same(recorded[name], expected[name]))
    ]
    if edited:
        return f"edited in {' and '.join(edited)}"
    return "its signature, or a field beside the changes and the source, was edited"


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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PlanRefused("plan file is not valid: a key appears twice in one object")
        result[key] = value
    return result


def _load_json(path: Path) -> Any:
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
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PlanRefused(f"{path}: plan file is not valid JSON") from None


def read(path: Path, *, ledger_key: SecretValue | None) -> PlanFile:
    """Read and authenticate a saved plan; refuse anything pkgrepo did not sign with this
    ledger key, saying whether the key or the file is at fault."""
    document = _load_json(path)
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise PlanRefused(f"{path}: not a pkgrepo plan file")
    if document.get("format_version") != FORMAT_VERSION or "signature" not in document:
        raise PlanRefused(
            f"{path}: the plan file is not signed (written by an older pkgrepo, or edited); "
            f"{_REPLAN}"
        )
    if set(document) != _FIELDS:
        raise PlanRefused(
            f"{path}: plan file is not valid: expected exactly the fields "
            + ", ".join(sorted(_FIELDS))
        )
    signed_by, signature = document["signed_by"], document["signature"]
    if not isinstance(signed_by, str) or not isinstance(signature, str):
        raise PlanRefused(f"{path}: plan file is not valid: signed_by and signature are text")
    if ledger_key is None:
        raise UserError(
            f"{path}: applying a saved plan needs PKGREPO_LEDGER_KEY, the key it was signed "
            f"with ({_shown_id(signed_by)})"
        )
    here = keys.key_id(ledger_key.plaintext)
    if not keys.same(signed_by, here):
        raise PlanRefused(
            f"{path}: the plan was signed with ledger key {_shown_id(signed_by)}, but "
            f"PKGREPO_LEDGER_KEY here is {here}. Set the key the plan job used; the key "
            "differs, which is not a sign the plan changed. Nothing was applied."
        )
    body = {name: value for name, value in document.items() if name != "signature"}
    if not keys.same(signature, _signature(ledger_key, body)):
        raise PlanRefused(
            f"{path}: the plan file was altered after it was signed: "
            f"{_what_was_edited(ledger_key, document)}. Nothing was applied; {_REPLAN}"
        )
    source = document["source"]
    if (
        not isinstance(source, dict)
        or set(source) != {"path", "sha256"}
        or not all(isinstance(v, str) and v for v in source.values())
    ):
        raise PlanRefused(f"{path}: plan file is not valid: source needs path and sha256")
    inner = document["plan"]
    if not isinstance(inner, dict):
        raise PlanRefused(f"{path}: plan file is not valid: plan is not an object")
    return PlanFile(
        plan=plan_from_document(inner),
        source=_folder(path) / source["path"],
        source_sha256=source["sha256"],
        signed_by=signed_by,
    )


def read_unverified(path: Path) -> PlanFile:
    """A saved plan for display only (``pkgrepo show``): its signature is not checked, as
    showing needs no key; ``apply`` always checks it."""
    document = _load_json(path)
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise PlanRefused(f"{path}: not a pkgrepo plan file")
    if document.get("format_version") != FORMAT_VERSION or set(document) != _FIELDS:
        raise PlanRefused(f"{path}: not a plan file this pkgrepo writes; {_REPLAN}")
    source, inner = document["source"], document["plan"]
    if not isinstance(source, dict) or not isinstance(source.get("path"), str):
        raise PlanRefused(f"{path}: plan file is not valid: source needs path and sha256")
    if not isinstance(inner, dict):
        raise PlanRefused(f"{path}: plan file is not valid: plan is not an object")
    return PlanFile(
        plan=plan_from_document(inner),
        source=_folder(path) / source["path"],
        source_sha256=str(source.get("sha256", "")),
        signed_by=str(document["signed_by"]),
    )


def _shown_id(text: str) -> str:
    """A key id as written in the file, made safe to print (the file may be hostile)."""
    if text.startswith("key:") and len(text) == 20 and text[4:].isalnum():
        return text
    return "(an unrecognised key id)"


def source_problems(saved: PlanFile, sha256: str) -> list[str]:
    """Why the desired-state file read now is not the one the plan was made from."""
    if keys.same(saved.source_sha256, sha256):
        return []
    return [
        f"{saved.source} is not the file the plan was made from: its content changed "
        f"since the plan (sha256 {saved.source_sha256[:12]}... when planned, "
        f"{sha256[:12]}... now)"
    ]


def host_problems(reviewed: Plan, specs: Sequence[WorkspaceSpec]) -> list[str]:
    """Workspaces whose host differs from the reviewed one: checked before connecting, so
    the workspace's credentials are never sent to a host nobody reviewed."""
    hosts = {spec.name: spec.host for spec in specs}
    return [
        f"{ws.workspace}: the workspace host changed from {ws.host} to {hosts[ws.workspace]}"
        for ws in reviewed.workspaces
        if ws.workspace in hosts and hosts[ws.workspace] != ws.host
    ]


def _shown(change: Change) -> str:
    parts = [change.action.value]
    if change.before is not None and change.after is not None:
        parts.append(f"{change.before} -> {change.after}")
    else:
        parts.append((change.before if change.after is None else change.after) or "")
    if change.severity.value != "low":
        parts.append(f"({change.severity.value} severity)")
    return " ".join(p for p in parts if p)


def mismatches(reviewed: WorkspacePlan, fresh: WorkspacePlan) -> list[str]:
    """Why the fresh plan of a workspace is not the reviewed one (empty when identical).
    Every field that decides or shows what is applied counts; only the reason and warnings,
    texts for people, do not."""
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
    old = {c.address: c for c in reviewed.changes}
    new = {c.address: c for c in fresh.changes}
    for address in sorted(set(old) | set(new), key=lambda a: a.sort_key):
        before, after = old.get(address), new.get(address)
        if before is None and after is not None:
            problems.append(f"{address}: not in the reviewed plan, now {_shown(after)}")
        elif after is None and before is not None:
            problems.append(f"{address}: reviewed {_shown(before)}, now no change")
        elif before is not None and after is not None and _fields(before) != _fields(after):
            problems.append(f"{address}: reviewed {_shown(before)}, now {_shown(after)}")
    if reviewed.destructive != fresh.destructive:
        problems.append(
            f"destructive: reviewed {reviewed.destructive or 'no'}, now {fresh.destructive or 'no'}"
        )
    return problems


def _fields(change: Change) -> tuple[object, ...]:
    return (change.action, change.before, change.after, change.drift, change.severity)


def verify(saved: PlanFile, fresh: Sequence[WorkspacePlan], *, source_sha256: str) -> None:
    """Refuse unless the source is the planned file and every workspace's fresh plan is the
    reviewed one, and no workspace was added or dropped."""
    reviewed = saved.plan
    by_name = {p.workspace: p for p in fresh}
    problems = source_problems(saved, source_sha256)
    for old in reviewed.workspaces:
        new = by_name.pop(old.workspace, None)
        if new is None:
            problems.append(f"{old.workspace}: no longer in the desired-state file")
            continue
        problems.extend(f"{old.workspace}: {p}" for p in mismatches(old, new))
    problems.extend(f"{name}: not in the reviewed plan" for name in sorted(by_name))
    if problems:
        refuse(problems)


def refuse(problems: Sequence[str]) -> NoReturn:
    raise PlanRefused(
        "the plan file cannot be applied as reviewed; nothing was applied:\n  "
        + "\n  ".join(problems)
        + f"\n{_REPLAN}"
    )
