"""The planner: what must change for a workspace to match its desired state (pure).

``make_plan`` compares a ``WorkspaceSpec`` with the ``LiveState`` the adapter read and the
``Ledger`` of what pkgrepo wrote last. Every change carries redacted ``before``/``after``
texts and a reason; the reason is for people and never drives apply. Secret values cannot
be read back from outside a notebook, so a key whose value pkgrepo cannot vouch for is
classified by the ledger: unchanged, changed in Git, modified outside pkgrepo, or
unverifiable.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from reconciler import diff, redact
from reconciler.model import (
    INDEX_URL,
    MANAGED_KEYS,
    AclsMode,
    Address,
    Backend,
    Ensure,
    Kind,
    Ledger,
    LiveState,
    Permission,
    SecretValue,
    Thresholds,
    Tier,
    WorkspaceSpec,
    frozen_map,
)


class Action(enum.Enum):
    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"no-op": " ", "create": "+", "update": "~", "delete": "-"}[self.value]


class Drift(enum.Enum):
    """Why live differs from desired: the kind a drift report shows."""

    CHANGED_IN_GIT = "changed-in-git"
    MODIFIED_OUTSIDE = "modified-outside"
    ADDED_OUT_OF_BAND = "added-out-of-band"
    REMOVED_OUT_OF_BAND = "removed-out-of-band"
    ACL_ADDED = "acl-added"
    ACL_REMOVED = "acl-removed"
    ACL_CHANGED = "acl-changed"
    SCOPE_MISSING = "scope-missing"
    UNVERIFIABLE = "unverifiable"
    KEYVAULT = "keyvault"
    """The scope is backed by Azure Key Vault, which pkgrepo cannot write: a key is missing,
    extra or different there, and a person must fix it in Key Vault (a no-op for apply)."""
    INTERRUPTED = "interrupted-write"
    """pkgrepo's own write, cut off before it was confirmed (a killed or cancelled run):
    written again, low severity, not drift made outside pkgrepo."""
    NEW = "new"
    """Declared in Git and never applied: a pending change, not drift."""


class Severity(enum.Enum):
    LOW = "low"
    HIGH = "high"
    """Widens access or redirects installs: a new WRITE/MANAGE grant, ``users`` above READ,
    an index URL changed behind pkgrepo's back or pointed at a new host."""


@dataclass(frozen=True)
class Change:
    """One step. ``before`` is None for a create, ``after`` None for a delete; both are
    redacted, display-safe texts."""

    address: Address
    action: Action
    before: str | None
    after: str | None
    reason: str
    drift: Drift
    severity: Severity = Severity.LOW

    @property
    def sort_key(self) -> tuple[str, int, str]:
        return self.address.sort_key

    @property
    def counts_toward_safety(self) -> bool:
        """Whether the safety threshold counts this change: finishing pkgrepo's own
        interrupted write is not a change of the fleet anyone has to review."""
        return self.drift is not Drift.INTERRUPTED


@dataclass(frozen=True)
class WorkspacePlan:
    """The changes for one workspace and the digests that pin what they were planned on."""

    workspace: str
    host: str
    changes: tuple[Change, ...]
    live_digest: str
    desired_digests: Mapping[str, str] = field(default_factory=frozen_map)
    warnings: tuple[str, ...] = ()
    destructive: str | None = None
    """Why this plan needs ``--allow-destroy`` (deletes the scope, or every ACL)."""

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.NOOP for c in self.changes)


@dataclass(frozen=True)
class Plan:
    """The plan for a selection of workspaces."""

    workspaces: tuple[WorkspacePlan, ...]
    salt: str

    @property
    def has_changes(self) -> bool:
        return any(w.has_changes for w in self.workspaces)

    def counts(self) -> dict[Action, int]:
        counts = {action: 0 for action in Action}
        for ws in self.workspaces:
            for change in ws.changes:
                counts[change.action] += 1
        return counts


APPLY_ORDER: tuple[tuple[Kind, Action], ...] = (
    (Kind.SCOPE, Action.CREATE),
    (Kind.SECRET, Action.CREATE),
    (Kind.SECRET, Action.UPDATE),
    (Kind.ACL, Action.CREATE),
    (Kind.ACL, Action.UPDATE),
    (Kind.ACL, Action.DELETE),
    (Kind.SECRET, Action.DELETE),
    (Kind.SCOPE, Action.DELETE),
)
"""Create the scope, put secrets, put ACLs, delete ACLs, delete secrets, delete the scope:
grants are widened before they are narrowed, so the scope is never left without them."""


def apply_order(changes: Iterable[Change]) -> list[Change]:
    rank = {step: index for index, step in enumerate(APPLY_ORDER)}
    todo = [c for c in changes if c.action is not Action.NOOP]
    return sorted(todo, key=lambda c: (rank[(c.address.kind, c.action)], c.sort_key))


def digest_key(salt: str, ledger: Ledger) -> str:
    """The key for desired-value digests in a plan file: the ledger key when there is one,
    so digests cannot be brute-forced from the file alone, and the plan's own salt."""
    secret = ledger.hmac_key.plaintext if ledger.hmac_key else ""
    return secret + salt


def live_digest(live: LiveState, ignore: frozenset[str] = frozenset()) -> str:
    """A digest of everything planning read (never a value): a plan is stale once it moves.
    Keys the workspace ``ignore``s are left out, so another team's edits to them do not
    make a reviewed plan stale."""
    document = {
        "scope": live.scope_exists,
        "secrets": {
            k: s.last_updated_ms for k, s in sorted(live.secrets.items()) if k not in ignore
        },
        "acls": {p: perm.value for p, perm in sorted(live.acls.items())},
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def desired_digests(spec: WorkspaceSpec, ledger: Ledger, salt: str) -> dict[str, str]:
    """Digests of the desired values, keyed by the ledger key and the plan's salt. Without
    a ledger key there are none: a digest keyed by a published salt alone could be
    brute-forced from the plan."""
    if ledger.hmac_key is None:
        return {}
    key = digest_key(salt, ledger)
    return {
        name: redact.digest(diff.canonical(name, value.plaintext), key)
        for name, value in sorted(spec.secrets.items())
    }


def make_plan(
    spec: WorkspaceSpec,
    live: LiveState,
    ledger: Ledger,
    *,
    salt: str,
    mask: Callable[[str], str] = lambda text: text,
) -> WorkspacePlan:
    """Plan one workspace. Deterministic: the same inputs give the same plan. ``mask``
    scrubs known secret values from the redacted texts (a token can sit in an index URL's
    path, which redaction keeps)."""
    planner = _Planner(spec, live, ledger, salt, mask)
    changes, warnings = planner.run()
    changes = sorted(changes, key=lambda c: c.sort_key)
    return WorkspacePlan(
        workspace=spec.name,
        host=spec.host,
        changes=tuple(changes),
        live_digest=live_digest(live, spec.ignore),
        desired_digests=frozen_map(desired_digests(spec, ledger, salt)),
        warnings=tuple(warnings),
        destructive=_destructive(spec, live, changes),
    )


def _destructive(spec: WorkspaceSpec, live: LiveState, changes: list[Change]) -> str | None:
    """Why this plan needs ``--allow-destroy``: it deletes the scope, or leaves it with no
    grant but the deploying identity's own (which the service keeps for it)."""
    if any(c.address.kind is Kind.SCOPE and c.action is Action.DELETE for c in changes):
        return "deletes the scope and every secret in it"
    others = set(live.acls) - {live.identity}
    if not live.scope_exists or not others:
        return None
    deleted = {
        c.address.name for c in changes if c.address.kind is Kind.ACL and c.action is Action.DELETE
    }
    created = {
        c.address.name
        for c in changes
        if c.address.kind is Kind.ACL and c.action is not Action.DELETE
    }
    if not (others - deleted) and not (created - {live.identity}):
        return "removes every ACL of the scope"
    return None


def _fmt_ms(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _host(shown: str) -> str:
    rest = shown.split("://", 1)[-1].split("@", 1)[-1]
    return rest.split("/", 1)[0]


class _Planner:
    def __init__(
        self,
        spec: WorkspaceSpec,
        live: LiveState,
        ledger: Ledger,
        salt: str,
        mask: Callable[[str], str],
    ) -> None:
        self.mask = mask
        self.spec = spec
        self.live = live
        self.ledger = ledger
        self.salt = salt
        self.changes: list[Change] = []
        self.warnings: list[str] = []

    def run(self) -> tuple[list[Change], list[str]]:
        ws = self.spec.name
        if self.spec.ensure is Ensure.ABSENT:
            if self.live.scope_exists:
                self._add(
                    Address.scope(ws),
                    Action.DELETE,
                    "scope",
                    None,
                    "workspace is declared ensure: absent",
                    Drift.CHANGED_IN_GIT,
                )
            return self.changes, self.warnings
        if self.ledger.hmac_key is None:
            self.warnings.append(
                "PKGREPO_LEDGER_KEY is not set: existing secret values cannot be verified "
                "and are assumed to match"
            )
        elif self.ledger.problem:
            self.warnings.append(f"ledger not trusted ({self.ledger.problem}): values rewritten")
        if self.spec.tier is Tier.STANDARD:
            self.warnings.append(
                "Standard tier: this workspace has no secret ACLs, so every user can read "
                "and change the package settings; pkgrepo manages no ACLs here"
            )
        if self.live.scope_exists and self.live.backend is Backend.AZURE_KEYVAULT:
            self._plan_keyvault()
            if self.spec.tier is not Tier.STANDARD:
                self._plan_acls()
            return self.changes, self.warnings
        if not self.live.scope_exists:
            known = bool(self.ledger.entries) and self.ledger.trusted
            self._add(
                Address.scope(ws),
                Action.CREATE,
                None,
                "scope",
                "scope was deleted outside pkgrepo" if known else "scope does not exist yet",
                Drift.SCOPE_MISSING if known else Drift.NEW,
            )
        for key in MANAGED_KEYS:
            if key not in self.spec.ignore:
                self._plan_secret(key)
        for key in sorted(set(self.live.secrets) - set(MANAGED_KEYS) - self.spec.ignore):
            self._add(
                Address.secret(ws, key),
                Action.DELETE,
                "(unmanaged key)",
                None,
                "key is not one pkgrepo manages in this scope; the scope is owned",
                Drift.ADDED_OUT_OF_BAND,
            )
        if self.spec.tier is not Tier.STANDARD:
            self._plan_acls()
        return self.changes, self.warnings

    def _plan_keyvault(self) -> None:
        """An Azure Key Vault backed scope: ``put`` and ``delete`` are refused there, and
        ``list`` shows every secret of the vault. Nothing is written; what differs is
        reported for a person to fix in Key Vault."""
        vault = self.live.keyvault or "(vault name not reported)"
        self.warnings.append(
            f"the scope is backed by Azure Key Vault {vault}: its values live in Key Vault "
            "and cannot be written through Databricks; pkgrepo manages its ACLs and checks "
            "its keys only"
        )
        ws = self.spec.name
        for key in MANAGED_KEYS:
            if key in self.spec.ignore:
                continue
            desired = self.spec.secrets.get(key)
            live = self.live.secrets.get(key)
            if desired is not None and live is None:
                reason = f"missing in Azure Key Vault {vault}: add the secret {key} there"
            elif desired is None and live is not None:
                reason = f"not declared, yet present in Azure Key Vault {vault}: delete it there"
            elif (
                desired is not None
                and live is not None
                and live.value is not None
                and not diff.same_value(key, live.value.plaintext, desired.plaintext)
            ):
                reason = f"differs from the desired state: change it in Azure Key Vault {vault}"
            else:
                continue
            shown = self.mask(redact.describe(key, desired, self.salt)) if desired else None
            self._keyvault_drift(Address.secret(ws, key), shown, reason)
        for key in sorted(set(self.live.secrets) - set(MANAGED_KEYS)):
            self._keyvault_drift(
                Address.secret(ws, key),
                None,
                f"another secret of Azure Key Vault {vault}, readable through this scope by "
                "every principal with READ on it: keep the package settings in a vault of "
                "their own",
            )

    def _keyvault_drift(self, address: Address, after: str | None, reason: str) -> None:
        self.warnings.append(f"{address.name}: {reason}")
        self._add(address, Action.NOOP, None, after, reason, Drift.KEYVAULT)

    def _add(
        self,
        address: Address,
        action: Action,
        before: str | None,
        after: str | None,
        reason: str,
        drift: Drift,
        severity: Severity = Severity.LOW,
    ) -> None:
        self.changes.append(Change(address, action, before, after, reason, drift, severity))

    def _entry_shown(self, key: str) -> str | None:
        entry = self.ledger.entries.get(key) if self.ledger.trusted else None
        return entry.shown if entry and entry.shown else None

    def _plan_secret(self, key: str) -> None:
        address = Address.secret(self.spec.name, key)
        desired = self.spec.secrets.get(key)
        live = self.live.secrets.get(key)
        entry = self.ledger.entries.get(key) if self.ledger.trusted else None
        if desired is None and live is None:
            return
        if desired is None:
            assert live is not None
            before = self._entry_shown(key) or "(value not readable)"
            if entry is not None:
                self._add(
                    address,
                    Action.DELETE,
                    before,
                    None,
                    "removed from the desired state",
                    Drift.CHANGED_IN_GIT,
                )
            else:
                written = _fmt_ms(live.last_updated_ms)
                self._add(
                    address,
                    Action.DELETE,
                    before,
                    None,
                    f"not declared; written outside pkgrepo at {written}",
                    Drift.ADDED_OUT_OF_BAND,
                )
            return
        after = self.mask(redact.describe(key, desired, self.salt))
        if live is None:
            if entry is not None and self.live.scope_exists:
                self._add(
                    address,
                    Action.CREATE,
                    None,
                    after,
                    "deleted outside pkgrepo",
                    Drift.REMOVED_OUT_OF_BAND,
                    Severity.HIGH if key == INDEX_URL else Severity.LOW,
                )
            else:
                self._add(address, Action.CREATE, None, after, "new key", Drift.NEW)
            return
        self._plan_existing(address, key, desired, live.last_updated_ms, live.value, after)

    def _plan_existing(
        self,
        address: Address,
        key: str,
        desired: SecretValue,
        live_ms: int,
        live_value: SecretValue | None,
        after: str,
    ) -> None:
        if live_value is not None:  # secrets/get answered: compare the values themselves
            if diff.same_value(key, live_value.plaintext, desired.plaintext):
                return
            before = self.mask(redact.describe(key, live_value, self.salt))
            entry = self.ledger.entries.get(key) if self.ledger.trusted else None
            if entry is None:
                self._update(address, key, before, after, "value differs", Drift.CHANGED_IN_GIT)
                return
            assert self.ledger.hmac_key is not None  # trusted
            git_unchanged = entry.hmac == diff.value_hmac(
                self.ledger.hmac_key.plaintext, key, desired.plaintext
            )
            if git_unchanged or entry.last_updated_ms != live_ms:
                # What pkgrepo wrote last is what Git wants, yet the live value differs: it
                # was changed outside pkgrepo, even within the same second as pkgrepo's own
                # write (whole-second timestamps cannot tell those apart; the value can).
                self._add(
                    address,
                    Action.UPDATE,
                    before,
                    after,
                    f"value differs: modified outside pkgrepo at {_fmt_ms(live_ms)}",
                    Drift.MODIFIED_OUTSIDE,
                    Severity.HIGH if key == INDEX_URL else Severity.LOW,
                )
                return
            self._update(address, key, before, after, "changed in Git", Drift.CHANGED_IN_GIT)
            return
        hmac_key = self.ledger.hmac_key
        if hmac_key is None:
            return  # warned once above: nothing to compare against
        entry = self.ledger.entries.get(key) if self.ledger.trusted else None
        before = entry.shown if entry is not None and entry.shown else "(value not readable)"
        moved = entry is None or entry.last_updated_ms != live_ms
        if moved and self._interrupted(address, key, desired, live_ms, before, after):
            return
        if entry is None:
            self._add(
                address,
                Action.UPDATE,
                "(value not readable)",
                after,
                "unverifiable: no ledger entry yet; written once to record it",
                Drift.UNVERIFIABLE,
            )
            return
        if entry.last_updated_ms != live_ms:
            self._add(
                address,
                Action.UPDATE,
                "(unknown: changed outside pkgrepo)",
                after,
                f"modified outside pkgrepo at {_fmt_ms(live_ms)}",
                Drift.MODIFIED_OUTSIDE,
                Severity.HIGH if key == INDEX_URL else Severity.LOW,
            )
            return
        if entry.hmac != diff.value_hmac(hmac_key.plaintext, key, desired.plaintext):
            self._update(address, key, before, after, "changed in Git", Drift.CHANGED_IN_GIT)

    def _interrupted(
        self,
        address: Address,
        key: str,
        desired: SecretValue,
        live_ms: int,
        before: str,
        after: str,
    ) -> bool:
        """A key changed since the ledger's entry, within the window of a write pkgrepo
        began and never confirmed, and that write was of the value Git wants now: pkgrepo's
        own interrupted write. Written again (cheap, and it confirms the value), at low
        severity. Anything else keeps its usual classification."""
        intent = self.ledger.intents.get(key) if self.ledger.trusted else None
        hmac_key = self.ledger.hmac_key
        if intent is None or hmac_key is None or not intent.covers(live_ms):
            return False
        if intent.hmac != diff.value_hmac(hmac_key.plaintext, key, desired.plaintext):
            return False
        self._add(
            address,
            Action.UPDATE,
            before,
            after,
            f"interrupted write by pkgrepo (run {intent.run}, at {_fmt_ms(live_ms)}): "
            "written again to confirm it",
            Drift.INTERRUPTED,
        )
        return True

    def _update(
        self, address: Address, key: str, before: str, after: str, reason: str, drift: Drift
    ) -> None:
        severity = Severity.LOW
        if before == after:
            reason = f"{reason}: credentials changed"
        elif key == INDEX_URL and _host(before) != _host(after):
            severity = Severity.HIGH
            reason = f"{reason}: index host changes"
        self._add(address, Action.UPDATE, before, after, reason, drift, severity)

    def _plan_acls(self) -> None:
        ws = self.spec.name
        identity = self.live.identity
        # A new scope starts with one grant: MANAGE for its creator (Secrets API,
        # scopes/create). Planning against that keeps the deploying identity from
        # lowering its own grant before the others are in place.
        live_acls: Mapping[str, Permission] = (
            self.live.acls
            if self.live.scope_exists
            else ({identity: Permission.MANAGE} if identity else {})
        )
        found = diff.diff_acls(live_acls, self.spec.acls)
        applied = self.ledger.acls if self.ledger.trusted else {}
        for principal, perm in found.added.items():
            out_of_band = principal in applied and self.live.scope_exists
            self._add(
                Address.acl(ws, principal),
                Action.CREATE,
                None,
                perm.value,
                "grant was removed outside pkgrepo" if out_of_band else "new grant",
                Drift.ACL_REMOVED if out_of_band else Drift.NEW,
            )
        for principal, (old, new) in found.changed.items():
            if principal == identity and old is Permission.MANAGE:
                self.warnings.append(
                    f"{principal} keeps MANAGE: it is the identity pkgrepo deploys as"
                )
                continue
            in_git = applied.get(principal) is old
            widened = old.rank > new.rank
            self._add(
                Address.acl(ws, principal),
                Action.UPDATE,
                old.value,
                new.value,
                "changed in Git" if in_git else f"set to {old.value} outside pkgrepo",
                Drift.CHANGED_IN_GIT if in_git else Drift.ACL_CHANGED,
                Severity.HIGH if widened and not in_git else Severity.LOW,
            )
        if self.spec.acls_mode is AclsMode.ADDITIVE:
            return
        for principal, perm in found.removed.items():
            if principal == identity and perm is Permission.MANAGE:
                continue  # the deploying identity's own grant (the service adds it on create)
            in_git = principal in applied
            widened = perm is not Permission.READ or principal == "users"
            self._add(
                Address.acl(ws, principal),
                Action.DELETE,
                perm.value,
                None,
                "removed from the desired state" if in_git else "granted outside pkgrepo",
                Drift.CHANGED_IN_GIT if in_git else Drift.ACL_ADDED,
                Severity.HIGH if widened and not in_git else Severity.LOW,
            )


MIN_KEYS_FOR_SHARE_CHECK = 10
"""Below this many managed keys in the selection the update-share check does not apply
(octoDNS does the same: a share of a tiny zone says little)."""


def unsafe_reason(
    plans: Iterable[WorkspacePlan], *, managed_keys: int, thresholds: Thresholds
) -> str | None:
    """Why an apply of these plans is too large to run without ``--force`` (octoDNS-style
    safety thresholds), or None. ``managed_keys`` counts the keys that exist in the
    selected workspaces now."""
    plans = list(plans)
    touched = sum(
        1
        for p in plans
        for c in p.changes
        if c.address.kind is Kind.SECRET
        and c.action in (Action.UPDATE, Action.DELETE)
        and c.counts_toward_safety
    )
    if managed_keys >= MIN_KEYS_FOR_SHARE_CHECK:
        share = touched / managed_keys
        if share > thresholds.max_update_share:
            return (
                f"this apply changes {touched} of {managed_keys} managed keys "
                f"({share:.0%}), more than the safety limit of "
                f"{thresholds.max_update_share:.0%}"
            )
    deleting = [p.workspace for p in plans if any(c.action is Action.DELETE for c in p.changes)]
    if len(deleting) > thresholds.max_delete_workspaces:
        return (
            f"this apply deletes in {len(deleting)} workspaces, more than the safety limit of "
            f"{thresholds.max_delete_workspaces}"
        )
    return None
