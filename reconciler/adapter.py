"""The databricks-sdk adapter: the only module that talks to Databricks.

Every call goes through ``_call``, so error mapping lives in one place: the SDK's own retry
covers 429 and 503 (it honours ``Retry-After``) and dropped connections; what is left over
becomes a ``TransientError`` (worth retrying later) or a ``WorkspaceError`` with a message a
user can act on. Reads for a plan are issued concurrently, so a converged workspace is
planned in one round trip.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config
from databricks.sdk.errors import (
    BadRequest,
    DeadlineExceeded,
    InternalError,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    TemporarilyUnavailable,
    TooManyRequests,
    Unauthenticated,
)
from databricks.sdk.errors.base import DatabricksError
from databricks.sdk.service.workspace import AclPermission, ImportFormat

from reconciler.clock import SystemClock
from reconciler.errors import TransientError, WorkspaceError
from reconciler.lock import LOCK_SCOPE
from reconciler.model import (
    MANAGED_KEYS,
    SCOPE,
    Backend,
    LiveSecret,
    LiveState,
    Permission,
    SecretValue,
    Tier,
    WorkspaceSpec,
    frozen_map,
)
from reconciler.port import Snapshot
from reconciler.retry import call_with_retry

log = logging.getLogger("pkgrepo.adapter")
T = TypeVar("T")

LEDGER_DIR = "/pkgrepo"
LEDGER_PATH = f"{LEDGER_DIR}/ledger-{SCOPE}.json"
"""Outside every user's home folder: only workspace admins can read and write it. It holds
no secret (timestamps, HMACs, redacted forms) and is signed, so an edit is detected."""

_IO_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="pkgrepo-io")


PREMIUM_DISABLED = "Premium Tier is disabled"
"""What a Standard-tier workspace answers to a scope created for anyone but ``users``
(gbrueckl/Databricks.API.PowerShell PR #24, MicrosoftDocs/azure-docs#92584)."""

STANDARD_TIER_ADVICE = (
    "this workspace is on the Databricks Standard tier, which has no secret ACLs: every user "
    "of the workspace can read and change every secret scope, including the package "
    "settings. To manage it as it is, set `tier: standard` for this workspace in the "
    "desired-state file (pkgrepo then creates the scope for all users and manages no ACLs); "
    "to restrict who can change the settings, upgrade the workspace to Premium"
)


DEFAULT_TIMEOUT_SECONDS = 60
READ_RETRY_SECONDS = 60.0
"""How long one read of a plan's round is retried on its own before the round fails (the
round as a whole is retried again by ``workspace.observe``)."""


class _TokenConfig(Config):
    """SDK configuration for personal access tokens, without the host-metadata probe.

    The SDK asks ``/.well-known/databricks-config`` for every client it builds, to discover
    OAuth endpoints and the workspace id. A token needs neither, and across a fleet the probe
    costs one more request and connection (a TLS handshake, in production) per workspace.
    ``tests/integration`` fails first if the SDK renames the hook overridden here.
    """

    @classmethod
    def attributes(cls) -> Any:
        return Config.attributes()  # the SDK collects them from the class's own __dict__

    def _resolve_host_metadata(self) -> None:
        return None


def make_client(
    spec: WorkspaceSpec, *, retry_timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
) -> WorkspaceClient:
    """A client for one workspace, from its ``auth`` block (any databricks-sdk source)."""
    auth = spec.auth
    options: dict[str, Any] = {
        "host": spec.host,
        "retry_timeout_seconds": retry_timeout_seconds,
        "http_timeout_seconds": 30,
        "max_connection_pools": 8,
        "max_connections_per_pool": 8,
    }
    if auth.kind == "token" and auth.token is not None:
        options.update(token=auth.token.plaintext, auth_type="pat")
    elif auth.kind == "profile":
        options.update(profile=auth.profile)
    elif auth.kind == "oauth" and auth.client_secret is not None:
        options.update(
            client_id=auth.client_id,
            client_secret=auth.client_secret.plaintext,
            auth_type="oauth-m2m",
        )
    config_class = _TokenConfig if options.get("auth_type") == "pat" else Config
    try:
        return WorkspaceClient(config=config_class(**options))
    except ValueError as exc:
        raise WorkspaceError(spec.name, f"cannot authenticate: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SdkWorkspace:
    """A ``WorkspacePort`` backed by ``WorkspaceClient().secrets``."""

    def __init__(
        self,
        name: str,
        client: WorkspaceClient,
        *,
        ledger_in_workspace: bool = True,
        read_values: bool = True,
        on_value: Callable[[str], None] | None = None,
        tier: Tier = Tier.PREMIUM,
        pool: Executor | None = None,
    ) -> None:
        self.name = name
        self.tier = tier
        """On the Standard tier there are no ACLs to read, and scopes (the package scope and
        the lock's) can only be created for all users."""
        self.client = client
        self.ledger_in_workspace = ledger_in_workspace
        self.read_values = read_values
        """Probe ``secrets/get`` (once per run) and read the managed keys' values where it
        answers."""
        self.get_answers: bool | None = None
        """What the probe found: None until probed, then whether ``secrets/get`` answers."""
        self._on_value = on_value or (lambda _value: None)
        self._pool = pool or _IO_POOL

    @classmethod
    def connect(cls, spec: WorkspaceSpec, **kwargs: object) -> SdkWorkspace:
        retry = kwargs.pop("retry_timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        assert isinstance(retry, int)
        client = make_client(spec, retry_timeout_seconds=retry)
        kwargs.setdefault("tier", spec.tier)
        return cls(spec.name, client, **kwargs)  # type: ignore[arg-type]

    # -- the one place errors are mapped -------------------------------------------------

    def _call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        if_missing: Callable[[], T] | None = None,
        if_exists: Callable[[], T] | None = None,
        if_refused: Callable[[], T] | None = None,
    ) -> T:
        """Run one SDK call. ``if_missing``/``if_exists`` give the result when the service
        answers RESOURCE_DOES_NOT_EXIST / RESOURCE_ALREADY_EXISTS (idempotent writes);
        ``if_refused`` when it refuses the call itself (400 BAD_REQUEST or 403, as
        ``secrets/get`` outside a notebook)."""
        try:
            return fn()
        except (BadRequest, PermissionDenied) as exc:
            if if_refused is not None:
                return if_refused()
            if isinstance(exc, PermissionDenied):
                raise WorkspaceError(
                    self.name,
                    f"{what}: permission denied (pkgrepo needs a workspace admin, or MANAGE on "
                    f"the {SCOPE} scope)",
                ) from None
            if PREMIUM_DISABLED.lower() in str(exc).lower():
                raise WorkspaceError(self.name, f"{what}: {STANDARD_TIER_ADVICE}") from None
            raise WorkspaceError(self.name, f"{what}: {_first_line(exc)}") from None
        except NotFound:
            if if_missing is None:
                raise WorkspaceError(self.name, f"{what}: does not exist") from None
            return if_missing()
        except ResourceAlreadyExists:
            if if_exists is None:
                raise WorkspaceError(self.name, f"{what}: already exists") from None
            return if_exists()
        except Unauthenticated:
            raise WorkspaceError(
                self.name, f"{what}: authentication failed (the token or credentials were refused)"
            ) from None
        except (TooManyRequests, TemporarilyUnavailable, InternalError, DeadlineExceeded) as exc:
            # TooManyRequests is picked by error code too: REQUEST_LIMIT_EXCEEDED answered with
            # another status and no Retry-After (which the SDK does not retry) lands here.
            raise TransientError(f"{self.name}: {what}: {type(exc).__name__}") from None
        except TimeoutError:
            # The SDK has already retried throttling, 503s and dropped connections for its
            # whole budget (retry_timeout_seconds): retrying again would only double the wait.
            raise WorkspaceError(
                self.name,
                f"{what}: no answer from {self._host} within "
                f"{self.client.config.retry_timeout_seconds}s of retries "
                "(host unreachable, or throttled throughout)",
            ) from None
        except requests.ConnectionError:
            raise TransientError(f"{self.name}: {what}: cannot reach {self._host}") from None
        except DatabricksError as exc:
            if type(exc) is DatabricksError:
                # Neither an error code nor a status the SDK knows: in practice a gateway's
                # answer (502 with an HTML body), worth another try within the deadline.
                raise TransientError(f"{self.name}: {what}: unexpected answer") from None
            raise WorkspaceError(self.name, f"{what}: {_first_line(exc)}") from None

    @property
    def _host(self) -> str:
        return str(self.client.config.host)

    # -- reads ---------------------------------------------------------------------------

    def list_secrets(self) -> Mapping[str, LiveSecret]:
        return self._secrets_or_none() or frozen_map()

    def list_acls(self) -> Mapping[str, Permission]:
        return self._acls_or_empty()

    def _keys(self, scope: str, what: str) -> Mapping[str, LiveSecret] | None:
        """A scope's keys with their timestamps, or None when the scope does not exist."""
        items = self._call(
            what,
            lambda: list(self.client.secrets.list_secrets(scope)),
            if_missing=lambda: None,
        )
        if items is None:
            return None
        return frozen_map(
            {
                str(s.key): LiveSecret(str(s.key), int(s.last_updated_timestamp or 0))
                for s in items
                if s.key
            }
        )

    def _secrets_or_none(self) -> Mapping[str, LiveSecret] | None:
        return self._keys(SCOPE, "list secrets")

    def _scope_backend(self) -> tuple[Backend, str | None]:
        """What backs the package scope, and for Key Vault the vault's DNS name
        (``scopes/list``: ``backend_type`` and ``keyvault_metadata``)."""
        scopes = self._call("list scopes", lambda: list(self.client.secrets.list_scopes()))
        for scope in scopes:
            if (scope.name or "").lower() != SCOPE:
                continue
            kind = scope.backend_type.value if scope.backend_type else Backend.DATABRICKS.value
            if kind != Backend.AZURE_KEYVAULT.value:
                return Backend.DATABRICKS, None
            vault = scope.keyvault_metadata.dns_name if scope.keyvault_metadata else None
            return Backend.AZURE_KEYVAULT, vault
        return Backend.DATABRICKS, None

    def _acls_or_empty(self) -> Mapping[str, Permission]:
        if self.tier is Tier.STANDARD:
            return frozen_map()
        items = self._call(
            "list ACLs",
            lambda: list(self.client.secrets.list_acls(SCOPE)),
            if_missing=lambda: [],
        )
        return frozen_map(
            {str(a.principal): Permission(a.permission.value) for a in items if a.permission}
        )

    def _identity(self) -> str | None:
        me = self._call("who am I", self.client.current_user.me)
        return me.user_name

    def _ledger(self) -> bytes | None:
        if not self.ledger_in_workspace:
            return None
        exported = self._call(
            "read ledger",
            lambda: self.client.workspace.export(LEDGER_PATH),
            if_missing=lambda: None,
        )
        if exported is None:
            return None
        return base64.b64decode(exported.content or "")

    def _value(self, key: str) -> SecretValue | None:
        """One value through ``secrets/get``; None when the key is gone or the service
        refuses to answer. Passed to ``on_value`` first (the output scrubber)."""
        got = self._call(
            f"read back {key}",
            lambda: self.client.secrets.get_secret(SCOPE, key),
            if_missing=lambda: None,
            if_refused=lambda: None,
        )
        if got is None:
            return None
        text = base64.b64decode(got.value or "").decode("utf-8", "replace")
        self._on_value(text)
        return SecretValue(text)

    def _values(self, secrets: Mapping[str, LiveSecret]) -> Mapping[str, LiveSecret]:
        """The managed keys with their values, where ``secrets/get`` answers.

        ``secrets/get`` over REST is documented for DBUtils only, yet it answers a MANAGE
        holder in at least some workspaces (databricks/cli's acceptance test run against the
        cloud reads a value back). So it is probed once per run with the first managed key;
        where it answers, the others are read too. Keys pkgrepo does not manage are never
        read (a Key Vault backed scope lists every secret of the vault)."""
        keys = [k for k in MANAGED_KEYS if k in secrets]
        if not keys or not self.read_values or self.get_answers is False:
            return secrets
        first = self._steady(lambda: self._value(keys[0]))()
        self.get_answers = first is not None
        if first is None:
            return secrets
        values: dict[str, SecretValue | None] = {keys[0]: first}
        futures = {k: self._pool.submit(self._steady(partial(self._value, k))) for k in keys[1:]}
        values.update({k: f.result() for k, f in futures.items()})
        return frozen_map(
            {
                k: LiveSecret(s.key, s.last_updated_ms, values.get(k)) if k in values else s
                for k, s in secrets.items()
            }
        )

    def _steady(self, fn: Callable[[], T]) -> Callable[[], T]:
        """``fn`` retried on its own when it fails transiently (throttling above all), so one
        throttled read of the concurrent round does not throw away the others: retried as
        one, a round larger than the service's burst would be throttled every time."""
        clock = SystemClock()

        def call() -> T:
            return call_with_retry(
                fn,
                workspace=self.name,
                clock=clock,
                deadline=clock.monotonic() + READ_RETRY_SECONDS,
            )

        return call

    def read(self) -> Snapshot:
        secrets_f = self._pool.submit(self._steady(self._secrets_or_none))
        acls_f = self._pool.submit(self._steady(self._acls_or_empty))
        identity_f = self._pool.submit(self._steady(self._identity))
        ledger_f = self._pool.submit(self._steady(self._ledger))
        backend_f = self._pool.submit(self._steady(self._scope_backend))
        secrets, acls = secrets_f.result(), acls_f.result()
        identity, ledger = identity_f.result(), ledger_f.result()
        backend, vault = backend_f.result()
        if secrets is None:
            return Snapshot(LiveState(scope_exists=False, identity=identity), ledger)
        secrets = self._values(secrets)
        live = LiveState(
            scope_exists=True,
            secrets=secrets,
            acls=acls,
            identity=identity,
            backend=backend,
            keyvault=vault,
        )
        return Snapshot(live, ledger)

    # -- writes (idempotent) ---------------------------------------------------------------

    def create_scope(self) -> None:
        self._call(
            "create scope",
            lambda: self.client.secrets.create_scope(
                SCOPE, initial_manage_principal=self._initial_manage_principal
            ),
            if_exists=lambda: None,
        )

    @property
    def _initial_manage_principal(self) -> str | None:
        # scopes/create: "The only supported principal for this option is the group users";
        # below Premium it is the only way a scope can be created at all.
        return "users" if self.tier is Tier.STANDARD else None

    def delete_scope(self) -> None:
        self._call(
            "delete scope",
            lambda: self.client.secrets.delete_scope(SCOPE),
            if_missing=lambda: None,
        )

    def put_secret(self, key: str, value: SecretValue) -> None:
        self._call(
            f"put {key}",
            lambda: self.client.secrets.put_secret(SCOPE, key, string_value=value.plaintext),
        )

    def delete_secret(self, key: str) -> None:
        self._call(
            f"delete {key}",
            lambda: self.client.secrets.delete_secret(SCOPE, key),
            if_missing=lambda: None,
        )

    def put_acl(self, principal: str, permission: Permission) -> None:
        level = AclPermission(permission.value)
        self._call(
            f"grant {permission.value} to {principal}",
            lambda: self.client.secrets.put_acl(SCOPE, principal, level),
        )

    def delete_acl(self, principal: str) -> None:
        self._call(
            f"remove grant of {principal}",
            lambda: self.client.secrets.delete_acl(SCOPE, principal),
            if_missing=lambda: None,
        )

    # -- the advisory lock (reconciler.lock) ------------------------------------------------

    def lock_create(self) -> bool:
        return self._call(
            "take lock",
            lambda: (
                self.client.secrets.create_scope(
                    LOCK_SCOPE, initial_manage_principal=self._initial_manage_principal
                )
                is None
            ),
            if_exists=lambda: False,
        )

    def lock_keys(self) -> Mapping[str, LiveSecret] | None:
        return self._keys(LOCK_SCOPE, "read lock")

    def lock_put(self, key: str) -> None:
        self._call(
            "record lock holder",
            lambda: self.client.secrets.put_secret(LOCK_SCOPE, key, string_value="held"),
        )

    def lock_delete_key(self, key: str) -> bool:
        return self._call(
            "claim lock",
            lambda: self.client.secrets.delete_secret(LOCK_SCOPE, key) is None,
            if_missing=lambda: False,
        )

    def lock_delete(self) -> None:
        self._call(
            "release lock",
            lambda: self.client.secrets.delete_scope(LOCK_SCOPE),
            if_missing=lambda: None,
        )

    def write_ledger(self, document: bytes) -> None:
        content = base64.b64encode(document).decode()

        def write() -> None:
            self.client.workspace.mkdirs(LEDGER_DIR)
            self.client.workspace.import_(
                LEDGER_PATH, content=content, format=ImportFormat.AUTO, overwrite=True
            )

        self._call("write ledger", write)
