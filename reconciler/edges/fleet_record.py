"""The fleet record (``--fleet-record FILE``): the names of the workspaces ``apply`` has
brought under management, kept between runs.

Ledgers kept in each workspace cannot be listed from one place, and a workspace that was
found by ``discover:`` and is no longer in the account takes its ledger with it: without a
record, nothing would say it was ever managed. ``apply`` adds every workspace it leaves
managed and drops the ones it leaves absent; ``plan``, ``apply`` and ``drift`` report a name
in the record that neither the file nor discovery names any more as orphaned (as they do for
a ledger file of ``--ledger DIR``). Nothing is ever deleted because of the record: a name
leaves it when its workspace is declared ``ensure: absent`` and applied, or by hand.

The file holds workspace names only (no host, no secret), written atomically with mode 0600.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.core.errors import UserError
from reconciler.edges.private_file import write_private

KIND = "pkgrepo-fleet-record"
VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_BYTES = 16 * 1024 * 1024


def read(path: Path) -> tuple[str, ...]:
    """The names in the record, sorted; none when the file does not exist yet (the first
    run). A file that is not a record is one clear error, never a traceback."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise UserError(f"cannot read fleet record {path}: {exc.strerror}") from None
    problem = f"{path} is not a pkgrepo fleet record"
    if len(data) > MAX_BYTES:
        raise UserError(f"{problem} (larger than {MAX_BYTES // (1024 * 1024)} MiB)")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UserError(f"{problem} (not JSON)") from None
    if (
        not isinstance(document, dict)
        or document.get("kind") != KIND
        or document.get("version") != VERSION
        or not isinstance(document.get("workspaces"), list)
    ):
        expected = f'{{"kind": "{KIND}", "version": 1, "workspaces": [...]}}'
        raise UserError(f"{problem} (expected {expected})")
    names = document["workspaces"]
    bad = [n for n in names if not isinstance(n, str) or not _NAME.fullmatch(n)]
    if bad:
        raise UserError(f"{problem}: {len(bad)} entry(ies) of `workspaces` are not workspace names")
    return tuple(sorted(set(names)))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two applies updating one record (shards sharing a folder) take turns, so neither
    loses the other's names."""
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a")
    except OSError as exc:
        raise UserError(f"cannot write fleet record {path}: {exc.strerror}") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update(path: Path, *, managed: Iterable[str], released: Iterable[str]) -> tuple[str, ...]:
    """Add ``managed`` and drop ``released`` (read, change and write under a lock); the
    names now in the record."""
    with _locked(path):
        names = set(read(path))
        before = set(names)
        names |= {n for n in managed if _NAME.fullmatch(n)}
        names -= set(released)
        if names != before or not path.exists():
            document = {"kind": KIND, "version": VERSION, "workspaces": sorted(names)}
            text = json.dumps(document, indent=1) + "\n"
            try:
                write_private(path, text.encode())
            except OSError as exc:
                raise UserError(f"cannot write fleet record {path}: {exc.strerror}") from None
        return tuple(sorted(names))
