"""Plans for the renderer tests: hand-built examples and hypothesis strategies."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from reconciler.core.model import Address, Kind, frozen_map
from reconciler.core.plan import Action, Change, Drift, Plan, Severity, WorkspacePlan

HOST = "https://adb-1234567890123456.7.azuredatabricks.net"
OLD_URL = "https://****@old.example.com/simple"
NEW_URL = "https://****@new.example.com/simple"


def change(
    address: str,
    action: Action,
    before: str | None,
    after: str | None,
    reason: str,
    drift: Drift = Drift.NEW,
    severity: Severity = Severity.LOW,
) -> Change:
    return Change(Address.parse(address), action, before, after, reason, drift, severity)


def workspace(
    name: str,
    *changes: Change,
    host: str | None = None,
    warnings: tuple[str, ...] = (),
    destructive: str | None = None,
    managed_keys: int = 3,
) -> WorkspacePlan:
    return WorkspacePlan(
        workspace=name,
        host=host or f"https://{name}.cloud.databricks.com",
        changes=tuple(changes),
        live_digest="sha256:" + "0" * 64,
        desired_digests=frozen_map({"pip-index-url": "hmac-sha256:" + "1" * 64}),
        warnings=warnings,
        destructive=destructive,
        managed_keys=managed_keys,
    )


def small_plan() -> Plan:
    """One workspace with a create, an update and a delete, and two that are up to date."""
    prod = workspace(
        "prod-eu",
        change(
            "prod-eu/secret/pip-extra-index-urls",
            Action.CREATE,
            None,
            "https://download.pytorch.org/whl/cpu",
            "new key",
        ),
        change(
            "prod-eu/secret/pip-index-url",
            Action.UPDATE,
            OLD_URL,
            NEW_URL,
            "modified outside pkgrepo at 2024-05-01 10:00:00 UTC",
            Drift.MODIFIED_OUTSIDE,
            Severity.HIGH,
        ),
        change(
            "prod-eu/acl/bob@example.com",
            Action.DELETE,
            "WRITE",
            None,
            "granted outside pkgrepo",
            Drift.ACL_ADDED,
            Severity.HIGH,
        ),
        host=HOST,
    )
    return Plan(workspaces=(prod, workspace("dev"), workspace("staging")), salt="salt-1")


def up_to_date_plan(*names: str) -> Plan:
    return Plan(workspaces=tuple(workspace(n) for n in names), salt="salt-2")


# --- hypothesis ------------------------------------------------------------------------

texts = st.text(max_size=20)
names = st.text(st.characters(exclude_characters="/"), min_size=1, max_size=12)


@st.composite
def changes_for(draw: st.DrawFn, workspace_name: str) -> Change:
    # A ledger address only names a drift finding, never a change of a plan.
    kind = draw(st.sampled_from([k for k in Kind if k is not Kind.LEDGER]))
    name = "" if kind is Kind.SCOPE else draw(st.text(min_size=1, max_size=12))
    action = draw(st.sampled_from(Action))
    before = None if action is Action.CREATE else draw(st.none() | texts)
    after = None if action is Action.DELETE else draw(st.none() | texts)
    return Change(
        address=Address(workspace_name, kind, name),
        action=action,
        before=before,
        after=after,
        reason=draw(texts),
        drift=draw(st.sampled_from(Drift)),
        severity=draw(st.sampled_from(Severity)),
    )


@st.composite
def workspace_plans(draw: st.DrawFn, name: str | None = None) -> WorkspacePlan:
    ws_name = name if name is not None else draw(names)
    changes = draw(st.lists(changes_for(ws_name), max_size=6, unique_by=lambda c: c.address))
    return WorkspacePlan(
        workspace=ws_name,
        host=draw(texts),
        changes=tuple(changes),
        live_digest=draw(texts),
        desired_digests=frozen_map(
            draw(st.dictionaries(st.text(min_size=1, max_size=20), texts, max_size=3))
        ),
        warnings=tuple(draw(st.lists(texts, max_size=2))),
        destructive=draw(st.none() | texts),
    )


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    ws_names = draw(st.lists(names, max_size=4, unique=True))
    return Plan(
        workspaces=tuple(draw(workspace_plans(n)) for n in ws_names),
        salt=draw(texts),
    )


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
"""Anything ``json.loads`` could return (NaN and infinities included: it accepts them)."""
