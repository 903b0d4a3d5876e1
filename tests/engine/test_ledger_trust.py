"""What an unverified or mismatched ledger may and may not vouch for (pure planner)."""

from __future__ import annotations

from reconciler.model import (
    INDEX_URL,
    MARKER_KEY,
    Ledger,
    LedgerEntry,
    LedgerIntent,
    LiveSecret,
    LiveState,
    Permission,
    SecretValue,
    WorkspaceSpec,
    frozen_map,
)
from reconciler.plan import Action, Drift, Severity, make_plan

SPEC = WorkspaceSpec(
    name="ws",
    host="https://ws.example.com",
    secrets=frozen_map({INDEX_URL: SecretValue("https://idx.example.com/simple")}),
    acls=frozen_map({"admins": Permission.MANAGE}),
)
LIVE = LiveState(
    scope_exists=True,
    secrets=frozen_map(
        {
            INDEX_URL: LiveSecret(INDEX_URL, 1_000),
            MARKER_KEY: LiveSecret(MARKER_KEY, 500),
        }
    ),
    acls=frozen_map({"admins": Permission.MANAGE, "intruder": Permission.MANAGE}),
    identity="ci",
)


def _by_address(ledger: Ledger) -> dict[str, tuple[Action, Drift, Severity]]:
    plan = make_plan(SPEC, LIVE, ledger, salt="s")
    return {str(c.address): (c.action, c.drift, c.severity) for c in plan.changes + plan.findings}


def test_an_unverified_ledger_cannot_excuse_a_grant() -> None:
    """Without the key nobody can check the ledger, so "pkgrepo wrote this grant" or "this
    is the scope's creator" written into it must not lower an alarm."""
    forged = Ledger(
        entries=frozen_map({INDEX_URL: LedgerEntry(INDEX_URL, 1_000, "x")}),
        acls=frozen_map({"admins": Permission.MANAGE, "intruder": Permission.MANAGE}),
        kept=frozen_map({"intruder": Permission.MANAGE}),
        stored=True,
        marker_ms=500,
    )
    found = _by_address(forged)
    assert found["ws/acl/intruder"] == (Action.DELETE, Drift.ACL_ADDED, Severity.HIGH)
    assert "ws/secret/pip-index-url" not in found  # its timestamp still matches


def test_a_marker_rewritten_since_the_ledger_makes_the_ledger_untrusted() -> None:
    key = SecretValue("k" * 20)
    ledger = Ledger(
        entries=frozen_map({INDEX_URL: LedgerEntry(INDEX_URL, 1_000, "x")}),
        acls=frozen_map({"admins": Permission.MANAGE}),
        hmac_key=key,
        entry_key=key,
        stored=True,
        verified=True,
        marker_ms=400,  # the scope's marker says 500: an older ledger, or a new marker
    )
    found = _by_address(ledger)
    assert found["ws/ledger"] == (Action.NOOP, Drift.LEDGER_MISSING, Severity.HIGH)
    assert found["ws/secret/pip-index-url"][1] is Drift.UNVERIFIABLE
    assert found["ws/acl/intruder"][2] is Severity.HIGH


def _read_back(ledger: Ledger, *, marker: bool) -> tuple[Drift, Severity, str]:
    """The index key where the service reads values back: written at 1,000 by somebody
    else, pointing at another host than Git declares."""
    secrets = {INDEX_URL: LiveSecret(INDEX_URL, 1_000, SecretValue("https://pypi.org/simple"))}
    if marker:
        secrets[MARKER_KEY] = LiveSecret(MARKER_KEY, 500)
    live = LiveState(
        scope_exists=True,
        secrets=frozen_map(secrets),
        acls=frozen_map({"admins": Permission.MANAGE}),
        identity="ci",
    )
    (change,) = [c for c in make_plan(SPEC, live, ledger, salt="s").changes]
    return change.drift, change.severity, change.reason


def test_a_first_run_killed_before_finishing_leaves_older_values_as_they_were() -> None:
    """A ledger that holds only the write-ahead intents of a first run that was killed:
    a key it never wrote still holds the value from before pkgrepo, and says so, instead
    of claiming the ledger is missing or not trusted."""
    key = SecretValue("k" * 20)
    intents_only = Ledger(
        hmac_key=key,
        entry_key=key,
        stored=True,
        verified=True,
        intents=frozen_map({INDEX_URL: LedgerIntent(INDEX_URL, "x", "run1", 5_000, 9_000)}),
    )
    drift, severity, reason = _read_back(intents_only, marker=False)
    assert drift is Drift.CHANGED_IN_GIT
    assert "before pkgrepo managed it" in reason
    assert severity is Severity.HIGH and reason.endswith("index host changes")


def test_a_trusted_ledger_without_an_entry_says_pkgrepo_never_wrote_the_key() -> None:
    key = SecretValue("k" * 20)
    applied = Ledger(
        acls=frozen_map({"admins": Permission.MANAGE}),
        hmac_key=key,
        entry_key=key,
        stored=True,
        verified=True,
        marker_ms=500,
    )
    drift, _, reason = _read_back(applied, marker=True)
    assert drift is Drift.UNVERIFIABLE
    assert "pkgrepo has no record of writing it" in reason
    assert "missing or not trusted" not in reason
