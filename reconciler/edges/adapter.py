"""The databricks-sdk adapter: the only module that talks to Databricks.

Every call goes through ``_call``, so error mapping lives in one place: the SDK's own retry
covers 429 and 503 (it honours ``Retry-After``) and dropped connections; what is left over
becomes a ``TransientError`` (worth retrying later) or a ``WorkspaceError`` with a message a
user can act on. Reads for a plan are issued concurrently, so a converged workspace is
planned in one round trip.
"""

from __future__ import annotations

import base64
import configparser
import datetime as dt
import functools
import ipaddress
import json
import logging
import os
import socket
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import requests
from databricks.sdk import AccountClient, oauth
from databricks.sdk.core import ApiClient, Config
from databricks.sdk.credentials_provider import (
    CredentialsProvider,
    CredentialsStrategy,
    OAuthCredentialsProvider,
)
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
from databricks.sdk.service.iam import (
    ComplexValue,
    CurrentUserAPI,
    GroupsAPI,
    ServicePrincipalsAPI,
    UsersAPI,
)
from databricks.sdk.service.workspace import AclPermission, ImportFormat, SecretsAPI, WorkspaceAPI
from requests.adapters import HTTPAdapter

from reconciler.core.discovery import AccountWorkspace
from reconciler.core.errors import TransientError, UserError, WorkspaceError
from reconciler.core.model import (
    MANAGED_KEYS,
    SCOPE,
    AccountSpec,
    AuthSpec,
    Backend,
    LiveSecret,
    LiveState,
    Permission,
    SecretValue,
    Tier,
    WorkspaceSpec,
    frozen_map,
)
from reconciler.edges.throttle import RateLimiter
from reconciler.engine.clock import SystemClock
from reconciler.engine.lock import LOCK_SCOPE
from reconciler.engine.port import ProvenKeys, Snapshot
from reconciler.engine.retry import call_with_retry

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


PREMIUM_NOT_STANDARD = (
    "this workspace is on the Premium tier (it accepted a scope with access control), but the "
    "desired-state file says `tier: standard`, which would create the package settings' scope "
    "for every user to read and change: remove `tier: standard` for this workspace"
)


class _StandardTier(WorkspaceError):
    """The service refused a call because the workspace is on the Standard tier."""


DEFAULT_TIMEOUT_SECONDS = 60
READ_RETRY_SECONDS = 60.0
"""How long one read of a plan's round is retried on its own before the round fails (the
round as a whole is retried again by ``workspace.observe``)."""


class _TokenConfig(Config):
    """SDK configuration without the host-metadata probe, for personal access tokens and
    for OAuth machine-to-machine with a known token endpoint.

    The SDK asks ``/.well-known/databricks-config`` for every client it builds, to discover
    OAuth endpoints and the workspace id. A token needs neither, and neither does a service
    principal whose token endpoint is known; across a fleet the probe costs one more request
    and connection (a TLS handshake, in production) per workspace.
    ``tests/integration`` fails first if the SDK renames the hook overridden here.
    """

    @classmethod
    def attributes(cls) -> Any:
        return Config.attributes()  # the SDK collects them from the class's own __dict__

    def _resolve_host_metadata(self) -> None:
        return None


WORKSPACE_TOKEN_PATH = "/oidc/v1/token"
"""A workspace's OAuth token endpoint (``OIDC_TOKEN_PATH`` in databricks-sdk's ``oauth.py``)."""


class TokenRefused(Exception):
    """The OAuth token endpoint refused the service principal's credentials."""


class _TokenSource(oauth.Refreshable):
    """A service principal's OAuth token for one host: the SDK's ``Refreshable`` keeps it and
    decides when it must be refreshed (before it expires); ``refresh`` is the client
    credentials grant of the SDK's ``oauth.retrieve_token`` (form ``grant_type`` and
    ``scope=all-apis``, id and secret in a Basic header as ``oauth-m2m`` sends them, the same
    error text), sent through the workspace client's own session: the token request and the
    API calls then share one kept-alive connection (one TLS handshake per workspace, not two)
    instead of a new ``requests.Session`` per token."""

    def __init__(self, token_url: str, client_id: str, client_secret: SecretValue) -> None:
        super().__init__(disable_async=True)
        self._url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self.session: requests.Session | None = None

    def refresh(self) -> oauth.Token:
        session = self.session or requests.Session()
        answer = session.post(
            self._url,
            data={"grant_type": "client_credentials", "scope": "all-apis"},
            auth=requests.auth.HTTPBasicAuth(self._client_id, self._client_secret.plaintext),
            timeout=30,
        )
        if not answer.ok:
            if answer.headers.get("Content-Type", "").startswith("application/json"):
                try:
                    err = answer.json()
                except ValueError:
                    err = {}
                code = err.get("errorCode", err.get("error", "unknown"))
                summary = err.get("errorSummary", err.get("error_description", "unknown"))
                raise ValueError(f"{code}: {summary}".replace("\r\n", " "))
            raise ValueError(f"HTTP {answer.status_code} from the token endpoint")
        try:
            body = answer.json()
            return oauth.Token(
                access_token=body["access_token"],
                token_type=body["token_type"],
                refresh_token=body.get("refresh_token"),
                expiry=dt.datetime.now() + dt.timedelta(seconds=int(body["expires_in"])),
            )
        except (ValueError, KeyError, TypeError):
            raise ValueError("the token endpoint answered without a usable token") from None


class _ClientCredentials(CredentialsStrategy):
    """OAuth machine-to-machine against a known token endpoint. Knowing the endpoint skips
    the two discovery requests the SDK makes per client (``/.well-known/databricks-config``
    and the OIDC document): for a fleet, one token request per workspace and hour is all
    authentication costs."""

    def __init__(self, token_url: str, client_id: str, client_secret: SecretValue) -> None:
        self.source = _TokenSource(token_url, client_id, client_secret)

    def auth_type(self) -> str:
        return "oauth-m2m"

    def __call__(self, cfg: Config) -> CredentialsProvider:
        del cfg
        source = self.source

        def token() -> oauth.Token:
            try:
                return source.token()
            except ValueError as exc:
                raise TokenRefused(_shown(_first_line(exc))) from None

        def headers() -> dict[str, str]:
            got = token()
            return {"Authorization": f"{got.token_type} {got.access_token}"}

        return OAuthCredentialsProvider(headers, token)


class WorkspaceApis:
    """What pkgrepo uses of a ``WorkspaceClient``: the SDK's own ``ApiClient`` for one
    workspace and the services it calls (``secrets``, ``workspace`` for the ledger file,
    ``current_user`` and SCIM's ``users``, ``service_principals``, ``groups``), with the same
    attribute names.

    ``WorkspaceClient`` builds an object for every service of the SDK (a few hundred) and
    copies its configuration each time it is created; across a fleet that was a quarter of
    the client CPU of planning a converged workspace. The requests are the SDK's, made the
    same way: same configuration, authentication, retries and error mapping."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.api_client = ApiClient(config)
        self.secrets = SecretsAPI(self.api_client)  # type: ignore[no-untyped-call]
        self.workspace = WorkspaceAPI(self.api_client)  # type: ignore[no-untyped-call]
        self.current_user = CurrentUserAPI(self.api_client)  # type: ignore[no-untyped-call]
        # SCIM, for the admin-membership lookup of a lock's holder (rare: built once a client)
        self.users = UsersAPI(self.api_client)  # type: ignore[no-untyped-call]
        self.service_principals = ServicePrincipalsAPI(self.api_client)  # type: ignore[no-untyped-call]
        self.groups = GroupsAPI(self.api_client)  # type: ignore[no-untyped-call]


def _session_of(client: WorkspaceApis | AccountClient) -> requests.Session:
    """The SDK client's ``requests`` session (``ApiClient._api_client._session``);
    ``tests/integration`` fails first if the SDK moves it."""
    session = client.api_client._api_client._session
    assert isinstance(session, requests.Session)
    return session


def _close_connections(session: requests.Session) -> None:
    """Close every connection the session's pools hold, now.

    ``Session.close`` alone does not: urllib3 2 only drops its pools there, and a pool's
    connections close when the pool is garbage collected. Anything still holding the pool (an
    error's traceback keeps the response, and the response its pool) then keeps a connection
    to the workspace open for as long as it lives."""
    pools = []
    for adapter in session.adapters.values():
        if isinstance(adapter, HTTPAdapter):
            for manager in (adapter.poolmanager, *adapter.proxy_manager.values()):
                keys = manager.pools.keys()  # the container refuses plain iteration
                pools += [pool for key in keys if (pool := manager.pools.get(key)) is not None]
    session.close()  # first: no request picks one of these pools up while they close
    for pool in pools:
        pool.close()


def _settle_environment(session: requests.Session, host: str) -> None:
    """Read the proxy and CA-bundle variables once per client, not once per request.

    With ``trust_env`` on, ``requests`` scans the whole environment twice for every request
    (``get_environ_proxies``, ``should_bypass_proxies``): with a CI runner's hundred-odd
    variables that was a third of the client CPU of planning a converged workspace. A client
    talks to one host, so the answer is the same every time: resolve it for that host now
    (``NO_PROXY`` honoured) and hand it to the session."""
    proxies = _environment_proxies()
    hostname = urllib.parse.urlsplit(host).hostname or ""
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 (not in typeshed)
    if proxies and not bypass(hostname, proxies):
        session.proxies.update({k: v for k, v in proxies.items() if k != "no"})
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.trust_env = False
    if bundle and session.verify is True:
        session.verify = bundle
    # Session-wide query parameters and proxies that are empty are merged into every request
    # all the same (two runtime ``Protocol`` checks each in ``requests.sessions.merge_setting``:
    # about a tenth of a request's client CPU); ``None`` means the same and skips the merge.
    if not session.params:
        session.params = None  # type: ignore[assignment]
    if not session.proxies:
        session.proxies = None  # type: ignore[assignment]


@functools.cache
def _environment_proxies() -> dict[str, str]:
    """``*_PROXY`` and ``NO_PROXY`` from the environment, read once per process (a run
    does not change its own proxy settings)."""
    return dict(urllib.request.getproxies_environment())


def _shown(text: str, limit: int = 200) -> str:
    """A server's text, safe for a terminal: printable, bounded."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned[:limit] + ("..." if len(cleaned) > limit else "")


def _client_options(host: str, auth: AuthSpec, retry_timeout_seconds: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "host": host,
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
    return options


def make_client(
    spec: WorkspaceSpec, *, retry_timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
) -> WorkspaceApis:
    """A client for one workspace, from its ``auth`` block (any databricks-sdk source)."""
    auth = spec.auth
    try:
        if auth.kind == "oauth" and auth.client_id and auth.client_secret is not None:
            strategy = _ClientCredentials(
                spec.host.rstrip("/") + WORKSPACE_TOKEN_PATH, auth.client_id, auth.client_secret
            )
            options = _client_options(spec.host, AuthSpec(), retry_timeout_seconds)
            client = WorkspaceApis(_TokenConfig(credentials_strategy=strategy, **options))
            strategy.source.session = _session_of(client)
        else:
            options = _client_options(spec.host, auth, retry_timeout_seconds)
            config_class = _TokenConfig if options.get("auth_type") == "pat" else Config
            client = WorkspaceApis(config_class(**options))
        _settle_environment(_session_of(client), spec.host)
        return client
    except UserError:
        raise
    except configparser.Error as exc:
        raise WorkspaceError(spec.name, _profile_file_problem(exc)) from None
    except ValueError as exc:
        raise WorkspaceError(spec.name, f"cannot authenticate: {_first_line(exc)}") from None
    except Exception as exc:  # whatever else a credential source raises: never its text
        raise WorkspaceError(
            spec.name, f"cannot authenticate: {type(exc).__name__} while setting up the client"
        ) from None


def _profile_file_problem(exc: configparser.Error) -> str:
    """A broken ``~/.databrickscfg``, by file and line number only: configparser quotes the
    offending lines, and a line of that file may hold a token."""
    source = getattr(exc, "source", None) or "the Databricks profile file"
    lines: list[int] = []
    if isinstance(exc, configparser.ParsingError):
        lines = [number for number, _ in exc.errors]
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        lines.append(lineno)
    where = f" at line {', '.join(str(n) for n in sorted(set(lines)))}" if lines else ""
    return (
        f"cannot read the profile file {source}{where}: it is not valid INI "
        f"({type(exc).__name__}; the line is not shown, it may hold a token)"
    )


def unresolvable(host: str) -> str | None:
    """Why ``host`` can never be reached, when its name does not exist, else None.

    The SDK retries a failed name lookup like a dropped connection, for the whole
    ``--timeout``; a name the resolver says does not exist will not start existing, so the
    workspace fails at once. A temporary resolver failure is left to the SDK's retries, and
    so is every host reached through a proxy (the proxy resolves it, not this machine)."""
    parts = urllib.parse.urlsplit(host)
    name = parts.hostname
    if not name:
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return None
    if requests.utils.get_environ_proxies(host):
        return None
    try:
        socket.getaddrinfo(name, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in _NO_SUCH_NAME:
            return f"cannot resolve host name {name}: no such host (check `host:` in the file)"
    except (OSError, UnicodeError):
        return None
    return None


_NO_SUCH_NAME = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


_MAX_SAID = 200
"""Longest service message quoted back to the user."""


def _is_authentication(error_code: object, said: str) -> bool:
    """A 403 that refuses who the caller is, not what it may do. The gateway answers an
    unknown or revoked token with HTTP 403 and the status as its error code ("Invalid access
    token."), which the SDK maps to ``PermissionDenied``; a refused action carries the error
    code ``PERMISSION_DENIED``."""
    code = str(error_code or "")
    if code == "PERMISSION_DENIED":
        return False
    return code in ("403", "401", "UNAUTHENTICATED") or "token" in said.lower()


def list_account_workspaces(
    account: AccountSpec, *, retry_timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
) -> list[AccountWorkspace]:
    """Every workspace the account lists (``AccountClient().workspaces.list()``), with the
    SDK's deployment URL for each. Raises ``UserError`` with a message a user can act on."""
    auth = account.auth
    where = f"account {account.account_id}"
    try:
        strategy = None
        if auth.kind == "oauth" and auth.client_id and auth.client_secret is not None:
            token_url = f"{account.host}/oidc/accounts/{account.account_id}/v1/token"
            strategy = _ClientCredentials(token_url, auth.client_id, auth.client_secret)
            options = _client_options(account.host, AuthSpec(), retry_timeout_seconds)
            config: Config = _TokenConfig(
                credentials_strategy=strategy, account_id=account.account_id, **options
            )
        else:
            options = _client_options(account.host, auth, retry_timeout_seconds)
            config_class = _TokenConfig if options.get("auth_type") == "pat" else Config
            config = config_class(account_id=account.account_id, **options)
        client = AccountClient(config=config)
        _settle_environment(_session_of(client), account.host)
        if strategy is not None:
            strategy.source.session = _session_of(client)
        listed = list(client.workspaces.list())
    except TokenRefused as exc:
        raise UserError(f"{where}: the service principal was refused a token: {exc}") from None
    except configparser.Error as exc:  # the same mapping as every workspace client's
        raise UserError(f"{where}: {_profile_file_problem(exc)}") from None
    except ValueError as exc:
        raise UserError(f"{where}: cannot authenticate: {_shown(_first_line(exc))}") from None
    except (Unauthenticated, PermissionDenied) as exc:
        raise UserError(
            f"{where}: listing workspaces was refused ({_shown(_first_line(exc))}); the "
            "principal needs to be an account admin"
        ) from None
    except NotFound:
        raise UserError(f"{where}: not found at {account.host}") from None
    except (requests.ConnectionError, TimeoutError):
        raise UserError(f"{where}: cannot reach {account.host}") from None
    except DatabricksError as exc:
        raise UserError(f"{where}: listing workspaces failed: {_shown(_first_line(exc))}") from None
    except (AttributeError, TypeError, KeyError):
        # The SDK parses the answer as a list of workspace objects; anything else (a map,
        # a list of strings) fails inside it.
        raise UserError(f"{where}: the account's answer is not a list of workspaces") from None
    environment = config.environment
    found: list[AccountWorkspace] = []
    for ws in listed:
        try:
            found.append(_account_workspace(ws, environment.deployment_url))
        except (AttributeError, TypeError, ValueError):
            raise UserError(
                f"{where}: the account's answer holds a malformed workspace entry"
            ) from None
    return found


def _account_workspace(ws: Any, deployment_url: Callable[[str], str]) -> AccountWorkspace:
    """One ``provisioning.Workspace``, its fields made plain strings (the account's answer is
    checked further by ``reconciler.core.discovery`` before anything uses it)."""
    deployment = str(ws.deployment_name or "")
    tags = ws.custom_tags or {}
    if not isinstance(tags, Mapping):
        raise TypeError("custom_tags")
    status = ws.workspace_status
    return AccountWorkspace(
        name=str(ws.workspace_name or ""),
        deployment_name=deployment,
        workspace_id=ws.workspace_id if isinstance(ws.workspace_id, int) else None,
        region=str(ws.aws_region or ws.location or ""),
        status=str(getattr(status, "value", status) or ""),
        cloud=str(ws.cloud or ""),
        tags=frozen_map({str(k): str(v) for k, v in tags.items()}),
        deployment_url=deployment_url(deployment) if deployment else None,
    )


def _in_admins(groups: list[ComplexValue] | None) -> bool:
    return any(g.display == "admins" for g in groups or [])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SdkWorkspace:
    """A ``WorkspacePort`` backed by ``WorkspaceClient().secrets``."""

    def __init__(
        self,
        name: str,
        client: WorkspaceApis,
        *,
        ledger_in_workspace: bool = True,
        read_values: bool = True,
        on_value: Callable[[str], None] | None = None,
        tier: Tier = Tier.PREMIUM,
        pool: Executor | None = None,
        throttle: RateLimiter | None = None,
    ) -> None:
        self.name = name
        self.tier = tier
        """On the Standard tier there are no ACLs to read, and scopes (the package scope and
        the lock's) can only be created for all users."""
        self.client = client
        self.ledger_in_workspace = ledger_in_workspace
        self.reads_values = read_values
        """Probe ``secrets/get`` (once per run) and read the managed keys' values where it
        answers."""
        self.get_answers: bool | None = None
        """What the probe found: None until probed, then whether ``secrets/get`` answers."""
        self._on_value = on_value or (lambda _value: None)
        self._pool = pool or _IO_POOL
        self._throttle = throttle
        """``--rate-limit``: the bucket of this workspace's host; every call takes a token."""
        self._admins: dict[str, bool] = {}
        """Admin lookups answered so far (kept for this run, one workspace)."""
        self._caller_admin: bool | None = None
        self._me: str | None = None
        """The caller's user name as ``current_user.me`` answered it (asked once)."""
        self.principal: str | None = None
        """The caller's name when the credential tells it (a service principal is named by
        its application id, in SCIM and in ACLs): then nobody asks the workspace."""

    @classmethod
    def connect(cls, spec: WorkspaceSpec, **kwargs: object) -> SdkWorkspace:
        retry = kwargs.pop("retry_timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        assert isinstance(retry, int)
        unknown = unresolvable(spec.host)
        if unknown is not None:
            raise WorkspaceError(spec.name, unknown)
        client = make_client(spec, retry_timeout_seconds=retry)
        kwargs.setdefault("tier", spec.tier)
        port = cls(spec.name, client, **kwargs)  # type: ignore[arg-type]
        if spec.auth.kind == "oauth" and spec.auth.client_id:
            port.principal = spec.auth.client_id
        return port

    def close(self) -> None:
        """Close this client's pooled connections (it still works: a later request opens a
        new one)."""
        _close_connections(_session_of(self.client))

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
        ``secrets/get`` outside a notebook). With a ``throttle`` (``--rate-limit``), the call
        first takes a token from its host's bucket."""
        if self._throttle is not None:
            self._throttle.acquire()
        try:
            return fn()
        except (BadRequest, PermissionDenied) as exc:
            if if_refused is not None:
                return if_refused()
            if isinstance(exc, PermissionDenied):
                said = self._said(exc)
                if _is_authentication(exc.error_code, said):
                    raise WorkspaceError(
                        self.name, self._authentication_failed(what, exc)
                    ) from None
                if self.principal is not None:
                    raise WorkspaceError(
                        self.name,
                        f"{what}: permission denied: the service principal {self.principal} "
                        "is not a workspace admin here (assign it to this workspace with the "
                        f"ADMIN permission); the service said {said}",
                    ) from None
                raise WorkspaceError(
                    self.name,
                    f"{what}: permission denied: the service said {said} "
                    f"(the credentials were accepted; pkgrepo needs a workspace admin, or "
                    f"MANAGE on the {SCOPE} scope)",
                ) from None
            if PREMIUM_DISABLED.lower() in str(exc).lower():
                raise _StandardTier(self.name, f"{what}: {STANDARD_TIER_ADVICE}") from None
            raise WorkspaceError(self.name, f"{what}: {_first_line(exc)}") from None
        except NotFound:
            if if_missing is None:
                raise WorkspaceError(self.name, f"{what}: does not exist") from None
            return if_missing()
        except ResourceAlreadyExists:
            if if_exists is None:
                raise WorkspaceError(self.name, f"{what}: already exists") from None
            return if_exists()
        except Unauthenticated as exc:
            raise WorkspaceError(self.name, self._authentication_failed(what, exc)) from None
        except TokenRefused as exc:
            raise WorkspaceError(
                self.name,
                f"{what}: the service principal {self.principal} was refused a token for "
                f"this workspace ({exc}); is it assigned to this workspace?",
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

    def _authentication_failed(self, what: str, exc: DatabricksError) -> str:
        return (
            f"{what}: authentication failed: the service said {self._said(exc)} "
            "(the token or credentials in this workspace's `auth:` were refused: "
            "check they are current and meant for this host)"
        )

    def _said(self, exc: DatabricksError) -> str:
        """The service's own message, quoted on one line: without the SDK's appended
        configuration summary, control characters escaped, cut short. (Secret values are
        scrubbed where it is printed, as everywhere.)"""
        text = str(exc)
        debug = self.client.config.debug_string()
        if debug and text.endswith(debug):
            text = text[: -len(debug)].rstrip(" .") + "."
        text = " ".join(text.split())
        text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
        if len(text) > _MAX_SAID:
            text = text[: _MAX_SAID - 3] + "..."
        return f'"{text}"' if text else "nothing"

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
            self._check_standard()
            return frozen_map()
        items = self._call(
            "list ACLs",
            lambda: list(self.client.secrets.list_acls(SCOPE)),
            if_missing=lambda: [],
        )
        return frozen_map(
            {str(a.principal): Permission(a.permission.value) for a in items if a.permission}
        )

    def _check_standard(self) -> None:
        """Under ``tier: standard`` no ACLs are managed, but they are still asked for once:
        a Standard-tier workspace refuses (FIDELITY row 16), or at most lists the ``users``
        MANAGE its scopes are created with. A listing with any other grant comes from a
        Premium workspace, where the setting would hide every grant made outside pkgrepo."""
        try:
            items = self._call(
                "list ACLs",
                lambda: list(self.client.secrets.list_acls(SCOPE)),
                if_missing=lambda: [],
            )
        except _StandardTier:
            return
        grants = {(str(a.principal), a.permission.value if a.permission else "") for a in items}
        if grants - {("users", "MANAGE")}:
            raise WorkspaceError(
                self.name, f"list ACLs: {PREMIUM_NOT_STANDARD} (its scope lists grants)"
            )

    def _identity(self) -> str | None:
        if self.principal is not None:
            return self.principal
        if self._me is None:
            # One credential, one answer: later reads of this workspace do not ask again.
            self._me = self._call("who am I", self.client.current_user.me).user_name
        return self._me

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

    def _read_back(self, keys: list[str]) -> dict[str, SecretValue | None] | None:
        """The values of ``keys`` where ``secrets/get`` answers; None where it does not.

        ``secrets/get`` over REST is documented for DBUtils only, yet it answers a MANAGE
        holder in at least some workspaces (databricks/cli's acceptance test run against the
        cloud reads a value back). So it is probed once per run with the first key; where
        it answers, the others are read too."""
        if not keys or not self.reads_values or self.get_answers is False:
            return None
        first = self._steady(lambda: self._value(keys[0]))()
        self.get_answers = first is not None
        if first is None:
            return None
        values: dict[str, SecretValue | None] = {keys[0]: first}
        futures = {k: self._pool.submit(self._steady(partial(self._value, k))) for k in keys[1:]}
        values.update({k: f.result() for k, f in futures.items()})
        return values

    def _values(
        self, secrets: Mapping[str, LiveSecret], proven: Collection[str]
    ) -> Mapping[str, LiveSecret]:
        """The managed keys with their values, where ``secrets/get`` answers, but for the
        ``proven`` ones (the ledger vouches for them). Keys pkgrepo does not manage are
        never read (a Key Vault backed scope lists every secret of the vault)."""
        values = self._read_back([k for k in MANAGED_KEYS if k in secrets and k not in proven])
        if values is None:
            return secrets
        return frozen_map(
            {
                k: LiveSecret(s.key, s.last_updated_ms, values.get(k)) if k in values else s
                for k, s in secrets.items()
            }
        )

    def read_values(self, keys: Collection[str]) -> Mapping[str, SecretValue] | None:
        values = self._read_back(list(keys))
        if values is None:
            return None
        return frozen_map({k: v for k, v in values.items() if v is not None})

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

    def read(self, proven: ProvenKeys | None = None) -> Snapshot:
        """The reads go out together (one round trip): all but one through the pool, the
        last from this thread while it waits anyway. Each is retried on its own
        (``_steady``). With ``proven``, what backs the scope is asked only when the ledger
        does not vouch for every managed key listed: then alongside the values."""
        acls_f = self._pool.submit(self._steady(self._acls_or_empty))
        ledger_f = self._pool.submit(self._steady(self._ledger))
        backend_f = None if proven else self._pool.submit(self._steady(self._scope_backend))
        known_identity = self.principal or self._me
        identity_f = None if known_identity else self._pool.submit(self._steady(self._identity))
        secrets = self._steady(self._secrets_or_none)()
        acls, ledger = acls_f.result(), ledger_f.result()
        identity = identity_f.result() if identity_f else known_identity
        if secrets is None:
            if backend_f is not None:
                backend_f.result()
            return Snapshot(LiveState(scope_exists=False, identity=identity), ledger)
        known = frozenset(proven(secrets, ledger)) if proven else frozenset()
        managed = [k for k in MANAGED_KEYS if k in secrets]
        backend: tuple[Backend, str | None] = (Backend.DATABRICKS, None)
        if backend_f is None and not (managed and known.issuperset(managed)):
            backend_f = self._pool.submit(self._steady(self._scope_backend))
        secrets = self._values(secrets, known)
        if backend_f is not None:
            backend = backend_f.result()
        live = LiveState(
            scope_exists=True,
            secrets=secrets,
            acls=acls,
            identity=identity,
            backend=backend[0],
            keyvault=backend[1],
        )
        return Snapshot(live, ledger)

    # -- writes (idempotent) ---------------------------------------------------------------

    def create_scope(self) -> None:
        if self._create(SCOPE, "create scope"):
            return
        self._call(
            "create scope",
            lambda: self.client.secrets.create_scope(SCOPE, initial_manage_principal="users"),
            if_exists=lambda: None,
        )

    def _create(self, scope: str, what: str) -> bool:
        """Create ``scope`` with MANAGE for its creator only: True once it exists (made now
        or before). False only where the file says ``tier: standard`` and the service
        refused for that reason: then, and only then, is it created for ``users``.

        scopes/create: "The only supported principal for this option is the group users",
        and below Premium it is the only way a scope can be created at all (FIDELITY rows 2
        and 15). A workspace that accepts the Premium form is Premium, where ``tier:
        standard`` would open the package settings to every user: that fails the workspace,
        and a lock scope made by the probe is removed again."""
        try:
            made = self._call(
                what,
                lambda: self.client.secrets.create_scope(scope) is None,
                if_exists=lambda: False,
            )
        except _StandardTier:
            if self.tier is Tier.STANDARD:
                return False
            raise
        if made and self.tier is Tier.STANDARD:
            if scope == LOCK_SCOPE:
                self.lock_delete()
            raise WorkspaceError(self.name, f"{what}: {PREMIUM_NOT_STANDARD}")
        return True

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

    # -- the advisory lock (reconciler.engine.lock) ------------------------------------------------

    def lock_create(self) -> bool:
        """Whether this call created the lock scope (False: it was there already)."""
        if self.tier is not Tier.STANDARD:
            return self._call(
                "take lock",
                lambda: self.client.secrets.create_scope(LOCK_SCOPE) is None,
                if_exists=lambda: False,
            )
        if self._create(LOCK_SCOPE, "take lock"):
            return False  # it existed: the Premium form is never kept under `tier: standard`
        return self._call(
            "take lock",
            lambda: (
                self.client.secrets.create_scope(LOCK_SCOPE, initial_manage_principal="users")
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

    def lock_writers(self) -> Mapping[str, Permission] | None:
        if self.tier is Tier.STANDARD:
            # No secret ACLs below Premium (every scope is made for ``users``): nobody can be
            # told apart, so there is nothing to vet and nothing to revoke.
            keys = self.lock_keys()
            return None if keys is None else frozen_map()
        items = self._call(
            "read lock ACLs",
            lambda: list(self.client.secrets.list_acls(LOCK_SCOPE)),
            if_missing=lambda: None,
        )
        if items is None:
            return None
        return frozen_map(
            {
                str(a.principal): Permission(a.permission.value)
                for a in items
                if a.principal is not None
                and a.permission is not None
                and a.permission.value in ("WRITE", "MANAGE")
            }
        )

    def lock_revoke(self, principal: str) -> bool:
        if self.tier is Tier.STANDARD:
            return False
        # acls/delete: "Throws RESOURCE_DOES_NOT_EXIST if no such secret scope, principal,
        # or ACL exists" (Secrets API reference): only the first caller removes a grant.
        return self._call(
            "revoke lock access",
            lambda: self.client.secrets.delete_acl(LOCK_SCOPE, principal) is None,
            if_missing=lambda: False,
        )

    def admin_status(self, principal: str) -> bool | str:
        """Workspace admins are the members of the ``admins`` group (the membership that
        gives MANAGE on every secret scope: "Workspace admins have MANAGE permissions on all
        secret scopes in the workspace", Databricks secret ACL docs). Asked through SCIM:
        ``users.list`` by ``userName``, then ``service_principals.list`` by
        ``applicationId`` (``ComplexValue.display == "admins"`` among its ``groups``, the
        check databrickslabs/ucx makes on ``current_user.me()``); a group other than
        ``admins`` is not an admin. The comparison value is a JSON string (RFC 7644
        section 3.4.2.2), so quotes or control characters in a name cannot change the
        filter; only an exact match of the name counts."""
        known = self._admins.get(principal)
        if known is not None:
            return known
        try:
            answer = self._admin_status(principal)
        except UserError as exc:
            return f"the lookup failed: {_shown(str(exc))}"
        except Exception as exc:  # never a crash over a lookup: the lock is then honoured
            return f"the lookup failed: {type(exc).__name__}"
        if isinstance(answer, bool):
            self._admins[principal] = answer
        return answer

    def _admin_status(self, principal: str) -> bool | str:
        if principal == "admins":
            return True
        if principal == "users":
            return False
        if not self._caller_sees_groups():
            return (
                "pkgrepo's identity is not a workspace admin here, and the workspace shows "
                "others' groups to admins only"
            )
        value = json.dumps(principal, ensure_ascii=False)  # a JSON string, as SCIM takes it
        users = self._call(
            "look up a user",
            lambda: list(
                self.client.users.list(
                    filter=f"userName eq {value}", attributes="id,userName,groups", count=10
                )
            ),
        )
        for user in users:
            if (user.user_name or "").casefold() == principal.casefold():
                return _in_admins(user.groups)
        found = self._call(
            "look up a service principal",
            lambda: list(
                self.client.service_principals.list(
                    filter=f"applicationId eq {value}",
                    attributes="id,applicationId,groups",
                    count=10,
                )
            ),
        )
        for sp in found:
            if (sp.application_id or "").casefold() == principal.casefold():
                return _in_admins(sp.groups)
        groups = self._call(
            "look up a group",
            lambda: list(
                self.client.groups.list(
                    filter=f"displayName eq {value}", attributes="id,displayName", count=10
                )
            ),
        )
        if any(g.display_name == principal for g in groups):
            return False  # a group of its own: its members are not admins by being in it
        return "the workspace knows no user, service principal or group of that name"

    def _caller_sees_groups(self) -> bool:
        """Whether pkgrepo's identity is a workspace admin: SCIM shows others' groups to
        admins only, so for anyone else a principal without groups proves nothing."""
        if self._caller_admin is None:
            me = self._call("who am I", self.client.current_user.me)
            self._caller_admin = _in_admins(me.groups)
        return self._caller_admin

    def write_ledger(self, document: bytes) -> None:
        content = base64.b64encode(document).decode()

        def write() -> None:
            self.client.workspace.mkdirs(LEDGER_DIR)
            self.client.workspace.import_(
                LEDGER_PATH, content=content, format=ImportFormat.AUTO, overwrite=True
            )

        self._call("write ledger", write)
