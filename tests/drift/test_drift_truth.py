"""The drift truth table: every out-of-band change, made the way a person makes it (the real
databricks-sdk against the emulator over HTTP), must come back from ``pkgrepo drift`` with the
right kind, severity and attribution, and nothing else.

The same table is in the README's drift section; ``test_readme_carries_the_truth_table`` keeps
the two in step. Columns: the change, the ACL mode, whether values are read back (inside a
notebook or job, where ``secrets/get`` answers), then per address: kind, severity, who it
is attributed to.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from databricks.sdk.service.workspace import AclPermission, ImportFormat

from reconciler import schemas
from reconciler.core.model import MARKER_KEY, SCOPE
from reconciler.edges.adapter import LEDGER_PATH
from reconciler.emulator import (
    EmulatorConfig,
    EmulatorHandle,
    Faults,
    OneShotFailure,
    ServiceModes,
    WorkspaceSettings,
)
from tests.support.cli import run_cli
from tests.support.fleet_files import (
    EXTRA,
    GROUPS,
    PLANTED,
    apply,
    client,
    workspace_yaml,
    write_desired,
)

pytestmark = pytest.mark.usefixtures("env")

OUT = "outside pkgrepo"
GIT = "the desired state (Git, or an env/file value it reads)"
UNKNOWN = "unknown (no trusted ledger entry says who wrote the value)"
CREATOR = "the service (it gives whoever creates the scope MANAGE)"
PENDING = "the desired state (not applied yet)"
EVIL = "https://evil.example.com/simple"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Both workspaces refuse ``secrets/get`` (the ledger column); read-back rows make
    ``a`` answer it, as the service does for a MANAGE holder; ``b`` is a second workspace."""
    refused = WorkspaceSettings(modes=ServiceModes(rest_get="refused"))
    return EmulatorConfig(groups=GROUPS, workspaces={"a": refused}, workspace_defaults=refused)


@dataclass(frozen=True)
class Ctx:
    emu: EmulatorHandle
    path: Path
    capsys: pytest.CaptureFixture[str]


Mutation = Callable[[Ctx], None]


def _secrets(ctx: Ctx) -> Any:
    return client(ctx.emu, "a").secrets


def put(key: str, value: str) -> Mutation:
    return lambda ctx: _secrets(ctx).put_secret(SCOPE, key, string_value=value)


def delete(key: str) -> Mutation:
    return lambda ctx: _secrets(ctx).delete_secret(SCOPE, key)


def grant(principal: str, level: str) -> Mutation:
    return lambda ctx: _secrets(ctx).put_acl(SCOPE, principal, AclPermission(level))


def revoke(principal: str) -> Mutation:
    return lambda ctx: _secrets(ctx).delete_acl(SCOPE, principal)


def delete_scope(ctx: Ctx) -> None:
    _secrets(ctx).delete_scope(SCOPE)


def _write_ledger(emu: EmulatorHandle, document: bytes) -> None:
    client(emu, "a").workspace.import_(
        LEDGER_PATH,
        content=base64.b64encode(document).decode(),
        format=ImportFormat.AUTO,
        overwrite=True,
    )


def _read_ledger(emu: EmulatorHandle, workspace: str) -> bytes:
    exported = client(emu, workspace).workspace.export(LEDGER_PATH)
    return base64.b64decode(exported.content or "")


def delete_ledger(ctx: Ctx) -> None:
    client(ctx.emu, "a").workspace.delete(LEDGER_PATH)


def corrupt_ledger(ctx: Ctx) -> None:
    _write_ledger(ctx.emu, b'{"format": "pkgrepo-ledger", "entries": ')


def copy_ledger(ctx: Ctx) -> None:
    """The ledger of workspace b, signed with the right key, put in place of a's."""
    _write_ledger(ctx.emu, _read_ledger(ctx.emu, "b"))


def rekey_ledger(ctx: Ctx) -> None:
    """Someone ran apply with another PKGREPO_LEDGER_KEY: every value rewritten, a ledger
    signed with a key the nightly job does not know."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PKGREPO_LEDGER_KEY", "someone-elses-key-0c1d2e3f")
        apply(ctx.capsys, ctx.path, "--workspace", "a")


def delete_marker(ctx: Ctx) -> None:
    _secrets(ctx).delete_secret(SCOPE, MARKER_KEY)


def half_failed_apply(ctx: Ctx) -> None:
    """Git grants data-eng and team READ and drops users; the service refuses the second
    grant, so apply stops after writing data-eng and before removing users."""
    acls = {"admins": "MANAGE", "data-eng": "READ", "team": "READ"}
    a = workspace_yaml(ctx.emu, "a", acls=acls)
    write_desired(ctx.path, {"a": a, "b": workspace_yaml(ctx.emu, "b")})
    refuse = OneShotFailure("secrets/acls/put", nth=2, status=400)
    ctx.emu.set_faults("a", Faults(one_shot=(refuse,)))
    code, out, err = run_cli(ctx.capsys, "apply", str(ctx.path), "--auto-approve", "--quiet")
    assert code == 1, out + err
    ctx.emu.set_faults("a", Faults())


def delete_ledger_and_marker(ctx: Ctx) -> None:
    delete_ledger(ctx)
    delete_marker(ctx)


Expected = dict[str, tuple[str, str, str]]
"""address -> (kind, severity, attributed_to)"""


@dataclass(frozen=True)
class Row:
    id: str
    change: str
    mutate: Mutation
    expect: Expected
    acls_mode: str = "exact"
    read_back: bool = False
    workspace: dict[str, Any] = field(default_factory=dict)


IDX = "a/secret/pip-index-url"
EXT = "a/secret/pip-extra-index-urls"
CERT = "a/secret/pip-cert"
LEDGER = "a/ledger"
UNVERIFIABLE_BOTH: Expected = {
    IDX: ("unverifiable", "low", UNKNOWN),
    EXT: ("unverifiable", "low", UNKNOWN),
}

ROWS: list[Row] = []


def _both(
    row_id: str, change: str, mutate: Mutation, ledger: Expected, read_back: Expected, **kw: Any
) -> None:
    """A change checked twice: from outside (ledger) and with values read back."""
    ROWS.append(Row(f"{row_id}", change, mutate, ledger, **kw))
    ROWS.append(Row(f"{row_id}-read-back", change, mutate, read_back, read_back=True, **kw))


_both(
    "index-changed",
    "index URL changed",
    put("pip-index-url", EVIL),
    {IDX: ("modified-outside", "high", OUT)},
    {IDX: ("modified-outside", "high", OUT)},
)
_both(
    "extra-changed",
    "extra index URL changed",
    put("pip-extra-index-urls", f"{EXTRA} {EVIL}"),
    {EXT: ("modified-outside", "high", OUT)},
    {EXT: ("modified-outside", "high", OUT)},
)
_both(
    "cert-added",
    "key added (pip-cert)",
    put("pip-cert", "not a certificate"),
    {CERT: ("added-out-of-band", "low", OUT)},
    {CERT: ("added-out-of-band", "low", OUT)},
)
_both(
    "index-added",
    "index URL added where Git declares none",
    put("pip-index-url", EVIL),
    {IDX: ("added-out-of-band", "high", OUT)},
    {IDX: ("added-out-of-band", "high", OUT)},
    workspace={"index": None},
)
_both(
    "index-deleted",
    "key deleted (pip-index-url)",
    delete("pip-index-url"),
    {IDX: ("removed-out-of-band", "high", OUT)},
    {IDX: ("removed-out-of-band", "high", OUT)},
)
_both(
    "extra-deleted",
    "key deleted (pip-extra-index-urls)",
    delete("pip-extra-index-urls"),
    {EXT: ("removed-out-of-band", "low", OUT)},
    {EXT: ("removed-out-of-band", "low", OUT)},
)
_SCOPE_GONE: Expected = {
    "a/scope": ("scope-missing", "high", OUT),
    IDX: ("removed-out-of-band", "high", OUT),
    EXT: ("removed-out-of-band", "low", OUT),
    "a/acl/admins": ("acl-removed", "low", OUT),
    "a/acl/users": ("acl-removed", "low", OUT),
}
_both("scope-deleted", "scope deleted", delete_scope, _SCOPE_GONE, _SCOPE_GONE)
_LEDGER_GONE: Expected = {LEDGER: ("ledger-missing", "high", OUT)}
_both(
    "ledger-deleted",
    "ledger deleted",
    delete_ledger,
    _LEDGER_GONE | UNVERIFIABLE_BOTH,
    _LEDGER_GONE,
)
_both(
    "ledger-corrupted",
    "ledger corrupted",
    corrupt_ledger,
    _LEDGER_GONE | UNVERIFIABLE_BOTH,
    _LEDGER_GONE,
)
_both(
    "ledger-copied",
    "ledger copied from another workspace",
    copy_ledger,
    _LEDGER_GONE | UNVERIFIABLE_BOTH,
    _LEDGER_GONE,
)
_both(
    "ledger-rekeyed",
    "ledger re-keyed (applied with another key)",
    rekey_ledger,
    _LEDGER_GONE | UNVERIFIABLE_BOTH,
    _LEDGER_GONE,
)
_both(
    "marker-deleted",
    f"marker key {MARKER_KEY} deleted",
    delete_marker,
    _LEDGER_GONE,
    _LEDGER_GONE,
)
_both(
    "ledger-and-marker-deleted",
    "ledger and marker both deleted (limit: looks unmanaged)",
    delete_ledger_and_marker,
    UNVERIFIABLE_BOTH,
    {},
)
_HALF: Expected = {
    "a/acl/team": ("new", "low", PENDING),  # never written: pending, not "removed outside"
    "a/acl/users": ("changed-in-git", "low", GIT),  # pkgrepo's own grant, not "granted outside"
}
_both(
    "half-failed-apply",
    "an apply failed half way (after one of two grants; issue 13 item 2)",
    half_failed_apply,
    _HALF,
    _HALF,
)
for mode in ("exact", "additive"):
    _both(
        f"grant-added-read-{mode}",
        "grant added (READ)",
        grant("team", "READ"),
        {"a/acl/team": ("acl-added", "low", OUT)} if mode == "exact" else {},
        {"a/acl/team": ("acl-added", "low", OUT)} if mode == "exact" else {},
        acls_mode=mode,
    )
    _both(
        f"grant-added-manage-{mode}",
        "grant added (MANAGE)",
        grant("contractors", "MANAGE"),
        {"a/acl/contractors": ("acl-added", "high", OUT)},
        {"a/acl/contractors": ("acl-added", "high", OUT)},
        acls_mode=mode,
    )
    _both(
        f"grant-widened-{mode}",
        "grant widened (users READ to WRITE)",
        grant("users", "WRITE"),
        {"a/acl/users": ("acl-changed", "high", OUT)},
        {"a/acl/users": ("acl-changed", "high", OUT)},
        acls_mode=mode,
    )
    _both(
        f"users-granted-write-{mode}",
        "users granted WRITE where Git declares no users grant",
        grant("users", "WRITE"),
        {"a/acl/users": ("acl-added", "high", OUT)},
        {"a/acl/users": ("acl-added", "high", OUT)},
        acls_mode=mode,
        workspace={"acls": {"admins": "MANAGE"}},
    )
    _both(
        f"grant-removed-{mode}",
        "grant removed (users)",
        revoke("users"),
        {"a/acl/users": ("acl-removed", "low", OUT)},
        {"a/acl/users": ("acl-removed", "low", OUT)},
        acls_mode=mode,
    )


def _desired(tmp_path: Path, emu: EmulatorHandle, row: Row) -> Path:
    a = workspace_yaml(emu, "a", **row.workspace)
    if row.acls_mode == "additive":
        a["acls_mode"] = "additive"
    return write_desired(tmp_path / "pkgrepo.yaml", {"a": a, "b": workspace_yaml(emu, "b")})


def _drift(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, Any]:
    code, out, err = run_cli(capsys, "drift", str(path), "--format", "json", "--quiet", *extra)
    assert PLANTED not in out + err
    document = json.loads(out)
    jsonschema.validate(document, schemas.load(schemas.DRIFT))
    return code, document


def _items(document: Any, workspace: str = "a") -> Expected:
    (ws,) = [w for w in document["workspaces"] if w["workspace"] == workspace]
    return {i["address"]: (i["kind"], i["severity"], i["attributed_to"]) for i in ws["items"]}


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_drift_truth_table(
    row: Row,
    emu: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _desired(tmp_path, emu, row)
    apply(capsys, path)
    # The change comes later than the apply's own writes: timestamps are whole seconds, and
    # a hand edit within the same second is a separate row of FIDELITY.md.
    for name in ("a", "b"):
        emu.backend(name).set_clock(lambda: time.time() + 2)
    row.mutate(Ctx(emu, path, capsys))
    if row.read_back:
        emu.set_modes("a", ServiceModes())
    code, document = _drift(capsys, path)
    assert _items(document) == row.expect
    assert _items(document, "b") == {}
    assert code == (2 if row.expect else 0)
    for ws in document["workspaces"]:
        for item in ws["items"]:
            assert item["settle"]["apply"] and item["settle"]["git"]


def test_readme_carries_the_truth_table() -> None:
    """The README's drift section holds this table, as ``readme_table`` writes it."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert readme_table() in readme, "regenerate with: python -m tests.drift.test_drift_truth"


def _cell(expect: Expected) -> str:
    """How the README writes one side: ``kind HIGH, kind low`` by address, or ``no drift``."""
    if not expect:
        return "no drift"
    parts = []
    for address, (kind, severity, by) in sorted(expect.items()):
        name = address.split("/", 1)[1]
        level = severity.upper() if severity == "high" else severity
        parts.append(f"`{name}` {kind} {level} ({_SHORT[by]})")
    return "; ".join(parts)


_SHORT = {OUT: "outside", GIT: "Git", UNKNOWN: "unknown", CREATOR: "creator", PENDING: "pending"}


def readme_table() -> str:
    """The README table, generated from ROWS (``python -m tests.drift.test_drift_truth``)."""
    lines = [
        "| out-of-band change | ACLs | from outside (ledger) | read back (notebook, job) |",
        "|---|---|---|---|",
    ]
    for row in ROWS:
        if row.read_back:
            continue
        twin = next(r for r in ROWS if r.id == f"{row.id}-read-back")
        lines.append(
            f"| {row.change} | {row.acls_mode} | {_cell(row.expect)} | {_cell(twin.expect)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(readme_table())
