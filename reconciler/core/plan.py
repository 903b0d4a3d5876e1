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

from reconciler.core import diff, keys, redact
from reconciler.core import ledger as ledger_doc
from reconciler.core.errors import DestroyNotAllowed, PastSafetyLimits
from reconciler.core.model import (
    EXTRA_INDEX_URLS,
    INDEX_URL,
    MANAGED_KEYS,
    MARKER_KEY,
    AclsMode,
    Address,
    Backend,
    Ensure,
    Kind,
    Ledger,
    LedgerEntry,
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
    LEDGER_MISSING = "ledger-missing"
    """A workspace pkgrepo manages whose ledger is missing, corrupt, copied from elsewhere or
    signed with an unknown key, or whose marker key was deleted or rewritten since the
    ledger was written: values cannot be verified."""
    CREATOR_GRANT = "creator-grant"
    """The MANAGE grant the service gives whoever created the scope: known, not a widening."""
    INTERRUPTED = "interrupted-write"
    """pkgrepo's own write, cut off before it was confirmed (a killed or cancelled run):
    written again, low severity, not drift made outside pkgrepo."""
    NEW = "new"
    """Declared in Git and never applied: a pending change, not drift."""


class Severity(enum.Enum):
    LOW = "low"
    HIGH = "high"
    """Widens access or redirects installs: a new WRITE/MANAGE grant, ``users`` above READ,
    an index or extra index URL added or changed behind pkgrepo's back, an index URL pointed
    at a new host, the scope deleted, or a ledger that can no longer vouch for the values."""


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
        interrupted write is not a change of the fleet anyone has to review, and neither is
        rewriting a value only to record it (no ledger entry, or one that cannot be
        trusted): after a ledger key rotation or a lost ledger it would stop every apply
        short of --force."""
        return self.drift not in (Drift.INTERRUPTED, Drift.UNVERIFIABLE)


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
    managed_keys: int = 0
    """How many keys pkgrepo owns in the workspace's scope now (every key but those it
    ``ignore``s): the base of the safety share."""
    findings: tuple[Change, ...] = ()
    """Drift that apply does not change (action no-op): a missing or untrusted ledger, a
    grant widened where ACLs are additive. ``drift`` reports them with the changes."""
    ledger_update: str | None = None
    """Why apply must record the ledger although no value changes (a key rotation, the
    scope's ledger marker missing); ``None`` when it need not."""

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.NOOP for c in self.changes)

    @property
    def needs_apply(self) -> bool:
        """Something to change, or a ledger to record (``ledger_update``)."""
        return self.has_changes or self.ledger_update is not None

    def enforce(self, *, allow_destroy: bool) -> None:
        """This workspace's part of ``Safety.enforce``, checked again by the applier before
        its first write, however it was called."""
        if self.destructive and not allow_destroy:
            raise DestroyNotAllowed(
                f"{self.workspace}: this plan {self.destructive}; "
                "review it and rerun with --allow-destroy"
            )


@dataclass(frozen=True)
class Unreadable:
    """A selected workspace that could not be planned, and why (a message without any
    secret). Its changes are unknown: a plan that holds one is incomplete."""

    workspace: str
    host: str
    error: str


@dataclass(frozen=True)
class Plan:
    """The plan for a selection of workspaces: those planned, and those that could not be
    read (named, so no format can pass an incomplete plan off as "no changes")."""

    workspaces: tuple[WorkspacePlan, ...]
    salt: str
    unreadable: tuple[Unreadable, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    orphaned: tuple[str, ...] = ()
    """Workspaces pkgrepo managed (it holds their ledger) that the file no longer names:
    nothing checks or rotates them any more, and nothing deletes them either."""

    @property
    def has_changes(self) -> bool:
        return any(w.has_changes for w in self.workspaces)

    @property
    def complete(self) -> bool:
        """Every selected workspace was read and planned."""
        return not self.unreadable

    def safety(self) -> Safety:
        """The safety verdict of applying this plan, and the counts behind it."""
        return safety_of(self.workspaces, self.thresholds)

    @property
    def needs_apply(self) -> bool:
        return any(w.needs_apply for w in self.workspaces)

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


def display_key(ledger: Ledger) -> str | None:
    """The secret key of digests shown in plans and reports (derived from the ledger key),
    or None: then no digest is shown, as one under a public salt could be reversed."""
    if ledger.hmac_key is None:
        return None
    return keys.derive(ledger.hmac_key.plaintext, keys.DISPLAY_DIGEST)


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
    findings = sorted(planner.findings, key=lambda c: c.sort_key)
    # Every plan format shows warnings: findings and a ledger-only apply are said there too.
    warnings += [finding_note(f) for f in findings]
    if planner.ledger_update:
        warnings.append(ledger_note(planner.ledger_update))
    return WorkspacePlan(
        workspace=spec.name,
        host=spec.host,
        changes=tuple(changes),
        live_digest=live_digest(live, spec.ignore),
        desired_digests=frozen_map(desired_digests(spec, ledger, salt)),
        warnings=tuple(warnings),
        destructive=_destructive(spec, live, changes),
        managed_keys=len(set(live.secrets) - spec.ignore - {MARKER_KEY}),
        findings=tuple(findings),
        ledger_update=planner.ledger_update,
    )


def finding_note(finding: Change) -> str:
    """How a plan states a finding among its warnings."""
    return f"[{finding.severity.value}] {finding.address}: {finding.reason} ({finding.drift.value})"


def ledger_note(update: str) -> str:
    return f"apply records the ledger: {update}"


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


CHANGED_DESIRED = "changed in the desired state"
"""A value differs because the desired state moved: the file in Git, or an env/file value
it reads (a credential rotated through an environment variable is not a Git change)."""

REDIRECT_KEYS = frozenset({INDEX_URL, EXTRA_INDEX_URLS})
"""Keys that decide where installs come from: added or changed behind pkgrepo's back, they
redirect installs (the dependency-confusion path) and are high severity."""


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
        self.digest_key = display_key(ledger)
        self.changes: list[Change] = []
        self.findings: list[Change] = []
        self.warnings: list[str] = []
        self.ledger_update: str | None = None
        self.marker = live.secrets.get(MARKER_KEY) if live.scope_exists else None
        self.managed_before = ledger.stored or self.marker is not None
        """pkgrepo has recorded a ledger for this workspace: it is not being adopted."""
        self.applied_before = self.marker is not None or (
            ledger.stored
            and (
                not ledger.readable
                or bool(ledger.entries or ledger.acls or ledger.kept)
                or ledger.marker_ms is not None
            )
        )
        """An apply of this workspace has finished at least once: its marker key or
        recorded entries exist (or a ledger is stored that cannot be read, which is not
        taken as a fresh start). A ledger holding only the write-ahead intents of a first
        run that was killed is not: a key it has no entry for still holds the value from
        before pkgrepo managed the workspace, or the killed run's own write."""
        self.usable = ledger.readable
        """The ledger's timestamps and ACLs can be compared (verified or not)."""
        self.trusted = ledger.trusted
        """The ledger's HMACs can be compared."""

    def run(self) -> tuple[list[Change], list[str]]:
        ws = self.spec.name
        if self.spec.ensure is Ensure.ABSENT:
            self._plan_absent()
            return self.changes, self.warnings
        self._check_ledger()
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
            known = self.usable and bool(self.ledger.entries or self.ledger.acls)
            self._add(
                Address.scope(ws),
                Action.CREATE,
                None,
                "scope",
                "scope was deleted outside pkgrepo: every user lost the package repository "
                "settings (installs fall back to public PyPI)"
                if known
                else "scope does not exist yet",
                Drift.SCOPE_MISSING if known else Drift.NEW,
                Severity.HIGH if known else Severity.LOW,
            )
        for key in MANAGED_KEYS:
            if key not in self.spec.ignore:
                self._plan_secret(key)
        unmanaged = set(self.live.secrets) - set(MANAGED_KEYS) - {MARKER_KEY} - self.spec.ignore
        for key in sorted(unmanaged):
            self._add(
                Address.secret(ws, key),
                Action.DELETE,
                "(unmanaged key)",
                None,
                "added outside pkgrepo: not one of the keys Databricks reads, and pkgrepo "
                "removes keys it does not manage from this scope (list it under ignore: "
                "to keep it)",
                Drift.ADDED_OUT_OF_BAND,
            )
        if self.spec.tier is not Tier.STANDARD:
            self._plan_acls()
        if self.ledger_update is None and self.ledger.hmac_key is not None:
            changed = {c.address.name for c in self.changes if c.action is not Action.NOOP}
            seal = [
                k
                for k in ledger_doc.sealable_keys(self.spec, self.live, self.ledger)
                if k not in changed
            ]
            if seal:
                self.ledger_update = (
                    f"seals {len(seal)} value(s) read back at their recorded timestamps, so "
                    "later plans need not read them again"
                )
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
            shown = self.mask(redact.describe(key, desired, self.digest_key)) if desired else None
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

    def _plan_absent(self) -> None:
        if not self.live.scope_exists:
            return
        # An apply of ``ensure: absent`` leaves an empty ledger behind: the scope existing
        # again afterwards was created by someone else.
        recreated = self.usable and not self.ledger.entries and not self.ledger.acls
        redirects = bool(REDIRECT_KEYS & set(self.live.secrets))
        self._add(
            Address.scope(self.spec.name),
            Action.DELETE,
            "scope",
            None,
            "scope was created again outside pkgrepo; the workspace is declared ensure: absent"
            if recreated
            else "workspace is declared ensure: absent",
            Drift.ADDED_OUT_OF_BAND if recreated else Drift.CHANGED_IN_GIT,
            Severity.HIGH if recreated and redirects else Severity.LOW,
        )

    def _check_ledger(self) -> None:
        """Findings about the ledger itself. A workspace pkgrepo manages is recognised by the
        scope's marker key even when the ledger is gone, so deleting the ledger cannot turn
        the alarms off."""
        ledger, marker = self.ledger, self.marker
        if ledger.hmac_key is None:
            self.warnings.append(
                "PKGREPO_LEDGER_KEY is not set: values cannot be verified (only the ledger's "
                "timestamps are compared, unverified)"
            )
        if ledger.stored and ledger.problem:
            self._finding(f"ledger not trusted ({ledger.problem}): values cannot be verified")
        elif not ledger.stored and marker is not None:
            self._finding(
                "ledger missing: values cannot be verified (the scope's "
                f"{MARKER_KEY} key shows pkgrepo manages it; a ledger kept with --ledger DIR "
                "is only found with the same directory)"
            )
        elif ledger.readable and self.live.scope_exists:
            if marker is None and ledger.marker_ms is not None:
                self._finding(
                    f"the scope's {MARKER_KEY} key was deleted outside pkgrepo "
                    "(it shows the ledger belongs here)"
                )
                self.ledger_update = f"writes the scope's {MARKER_KEY} key again"
            elif marker is None and ledger.hmac_key is not None:
                self.ledger_update = f"records the scope's {MARKER_KEY} key in the ledger"
            elif (
                marker is not None
                and ledger.marker_ms is not None
                and marker.last_updated_ms != ledger.marker_ms
            ):
                self._finding(
                    "ledger does not match this scope (an older copy was restored, or the "
                    f"{MARKER_KEY} key was rewritten): values cannot be verified"
                )
                self.usable = self.trusted = False
        if ledger.hmac_key is None:
            self.ledger_update = None  # nothing can be recorded without the key
        elif ledger.rotating and self.trusted:
            self.ledger_update = (
                "the ledger is signed with PKGREPO_LEDGER_KEY_PREVIOUS: apply signs it with "
                "PKGREPO_LEDGER_KEY (no value is rewritten)"
            )

    def _finding(self, reason: str) -> None:
        self.findings.append(
            Change(
                Address.ledger(self.spec.name),
                Action.NOOP,
                None,
                None,
                reason,
                Drift.LEDGER_MISSING,
                Severity.HIGH,
            )
        )

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

    def _entry(self, key: str) -> LedgerEntry | None:
        return self.ledger.entries.get(key) if self.usable else None

    def _entry_shown(self, key: str) -> str | None:
        """The redacted form the ledger recorded; only from a verified ledger (an
        unverified one could say anything)."""
        entry = self._entry(key) if self.trusted else None
        return entry.shown if entry and entry.shown else None

    def _plan_secret(self, key: str) -> None:
        address = Address.secret(self.spec.name, key)
        desired = self.spec.secrets.get(key)
        live = self.live.secrets.get(key)
        entry = self._entry(key)
        if desired is None and live is None:
            return
        if desired is None:
            assert live is not None
            before = (
                self.mask(redact.describe(key, live.value, self.digest_key))
                if live.value is not None
                else self._entry_shown(key) or "(value not readable)"
            )
            if entry is not None and entry.last_updated_ms == live.last_updated_ms:
                self._add(
                    address,
                    Action.DELETE,
                    before,
                    None,
                    "removed from the desired state",
                    Drift.CHANGED_IN_GIT,
                )
                return
            written = _fmt_ms(live.last_updated_ms)
            if entry is not None:
                reason = (
                    f"removed from the desired state, and modified outside pkgrepo at {written}"
                )
            elif self.applied_before:
                reason = f"added outside pkgrepo at {written}; not declared in Git"
            else:
                reason = f"not declared in Git (written at {written}, before pkgrepo managed it)"
            self._add(
                address,
                Action.DELETE,
                before,
                None,
                reason,
                Drift.MODIFIED_OUTSIDE if entry is not None else Drift.ADDED_OUT_OF_BAND,
                Severity.HIGH if key in REDIRECT_KEYS else Severity.LOW,
            )
            return
        after = self.mask(redact.describe(key, desired, self.digest_key))
        if live is None:
            if entry is not None:
                where = "with the scope" if not self.live.scope_exists else "outside pkgrepo"
                self._add(
                    address,
                    Action.CREATE,
                    None,
                    after,
                    f"deleted {where}",
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
        if live_value is not None:
            self._plan_read_back(address, key, desired, live_ms, live_value, after)
            return
        entry = self._entry(key)
        outside = entry is not None and entry.last_updated_ms != live_ms
        when = _fmt_ms(live_ms)
        before = self._entry_shown(key) or "(value not readable)"
        if (entry is None or outside) and self._interrupted(
            address, key, desired, live_ms, before, after
        ):
            return
        if entry is None:
            if self.ledger.hmac_key is None:
                return  # warned once above: nothing to compare against
            lost = self.applied_before
            self._add(
                address,
                Action.UPDATE,
                "(value not readable)",
                after,
                "cannot be verified: the ledger is missing or not trusted; written again to "
                "record it"
                if lost
                else "unverifiable: no ledger entry yet; written once to record it",
                Drift.UNVERIFIABLE,
            )
            return
        if outside:
            unverified = "" if self.trusted else " (ledger not verified: no PKGREPO_LEDGER_KEY)"
            self._add(
                address,
                Action.UPDATE,
                "(unknown: changed outside pkgrepo)",
                after,
                f"modified outside pkgrepo at {when}{unverified}",
                Drift.MODIFIED_OUTSIDE,
                Severity.HIGH if key in REDIRECT_KEYS else Severity.LOW,
            )
            return
        entry_key = self.ledger.entry_key
        if not self.trusted or entry_key is None:
            return  # unverified ledger: the timestamp matches, the value cannot be checked
        wanted = diff.value_hmac(entry_key.plaintext, key, desired.plaintext, version=entry.version)
        if entry.hmac != wanted:
            self._update(address, key, before, after, CHANGED_DESIRED, Drift.CHANGED_IN_GIT)

    def _plan_read_back(
        self,
        address: Address,
        key: str,
        desired: SecretValue,
        live_ms: int,
        live_value: SecretValue,
        after: str,
    ) -> None:
        """Where ``secrets/get`` answers, the values say *whether* a key differs; the signed
        ledger still says *who* changed it, by the HMAC of the value read: what pkgrepo
        wrote last (Git changed), what a write it began and never confirmed was about to
        write (its own interrupted write), or anything else (changed outside pkgrepo)."""
        if diff.same_value(key, live_value.plaintext, desired.plaintext):
            return
        entry = self._entry(key)
        when = _fmt_ms(live_ms)
        before = self.mask(redact.describe(key, live_value, self.digest_key))
        entry_key = self.ledger.entry_key if self.trusted else None
        if entry_key is not None:
            if entry is not None and entry.hmac == diff.value_hmac(
                entry_key.plaintext, key, live_value.plaintext, version=entry.version
            ):
                self._update(address, key, before, after, CHANGED_DESIRED, Drift.CHANGED_IN_GIT)
                return
            if self._interrupted(address, key, live_value, live_ms, before, after):
                return
            if entry is not None:
                self._update(
                    address,
                    key,
                    before,
                    after,
                    f"modified outside pkgrepo at {when}",
                    Drift.MODIFIED_OUTSIDE,
                )
                return
        elif entry is not None:  # no key to check values with: the timestamps decide
            if entry.last_updated_ms != live_ms:
                self._update(
                    address,
                    key,
                    before,
                    after,
                    f"modified outside pkgrepo at {when} (ledger not verified: no "
                    "PKGREPO_LEDGER_KEY)",
                    Drift.MODIFIED_OUTSIDE,
                )
            else:
                self._update(address, key, before, after, CHANGED_DESIRED, Drift.CHANGED_IN_GIT)
            return
        begun = [i.since_ms for i in self.ledger.intents.values()] if self.trusted else []
        if self.applied_before:
            why = (
                "pkgrepo has no record of writing it"
                if self.trusted
                else "the ledger that would say who changed it is missing or not trusted"
            )
            self._update(
                address,
                key,
                before,
                after,
                f"value differs (written at {when}); {why}",
                Drift.UNVERIFIABLE,
            )
        elif begun and live_ms >= min(begun) - 1000:
            # Written after pkgrepo's first apply here began (and was cut short): not a
            # value from before pkgrepo.
            self._update(
                address,
                key,
                before,
                after,
                f"modified outside pkgrepo at {when}, after pkgrepo's first apply began",
                Drift.MODIFIED_OUTSIDE,
            )
        else:
            self._update(
                address,
                key,
                before,
                after,
                f"differs from Git (written at {when}, before pkgrepo managed it)",
                Drift.CHANGED_IN_GIT,
            )

    def _interrupted(
        self,
        address: Address,
        key: str,
        value: SecretValue,
        live_ms: int,
        before: str,
        after: str,
    ) -> bool:
        """A key changed since the ledger's entry, within the window of a write pkgrepo
        began and never confirmed, and that write was of ``value`` (the value read back, or
        where values cannot be read, the one Git wants now): pkgrepo's own interrupted
        write. Written again (cheap, and it confirms the value), at low severity. Anything
        else keeps its usual classification."""
        intent = self.ledger.intents.get(key) if self.trusted else None
        entry_key = self.ledger.entry_key
        if intent is None or entry_key is None or not intent.covers(live_ms):
            return False
        if intent.hmac != diff.value_hmac(entry_key.plaintext, key, value.plaintext):
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
        if drift is Drift.MODIFIED_OUTSIDE and key in REDIRECT_KEYS:
            severity = Severity.HIGH
        if key == INDEX_URL and diff.normal_url(before) == diff.normal_url(after):
            reason = f"{reason}: credentials changed"
        elif key == INDEX_URL and diff.url_host(before) != diff.url_host(after):
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
        # Only a verified ledger may excuse a grant: anyone can write "this was pkgrepo's"
        # into one that cannot be checked. A deleted scope is known from any readable one.
        applied = self.ledger.acls if self.trusted else {}
        kept = self.ledger.kept if self.trusted else {}
        recorded = self.ledger.acls if self.usable else {}
        for principal, perm in found.added.items():
            out_of_band = principal in recorded
            where = "with the scope" if not self.live.scope_exists else "outside pkgrepo"
            self._add(
                Address.acl(ws, principal),
                Action.CREATE,
                None,
                perm.value,
                f"grant was removed {where}" if out_of_band else "new grant",
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
        additive = self.spec.acls_mode is AclsMode.ADDITIVE
        for principal, perm in found.removed.items():
            if principal == identity and perm is Permission.MANAGE:
                continue  # the deploying identity's own grant (the service adds it on create)
            address = Address.acl(ws, principal)
            widened = perm is not Permission.READ or principal.lower() == "users"
            if principal in applied:
                if not additive:
                    self._add(
                        address,
                        Action.DELETE,
                        perm.value,
                        None,
                        "removed from the desired state",
                        Drift.CHANGED_IN_GIT,
                    )
                continue
            creator = kept.get(principal) is perm or (
                not self.managed_before and perm is Permission.MANAGE
            )
            if creator:
                reason = (
                    f"{principal} is the scope's creator (the service gives the creator "
                    "MANAGE); not declared in Git"
                )
                if not additive:
                    self._add(address, Action.DELETE, perm.value, None, reason, Drift.CREATOR_GRANT)
                elif principal not in kept:
                    # Adopting the scope: said once, before the first apply records it.
                    self.findings.append(
                        Change(
                            address,
                            Action.NOOP,
                            perm.value,
                            None,
                            f"{reason}; ACLs are additive, so apply records it and leaves it",
                            Drift.CREATOR_GRANT,
                        )
                    )
                continue
            reason = (
                "granted outside pkgrepo"
                if self.managed_before
                else "granted before pkgrepo managed this scope"
            )
            severity = Severity.HIGH if widened else Severity.LOW
            if not additive:
                self._add(
                    address, Action.DELETE, perm.value, None, reason, Drift.ACL_ADDED, severity
                )
            elif widened:
                # Additive ACLs leave undeclared grants alone on apply, but a widening is
                # still reported: apply will not undo it.
                self.findings.append(
                    Change(
                        address,
                        Action.NOOP,
                        perm.value,
                        None,
                        f"{reason}; ACLs are additive, so apply leaves it",
                        Drift.ACL_ADDED,
                        Severity.HIGH,
                    )
                )


MIN_KEYS_FOR_SHARE_CHECK = 10
"""Below this many managed keys in the selection the update-share check does not apply
(octoDNS does the same: a share of a tiny zone says little)."""


@dataclass(frozen=True)
class Rotation:
    """Every key change of the plan sets one key to one new value (the same digest in each
    workspace), on the same host: a credential or certificate rotation."""

    key: str
    workspaces: int


@dataclass(frozen=True)
class Safety:
    """The safety verdict of a plan and the counts behind it (octoDNS-style thresholds).

    Shown in every plan format before anyone confirms, and the one thing apply consults:
    ``refusal`` says why an apply must not run without a flag."""

    managed_keys: int
    """Managed keys that exist now in the planned workspaces."""
    keys_changed: int
    """Of the keys, how many the plan updates or deletes."""
    scopes_deleted: tuple[str, ...]
    """Workspaces whose scope the plan deletes (what ``max_delete_workspaces`` counts)."""
    rotation: Rotation | None
    workspaces: int
    """Workspaces planned (the base of the rotation share)."""
    thresholds: Thresholds
    destructive: tuple[str, ...]
    """``workspace (why)`` for each plan that needs ``--allow-destroy``."""

    @property
    def share(self) -> float:
        return self.keys_changed / self.managed_keys if self.managed_keys else 0.0

    @property
    def force_reasons(self) -> tuple[str, ...]:
        """Why the plan needs ``--force`` (empty: within every limit)."""
        limits = self.thresholds
        reasons = []
        if self.rotation is not None and self.workspaces:
            rotated = self.rotation.workspaces / self.workspaces
            if rotated > limits.max_rotation_share:
                reasons.append(
                    f"it rotates {self.rotation.key} in {self.rotation.workspaces} of "
                    f"{self.workspaces} workspaces ({rotated:.0%}), more than the rotation "
                    f"limit of {limits.max_rotation_share:.0%}"
                )
        elif self.managed_keys >= MIN_KEYS_FOR_SHARE_CHECK and self.share > limits.max_update_share:
            reasons.append(
                f"it changes {self.keys_changed} of {self.managed_keys} managed keys "
                f"({self.share:.0%}), more than the safety limit of "
                f"{limits.max_update_share:.0%}"
            )
        if len(self.scopes_deleted) > limits.max_delete_workspaces:
            reasons.append(
                f"it deletes the scope of {len(self.scopes_deleted)} workspaces, more than "
                f"the safety limit of {limits.max_delete_workspaces}"
            )
        return tuple(reasons)

    @property
    def within_limits(self) -> bool:
        return not self.force_reasons and not self.destructive

    def counts_text(self) -> str:
        """The counts behind the verdict, one line."""
        limits = self.thresholds
        if self.rotation is not None:
            text = (
                f"rotation of one {self.rotation.key} value in {self.rotation.workspaces} of "
                f"{plural_of(self.workspaces, 'workspace')} (rotation limit "
                f"{limits.max_rotation_share:.0%} of workspaces)"
            )
        elif self.managed_keys < MIN_KEYS_FOR_SHARE_CHECK:
            text = (
                f"{self.keys_changed} of {self.managed_keys} managed keys change "
                f"(the {limits.max_update_share:.0%} share limit applies from "
                f"{MIN_KEYS_FOR_SHARE_CHECK} keys)"
            )
        else:
            text = (
                f"{self.keys_changed} of {self.managed_keys} managed keys change "
                f"({self.share:.0%}, limit {limits.max_update_share:.0%})"
            )
        return (
            f"{text}; {len(self.scopes_deleted)} scope(s) deleted "
            f"(limit {limits.max_delete_workspaces})"
        )

    def verdict_text(self) -> str:
        """``within limits``, or what the apply needs and why."""
        needs = []
        if self.destructive:
            needs.append("--allow-destroy (" + "; ".join(self.destructive) + ")")
        if self.force_reasons:
            needs.append("--force (" + "; ".join(self.force_reasons) + ")")
        if not needs:
            return "within limits"
        return "needs " + " and ".join(needs)

    def enforce(self, *, force: bool, allow_destroy: bool) -> None:
        """Raise the typed refusal (``errors.UnsafePlan``) of an apply with these flags;
        return when it may run. Apply consults nothing else, for a file or a saved plan."""
        if self.destructive and not allow_destroy:
            raise DestroyNotAllowed(
                "this plan is destructive: "
                + "; ".join(self.destructive)
                + "; review it and rerun with --allow-destroy"
            )
        if self.force_reasons and not force:
            raise PastSafetyLimits(
                "this apply is past the safety limits: "
                + "; ".join(self.force_reasons)
                + "; review the plan and rerun with --force"
            )


def plural_of(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _rotation(plans: list[WorkspacePlan]) -> Rotation | None:
    """The rotation these plans make, if every key change is one: an update changed in
    Git, of one key, to one value (equal desired digests), keeping the index host."""
    key_changes = [
        (p, c)
        for p in plans
        for c in p.changes
        if c.address.kind is Kind.SECRET and c.action is not Action.NOOP and c.counts_toward_safety
    ]
    if not key_changes:
        return None
    keys = {c.address.name for _, c in key_changes}
    if len(keys) != 1:
        return None
    key = keys.pop()
    digests = {p.desired_digests.get(key) for p, _ in key_changes}
    if len(digests) != 1 or None in digests:
        return None  # different values, or no digest to tell (no ledger key)
    for _, change in key_changes:
        if (
            change.action is not Action.UPDATE
            or change.drift is not Drift.CHANGED_IN_GIT
            or change.severity is Severity.HIGH
        ):
            return None
    return Rotation(key=key, workspaces=len({p.workspace for p, _ in key_changes}))


def safety_of(plans: Iterable[WorkspacePlan], thresholds: Thresholds) -> Safety:
    """The safety verdict of applying these plans together."""
    plans = list(plans)
    touched = sum(
        1
        for p in plans
        for c in p.changes
        if c.address.kind is Kind.SECRET
        and c.action in (Action.UPDATE, Action.DELETE)
        and c.counts_toward_safety
    )
    scopes = tuple(
        p.workspace
        for p in plans
        if any(c.address.kind is Kind.SCOPE and c.action is Action.DELETE for c in p.changes)
    )
    return Safety(
        managed_keys=sum(p.managed_keys for p in plans),
        keys_changed=touched,
        scopes_deleted=scopes,
        rotation=_rotation(plans),
        workspaces=len(plans),
        thresholds=thresholds,
        destructive=tuple(f"{p.workspace} ({p.destructive})" for p in plans if p.destructive),
    )
