"""Which workspaces of the file a command acts on: the ``--workspace``, ``--select`` and
``--shard`` flags, parsed here (every error names the flag) into a ``Selection``, and the
workspaces it picks. The engine never sees the flags: it is handed the chosen workspaces."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from reconciler.core.errors import UserError
from reconciler.core.model import WorkspaceSpec

F = TypeVar("F", bound=Callable[..., Any])

MAX_LABEL_VALUES = 12
"""How many values of one label a "matches nothing" message lists before counting the rest."""


@dataclass(frozen=True)
class Selection:
    """Which workspaces of the file to act on. Every criterion must hold (AND)."""

    names: tuple[str, ...] = ()
    """Names or globs (``prod-*``); any may match."""
    labels: Mapping[str, str] = field(default_factory=dict)
    shard: tuple[int, int] | None = None
    """``(i, n)``, 1-based: a stable split by name so n CI jobs cover the fleet exactly once."""


def selection_options(fn: F, *, note: str = "") -> F:
    """``--workspace``, ``--select``, ``--shard``: which workspaces of the file to act on, the
    same flags with the same help in every command (``note`` adds a sentence to each)."""
    extra = f" {note}" if note else ""
    fn = click.option(
        "--shard",
        metavar="I/N",
        default=None,
        help=f"Only the I-th of N stable shards of the fleet (for CI matrix jobs).{extra}",
    )(fn)
    fn = click.option(
        "--select",
        "labels",
        metavar="LABEL=VALUE",
        multiple=True,
        help=f"Only workspaces with this label value. Repeatable; all must match.{extra}",
    )(fn)
    fn = click.option(
        "--workspace",
        "-w",
        "names",
        metavar="NAME_OR_GLOB",
        multiple=True,
        help=f"Only these workspaces (glob patterns like 'prod-*' work). Repeatable.{extra}",
    )(fn)
    return fn


def from_flags(names: Sequence[str], labels: Iterable[str], shard: str | None) -> Selection:
    """The selection the three flags give; a malformed flag is a ``UserError`` naming it."""
    return Selection(
        names=tuple(names),
        labels=parse_labels(labels),
        shard=parse_shard(shard) if shard else None,
    )


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise UserError(f"--shard {text!r}: expected I/N, for example 2/4") from None
    if not 1 <= index <= count:
        raise UserError(f"--shard {text!r}: I must be between 1 and N")
    return index, count


def parse_labels(pairs: Iterable[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--select {pair!r}: expected LABEL=VALUE, for example env=prod")
        labels[key] = value
    return labels


def shard_of(name: str, count: int) -> int:
    """The 1-based shard a workspace name falls in (stable across machines and runs)."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select(workspaces: Sequence[WorkspaceSpec], selection: Selection) -> list[WorkspaceSpec]:
    """The workspaces the selection picks, in file order. A ``--workspace`` or ``--select``
    that matches nothing is an error (a typo, never "0 workspaces, all well": a nightly job
    would stay green forever). A shard may come out empty: a CI matrix can have more jobs
    than a small fleet has workspaces, and the other shards cover the fleet."""
    for pattern in selection.names:
        if not any(fnmatch.fnmatchcase(ws.name, pattern) for ws in workspaces):
            raise UserError(f"--workspace {pattern!r} matches no workspace in the file")
    matched = [
        ws
        for ws in workspaces
        if (not selection.names or any(fnmatch.fnmatchcase(ws.name, g) for g in selection.names))
        and all(ws.labels.get(k) == v for k, v in selection.labels.items())
    ]
    if not matched:
        unsharded = Selection(selection.names, selection.labels)
        raise UserError(
            f"{describe_selection(unsharded)} matches no workspace in the file; "
            f"{labels_in(workspaces)}"
        )
    if selection.shard is None:
        return matched
    index, count = selection.shard
    return [ws for ws in matched if shard_of(ws.name, count) == index]


def describe_selection(selection: Selection) -> str:
    """The selection as the flags that made it: ``--select env=prod --shard 2/4``."""
    parts = [f"--workspace {name!r}" for name in selection.names]
    parts += [f"--select {key}={value}" for key, value in selection.labels.items()]
    if selection.shard:
        parts.append(f"--shard {selection.shard[0]}/{selection.shard[1]}")
    return " ".join(parts) or "the selection"


def labels_in(workspaces: Sequence[WorkspaceSpec]) -> str:
    """The label keys and values the file has, to spot a typo: ``labels in the file: env
    (dev, prod), region (eu, us)``."""
    values: dict[str, set[str]] = {}
    for ws in workspaces:
        for key, value in ws.labels.items():
            values.setdefault(key, set()).add(value)
    if not values:
        return f"no workspace in the file has labels ({len(workspaces)} workspace(s))"
    shown = []
    for key in sorted(values):
        listed = sorted(values[key])
        more = len(listed) - MAX_LABEL_VALUES
        text = ", ".join(listed[:MAX_LABEL_VALUES]) + (f" and {more} more" if more > 0 else "")
        shown.append(f"{key} ({text})")
    return "labels in the file: " + ", ".join(shown)
