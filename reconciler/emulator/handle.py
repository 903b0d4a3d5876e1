"""Running an emulator in this process: ``running_emulator`` and the ``EmulatorHandle`` it yields.

The server runs in a background thread on 127.0.0.1 (port 0: a free port). Each handle has its
own state (or the state file's): there are no module-level backends, so tests never share any.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.emulator.account import Account, ListedWorkspace
from reconciler.emulator.backend import SecretsBackend
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.faults import Faults
from reconciler.emulator.identity import ADMIN_TOKEN, USER_TOKEN, Principal
from reconciler.emulator.modes import ServiceModes
from reconciler.emulator.server import EmulatorServer, RequestLog
from reconciler.emulator.workspace_files import WorkspaceFiles
from reconciler.emulator.workspaces import (
    DEFAULT_WORKSPACE,
    Listeners,
    RequestListener,
    Workspace,
    WorkspaceRegistry,
    is_workspace_name,
)


class EmulatorHandle:
    """A running emulator, for tests and embedding.

    ``url`` is the root (workspace ``default``); ``host(name)`` the host to give a client for
    workspace ``name``. ``backend``/``files`` give direct access to a workspace's state for
    seeding and assertions (changes made there are saved on ``save()`` or at stop).

    This is the emulator's whole surface for tests and embedding: the settings here (faults,
    modes, the account's list and clock), the counts and request listeners to observe, and
    the state to seed. Tests use nothing else of the emulator's (``tests/architecture``
    checks it), so its internals may change without breaking them.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        state_file: Path | None = None,
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        request_log: RequestLog | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.state_file = state_file
        self._bind = bind
        self._port = port
        self._request_log = request_log
        self._listeners = Listeners()
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> EmulatorHandle:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        registry = WorkspaceRegistry(self.config, self.state_file)
        server = EmulatorServer(
            (self._bind, self._port), registry, self._request_log, self._listeners
        )
        self._port = server.server_address[1]  # a restart comes back on the same port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"pkgrepo-emulator:{self._port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join()
        server.registry.save()
        self._server = self._thread = None

    def restart(self) -> None:
        """Stop and start again on the same port, reloading the state file (if any)."""
        self.stop()
        self.start()

    def serve_forever(self) -> None:
        """Block until interrupted (the CLI's foreground mode)."""
        if self._thread is None:
            raise RuntimeError("start() the emulator first")
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> EmulatorHandle:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._bind}:{self._port}"

    def host(self, workspace: str = DEFAULT_WORKSPACE) -> str:
        if not is_workspace_name(workspace):
            raise ValueError(f"invalid workspace name {workspace!r}")
        return self.url if workspace == DEFAULT_WORKSPACE else f"{self.url}/{workspace}"

    # -- state, faults, counts ----------------------------------------------------------

    @property
    def _registry(self) -> WorkspaceRegistry:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.registry

    def _workspace(self, name: str = DEFAULT_WORKSPACE) -> Workspace:
        return self._registry.get(name)

    def backend(self, workspace: str = DEFAULT_WORKSPACE) -> SecretsBackend:
        return self._workspace(workspace).secrets

    def files(self, workspace: str = DEFAULT_WORKSPACE) -> WorkspaceFiles:
        return self._workspace(workspace).files

    def workspace_id(self, workspace: str = DEFAULT_WORKSPACE) -> str:
        return self._workspace(workspace).workspace_id

    def principal(self, token: str) -> Principal:
        found = self._registry.directory.authenticate(token)
        if found is None:
            raise KeyError("no principal has that token")
        return found

    @property
    def admin(self) -> Principal:
        """The default admin (token ``dapi-emulator-admin``), for seeding through backend()."""
        return self.principal(ADMIN_TOKEN)

    @property
    def user(self) -> Principal:
        return self.principal(USER_TOKEN)

    def set_faults(self, workspace: str, faults: Faults) -> None:
        """Replace a workspace's faults now (one-shot counters and the bucket restart)."""
        self._workspace(workspace).set_faults(faults)

    def set_modes(self, workspace: str, modes: ServiceModes) -> None:
        """Change how a workspace's Secrets service behaves from now on (``modes``)."""
        self._workspace(workspace).secrets.set_modes(modes)

    def set_notebook_context(self, workspace: str, enabled: bool) -> None:
        self._workspace(workspace).notebook_context = enabled

    def add_request_listener(self, listener: RequestListener) -> None:
        """Call ``listener(RequestSeen)`` for every request a workspace receives (across
        restarts), on the serving thread, before the answer goes out: to observe the order
        of requests, or check the state right after each write, without reaching into the
        emulator."""
        self._listeners.add(listener)

    def remove_request_listener(self, listener: RequestListener) -> None:
        self._listeners.remove(listener)

    def open_connections(self, *, settle_seconds: float = 0.0) -> int:
        """Client connections the emulator holds open (as a workspace's front end would).
        With ``settle_seconds``, wait up to that long for the count to reach zero: a client's
        close reaches the server a moment after it returns."""
        server = self._server
        if server is None:
            return 0
        deadline = time.monotonic() + settle_seconds
        while True:
            count = server.open_connections()
            if count == 0 or time.monotonic() >= deadline:
                return count
            time.sleep(0.02)

    def requests(self, workspace: str = DEFAULT_WORKSPACE) -> Counter[tuple[str, str]]:
        """Requests received, by (method, path), e.g. ("GET", "/api/2.0/secrets/list")."""
        counts: Counter[tuple[str, str]] = Counter()
        for (method, path, _status), n in self._workspace(workspace).responses().items():
            counts[(method, path)] += n
        return counts

    def responses(self, workspace: str = DEFAULT_WORKSPACE) -> Counter[tuple[str, str, int]]:
        """Answers given, by (method, path, status); status 0 is a dropped connection."""
        return self._workspace(workspace).responses()

    def reset_counts(self, workspace: str | None = None) -> None:
        names = [workspace] if workspace is not None else self._registry.names()
        for name in names:
            self._workspace(name).reset_counts()

    def state(self, workspace: str = DEFAULT_WORKSPACE) -> dict[str, Any]:
        """A workspace's state (scopes, secrets, ACLs, files) as the state file saves it."""
        return self._workspace(workspace).to_dict()

    # -- the account (EmulatorConfig.account) ---------------------------------------------

    def _account(self) -> Account:
        account = self._registry.account
        if account is None:
            raise RuntimeError("this emulator has no account (EmulatorConfig.account)")
        return account

    def account_tokens(self) -> tuple[str, ...]:
        """The OAuth access tokens the account's token endpoints issued (workspace and
        account tokens) that have not expired, oldest first: they are credentials, so a
        test looks for each in every output."""
        return self._account().live_tokens()

    def account_workspaces(self) -> tuple[ListedWorkspace, ...]:
        """What the account lists now (``GET /api/2.0/accounts/<id>/workspaces``)."""
        return self._account().settings.workspaces

    def set_account_workspaces(self, workspaces: Iterable[ListedWorkspace]) -> None:
        """What the account lists from now on, until a restart: a workspace deleted from
        the account, or one whose status is no longer RUNNING (FIDELITY row 23)."""
        account = self._account()
        account.settings = replace(account.settings, workspaces=tuple(workspaces))

    def set_account_list_answer(self, body: bytes | None) -> None:
        """Answer the account's workspaces list (to an account admin) with ``body``, status
        200, instead of the list, until a restart: an injected fault (a malformed answer, as
        a proxy or a changed API might give), not a behaviour of the service. ``None``
        answers the list again."""
        self._account().list_answer = body

    def set_account_clock(self, clock: Callable[[], float]) -> None:
        """The clock (seconds since the epoch, ``time.time`` by default) the account's OAuth
        tokens expire by (``token_ttl_seconds`` after issue, FIDELITY rows 24-25): a test
        moves it to see an expired token refused without waiting."""
        self._account().clock = clock

    def save(self) -> None:
        """Write the state file now (direct backend changes are not saved on their own)."""
        self._registry.save()


@contextmanager
def running_emulator(
    config: EmulatorConfig | None = None,
    state_file: Path | None = None,
    *,
    bind: str = "127.0.0.1",
    port: int = 0,
    request_log: RequestLog | None = None,
) -> Iterator[EmulatorHandle]:
    """Run an emulator in a background thread (port 0: a free port) for the ``with`` block.

    Each call has fresh state (or the state file's); nothing is shared between emulators."""
    handle = EmulatorHandle(config, state_file, bind=bind, port=port, request_log=request_log)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
