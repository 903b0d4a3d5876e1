"""The data the reconciler reasons about: desired state, live state and addresses.

Pure: no I/O, frozen dataclasses. Secret material only ever sits inside ``SecretValue``, whose
``repr`` and ``str`` never show it, so a stray log line or f-string cannot leak it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

SCOPE = "databricks-package-management"
"""The predefined secret scope Databricks reads the default package repositories from."""

INDEX_URL = "pip-index-url"
EXTRA_INDEX_URLS = "pip-extra-index-urls"
CERT = "pip-cert"
MANAGED_KEYS: tuple[str, ...] = (INDEX_URL, EXTRA_INDEX_URLS, CERT)
"""The keys Databricks reads; the order is the order plans list them in."""

MARKER_KEY = "pkgrepo-ledger"
"""A key pkgrepo keeps in the scope beside the three Databricks reads, once it has recorded
a ledger: a workspace pkgrepo manages is recognisable as such without the ledger, so a
ledger deleted (or replaced) out of band is an alarm, never "no ledger entry yet". Its value
says where the ledger is; its ``last_updated_timestamp`` is recorded in the ledger."""

MAX_VALUE_BYTES = 128 * 1024
"""The service refuses a secret value larger than 128 KB (Secrets API, ``secrets/put``)."""


class Permission(enum.Enum):
    """A secret scope ACL level. Ordered: MANAGE implies WRITE implies READ."""

    READ = "READ"
    WRITE = "WRITE"
    MANAGE = "MANAGE"

    @property
    def rank(self) -> int:
        return {"READ": 1, "WRITE": 2, "MANAGE": 3}[self.value]


class Ensure(enum.Enum):
    PRESENT = "present"
    ABSENT = "absent"


class Tier(enum.Enum):
    """The workspace's Databricks pricing tier, as far as secret scopes care."""

    PREMIUM = "premium"
    """Secret ACLs exist: the scope is readable by users and changeable by admins only."""
    STANDARD = "standard"
    """No secret ACLs: a scope can only be created for all users, who can all read and
    change it."""


class Backend(enum.Enum):
    """What backs the package scope (``backend_type`` in ``scopes/list``)."""

    DATABRICKS = "DATABRICKS"
    AZURE_KEYVAULT = "AZURE_KEYVAULT"
    """Values live in Azure Key Vault; ``put`` and ``delete`` are refused; every secret of
    the vault is listed. ACLs still apply."""

    @property
    def setting(self) -> str:
        """How the desired-state file spells it."""
        return self.value.lower()


class AclsMode(enum.Enum):
    EXACT = "exact"
    """Principals not listed are removed."""
    ADDITIVE = "additive"
    """Principals not listed are left alone."""


def frozen_map(items: Mapping[K, V] | None = None) -> Mapping[K, V]:
    """A read-only mapping, so frozen dataclasses stay frozen all the way down."""
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True)
class SecretValue:
    """A value that must never be displayed. Compare and hash it; never print it."""

    plaintext: str = field(repr=False)

    def __repr__(self) -> str:
        return "SecretValue(****)"

    def __str__(self) -> str:
        return "****"


@dataclass(frozen=True)
class AuthSpec:
    """How to authenticate to one workspace. ``kind`` is one of
    ``default`` (the databricks-sdk default chain), ``profile``, ``token``, ``oauth``
    (client id and secret). Secrets here are resolved values, kept as ``SecretValue``."""

    kind: str = "default"
    profile: str | None = None
    token: SecretValue | None = None
    client_id: str | None = None
    client_secret: SecretValue | None = None


@dataclass(frozen=True)
class Thresholds:
    """octoDNS-style safety limits for one apply over a fleet (``--force`` overrides)."""

    max_update_share: float = 0.3
    """Refuse when more than this share of the selected fleet's managed keys would change
    (updated or deleted)."""
    max_delete_workspaces: int = 1
    """Refuse when the scope of more than this many workspaces would be deleted."""
    max_rotation_share: float = 1.0
    """A rotation (one key set to one new value in every workspace it changes, on the same
    host) is held to this share of the selected workspaces instead of
    ``max_update_share``: rotating a credential fleet-wide is routine."""


@dataclass(frozen=True)
class VerifySettings:
    """How the package indexes are probed (the file's ``verify:`` block)."""

    project: str = "pip"
    """The project whose simple page is fetched from each index."""
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class WorkspaceSpec:
    """The desired state of one workspace, after defaults are merged and values resolved.

    ``secrets`` holds the wire value of each declared key (``pip-extra-index-urls`` already
    joined by one space). A managed key that is absent from ``secrets`` and not in ``ignore``
    must not exist in the workspace.
    """

    name: str
    host: str
    auth: AuthSpec = AuthSpec()
    labels: Mapping[str, str] = field(default_factory=frozen_map)
    wave: int = 0
    ensure: Ensure = Ensure.PRESENT
    secrets: Mapping[str, SecretValue] = field(default_factory=frozen_map)
    acls: Mapping[str, Permission] = field(default_factory=frozen_map)
    acls_mode: AclsMode = AclsMode.EXACT
    ignore: frozenset[str] = frozenset()
    waivers: Mapping[str, str] = field(default_factory=frozen_map)
    """Policy check id to the reason it is waived for this workspace."""
    tier: Tier = Tier.PREMIUM
    backend: Backend | None = None
    """The backend the scope must have; None: whichever it has (a Key Vault backed scope
    is then handled as one)."""


@dataclass(frozen=True)
class AccountSpec:
    """The Databricks account whose workspaces are discovered, and the credential (usually
    one OAuth service principal) used for the account and for every discovered workspace."""

    host: str
    account_id: str
    auth: AuthSpec


@dataclass(frozen=True)
class DiscoveryRule:
    """One ``discover.include`` entry. A workspace matches when every criterion given holds;
    the first matching rule gives its labels and wave. Values of ``labels`` and ``wave`` are
    templates over the workspace's fields (``{region}``, ``{tag:team}``...)."""

    names: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=frozen_map)
    """Tag name to a glob its value must match."""
    labels: Mapping[str, str] = field(default_factory=frozen_map)
    wave: str | None = None


@dataclass(frozen=True)
class DeclaredEntry:
    """A ``workspaces:`` entry without ``host`` in a file with ``discover:``: it extends the
    discovered workspace of the same name. ``written`` names the fields the entry sets."""

    spec: WorkspaceSpec
    written: frozenset[str]


@dataclass(frozen=True)
class DiscoverySpec:
    """The ``discover:`` section, validated and resolved (no network)."""

    account: AccountSpec
    template: WorkspaceSpec
    """What every discovered workspace starts from (``defaults``, the account's auth)."""
    rules: tuple[DiscoveryRule, ...] = (DiscoveryRule(),)
    exclude: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ("RUNNING",)
    host_template: str | None = None
    """``None``: the SDK's deployment URL for the account's cloud."""
    name_template: str | None = None
    """``None``: the account's workspace name."""
    extends: Mapping[str, DeclaredEntry] = field(default_factory=frozen_map)


@dataclass(frozen=True)
class DesiredState:
    """Everything a desired-state file declares."""

    source: str
    """The file it came from, for messages."""
    workspaces: tuple[WorkspaceSpec, ...]
    thresholds: Thresholds = Thresholds()
    verify: VerifySettings = VerifySettings()
    source_sha256: str = ""
    """The SHA-256 of the file's bytes as loaded (what a saved plan pins)."""
    discovery: DiscoverySpec | None = None
    """With ``discover:``, ``workspaces`` holds only the entries written with a host until
    ``discovery.expand`` adds what the account lists."""

    def workspace(self, name: str) -> WorkspaceSpec:
        for ws in self.workspaces:
            if ws.name == name:
                return ws
        raise KeyError(name)


@dataclass(frozen=True)
class LiveSecret:
    """A key as ``secrets/list`` reports it; ``value`` only where ``secrets/get`` answers
    (inside a Databricks job or notebook)."""

    key: str
    last_updated_ms: int
    value: SecretValue | None = None


@dataclass(frozen=True)
class LiveState:
    """What one workspace's scope holds now."""

    scope_exists: bool
    secrets: Mapping[str, LiveSecret] = field(default_factory=frozen_map)
    acls: Mapping[str, Permission] = field(default_factory=frozen_map)
    identity: str | None = None
    """The principal pkgrepo acts as; its own MANAGE grant is never removed."""
    backend: Backend = Backend.DATABRICKS
    keyvault: str | None = None
    """For a Key Vault backed scope, the vault's DNS name (``keyvault_metadata``)."""


@dataclass(frozen=True)
class LedgerEntry:
    """What pkgrepo wrote last: the service's timestamp and an HMAC of the value."""

    key: str
    last_updated_ms: int
    hmac: str
    shown: str = ""
    """The redacted form of the value (masked URL, certificate fingerprints), so a later plan
    can show what it replaces without knowing the value."""
    version: int = 2
    """The comparison rules ``hmac`` was computed under (``diff.CANONICAL_VERSION``)."""
    sealed: bool = False
    """The value was read back after the second of ``last_updated_ms`` had ended on the
    service's clock, and matched: any later write carries a later stamp, so while the key's
    stamp stays ``last_updated_ms`` its value is the one ``hmac`` is of, without reading it
    again (``ledger.proven_keys``)."""


@dataclass(frozen=True)
class LedgerIntent:
    """A write pkgrepo was about to make (the write-ahead half of the ledger): recorded
    before the put, cleared once the put is confirmed. A run killed in between leaves it,
    so the next plan can tell its own interrupted write from a change made by someone else.

    ``since_ms``/``until_ms`` bound, on the service's clock, when that write could have
    landed: from a moment the run certainly held the workspace's lock to the end of its
    apply deadline plus a lease."""

    key: str
    hmac: str
    """HMAC of the value about to be written (same key and form as ``LedgerEntry.hmac``)."""
    run: str
    since_ms: int
    until_ms: int

    def covers(self, live_ms: int) -> bool:
        # The service's timestamps are whole seconds in real samples: allow one second of
        # rounding at the start.
        return self.since_ms - 1000 <= live_ms <= self.until_ms


@dataclass(frozen=True)
class Ledger:
    """The entries for one workspace. ``hmac_key`` is absent when ``PKGREPO_LEDGER_KEY`` is
    not set: then no value can be verified, and the entries, read without checking the
    signature, only say when pkgrepo last wrote each key. ``problem`` says why a stored
    ledger is not trusted."""

    entries: Mapping[str, LedgerEntry] = field(default_factory=frozen_map)
    acls: Mapping[str, Permission] = field(default_factory=frozen_map)
    """The ACLs as pkgrepo last left them, to tell a grant changed in Git from one changed
    in the workspace."""
    hmac_key: SecretValue | None = None
    """The key new ledgers are signed with (``PKGREPO_LEDGER_KEY``)."""
    problem: str | None = None
    stored: bool = False
    """A ledger document was found (even one that is not trusted)."""
    verified: bool = False
    """Its signature was checked with ``hmac_key`` or ``previous_key``."""
    entry_key: SecretValue | None = None
    """The key its HMACs were made with: ``hmac_key``, or ``PKGREPO_LEDGER_KEY_PREVIOUS``
    during a key rotation (then the next apply signs it again with ``hmac_key``)."""
    marker_ms: int | None = None
    """The ``last_updated_timestamp`` of the scope's marker key when the ledger was written."""
    kept: Mapping[str, Permission] = field(default_factory=frozen_map)
    """Undeclared grants pkgrepo knowingly leaves: the MANAGE the service gives the creator
    of the scope (pkgrepo's deploying identity, or whoever created the scope before pkgrepo
    adopted it)."""
    intents: Mapping[str, LedgerIntent] = field(default_factory=frozen_map)
    """Writes begun and not confirmed (see ``LedgerIntent``), by key."""

    @property
    def trusted(self) -> bool:
        """Verified with a key: its HMACs and ACLs can be relied on."""
        return self.hmac_key is not None and self.problem is None and self.verified

    @property
    def readable(self) -> bool:
        """Stored and well formed: its timestamps and ACLs can at least be compared (not
        verified when there is no key)."""
        return self.stored and self.problem is None

    @property
    def rotating(self) -> bool:
        """Verified with the previous key: the next apply signs it with the new one."""
        return self.trusted and self.entry_key is not None and self.entry_key != self.hmac_key


class Kind(enum.Enum):
    SCOPE = "scope"
    SECRET = "secret"
    ACL = "acl"
    LEDGER = "ledger"
    """Findings about the ledger itself (never a change apply makes on its own)."""


_KIND_ORDER = {Kind.LEDGER: -1, Kind.SCOPE: 0, Kind.SECRET: 1, Kind.ACL: 2}


@dataclass(frozen=True)
class Address:
    """Where a change lands: ``prod-eu/scope``, ``prod-eu/secret/pip-index-url``,
    ``prod-eu/acl/users``."""

    workspace: str
    kind: Kind
    name: str = ""

    @classmethod
    def scope(cls, workspace: str) -> Address:
        return cls(workspace, Kind.SCOPE)

    @classmethod
    def secret(cls, workspace: str, key: str) -> Address:
        return cls(workspace, Kind.SECRET, key)

    @classmethod
    def acl(cls, workspace: str, principal: str) -> Address:
        return cls(workspace, Kind.ACL, principal)

    @classmethod
    def ledger(cls, workspace: str) -> Address:
        return cls(workspace, Kind.LEDGER)

    @classmethod
    def parse(cls, text: str) -> Address:
        workspace, _, rest = text.partition("/")
        kind, _, name = rest.partition("/")
        return cls(workspace, Kind(kind), name)

    @property
    def sort_key(self) -> tuple[str, int, str]:
        """The scope first, then secrets, then ACLs; deterministic output and apply order."""
        return (self.workspace, _KIND_ORDER[self.kind], self.name)

    def __str__(self) -> str:
        if self.kind in (Kind.SCOPE, Kind.LEDGER):
            return f"{self.workspace}/{self.kind.value}"
        return f"{self.workspace}/{self.kind.value}/{self.name}"
