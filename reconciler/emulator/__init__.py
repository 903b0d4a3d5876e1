"""A local stand-in for the Databricks Secrets REST API (and the bits of the Workspace, SCIM
and discovery APIs a client touches), so the real ``databricks-sdk`` works against it.

Many workspaces share one port: ``http://127.0.0.1:PORT/<workspace>`` is a workspace's host,
the root is workspace ``default``. Token ``dapi-emulator-admin`` is a workspace admin
everywhere, ``dapi-emulator-user`` a plain user. Modelled on moto: pure backends
(``backend``, ``workspace_files``) behind a thin HTTP layer (``api`` routes, ``server``).

    with running_emulator() as emu:
        client = WorkspaceClient(host=emu.host("ws1"), token=ADMIN_TOKEN)
"""

from reconciler.emulator.account import AccountSettings, ListedWorkspace, ServicePrincipal
from reconciler.emulator.backend import (
    MAX_SECRETS_PER_SCOPE,
    MAX_VALUE_BYTES,
    AclLevel,
    SecretsBackend,
)
from reconciler.emulator.config import EXAMPLE as CONFIG_EXAMPLE
from reconciler.emulator.config import (
    EmulatorConfig,
    EmulatorConfigError,
    WorkspaceSettings,
    load_config,
)
from reconciler.emulator.errors import ApiError
from reconciler.emulator.faults import Faults, OneShotFailure
from reconciler.emulator.handle import EmulatorHandle, running_emulator
from reconciler.emulator.identity import (
    ADMIN_TOKEN,
    DEFAULT_ADMIN,
    DEFAULT_USER,
    USER_TOKEN,
    Principal,
)
from reconciler.emulator.in_process import Dropped, InProcessEmulator
from reconciler.emulator.modes import KeyVault, ServiceModes
from reconciler.emulator.persistence import StateFileError
from reconciler.emulator.workspace_files import WorkspaceFiles
from reconciler.emulator.workspaces import RequestListener, RequestSeen

__all__ = [
    "ADMIN_TOKEN",
    "CONFIG_EXAMPLE",
    "DEFAULT_ADMIN",
    "DEFAULT_USER",
    "MAX_SECRETS_PER_SCOPE",
    "MAX_VALUE_BYTES",
    "USER_TOKEN",
    "AccountSettings",
    "AclLevel",
    "ApiError",
    "Dropped",
    "EmulatorConfig",
    "EmulatorConfigError",
    "EmulatorHandle",
    "Faults",
    "InProcessEmulator",
    "KeyVault",
    "ListedWorkspace",
    "OneShotFailure",
    "Principal",
    "RequestListener",
    "RequestSeen",
    "SecretsBackend",
    "ServiceModes",
    "ServicePrincipal",
    "StateFileError",
    "WorkspaceFiles",
    "WorkspaceSettings",
    "load_config",
    "running_emulator",
]
