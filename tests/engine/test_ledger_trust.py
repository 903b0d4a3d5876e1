"""What an unverified or mismatched ledger may and may not vouch for (pure planner)."""

from __future__ import annotations

from reconciler.core.diff import value_hmac
from reconciler.core.model import (
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
from reconciler.core.plan import Action, Drift, Severity, make_plan

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


KEY = SecretValue("k" * 20)
LIVE_URL = "https://pypi.org/simple"


def _signed(**fields: object) -> Ledger:
    return Ledger(
        hmac_key=KEY,
        entry_key=KEY,
        stored=True,
        verified=True,
        acls=frozen_map({"admins": Permission.MANAGE}),
        marker_ms=500,
        **fields,  # type: ignore[arg-type]
    )


def _mac(value: str) -> str:
    return value_hmac(KEY.plaintext, INDEX_URL, value)


def test_read_back_a_value_pkgrepo_wrote_last_is_a_change_in_git() -> None:
    """The value read is the one the ledger recorded: Git moved on, nobody else wrote."""
    ledger = _signed(entries=frozen_map({INDEX_URL: LedgerEntry(INDEX_URL, 900, _mac(LIVE_URL))}))
    drift, _, _ = _read_back(ledger, marker=True)
    assert drift is Drift.CHANGED_IN_GIT


def test_read_back_a_value_nobody_recorded_is_modified_outside_even_within_the_second() -> None:
    """The timestamp matches the ledger's (same second as pkgrepo's write), but the value
    read is neither what pkgrepo wrote nor what Git wants: changed outside pkgrepo."""
    wrote = _mac("https://idx.example.com/simple/old")
    ledger = _signed(entries=frozen_map({INDEX_URL: LedgerEntry(INDEX_URL, 1_000, wrote)}))
    drift, severity, reason = _read_back(ledger, marker=True)
    assert (drift, severity) == (Drift.MODIFIED_OUTSIDE, Severity.HIGH)
    assert "modified outside pkgrepo" in reason


def test_read_back_pkgrepos_own_interrupted_write_is_not_blamed_on_anyone() -> None:
    """A killed run was writing the value now read (Git changed since): its own write."""
    entry = LedgerEntry(INDEX_URL, 200, _mac("https://idx.example.com/simple/older"))
    intent = LedgerIntent(INDEX_URL, _mac(LIVE_URL), "run7", 800, 5_000)
    ledger = _signed(
        entries=frozen_map({INDEX_URL: entry}), intents=frozen_map({INDEX_URL: intent})
    )
    drift, severity, reason = _read_back(ledger, marker=True)
    assert (drift, severity) == (Drift.INTERRUPTED, Severity.LOW)
    assert "run7" in reason


def test_a_change_after_a_killed_first_run_began_is_not_called_older_than_pkgrepo() -> None:
    """Only intents in the ledger (the first apply was killed), and the value was written
    after that apply began: changed outside pkgrepo, not a value from before it."""
    intent = LedgerIntent(INDEX_URL, _mac("https://idx.example.com/simple"), "run1", 500, 800)
    ledger = Ledger(
        hmac_key=KEY,
        entry_key=KEY,
        stored=True,
        verified=True,
        intents=frozen_map({INDEX_URL: intent}),
    )
    drift, severity, _ = _read_back(ledger, marker=False)
    assert (drift, severity) == (Drift.MODIFIED_OUTSIDE, Severity.HIGH)
