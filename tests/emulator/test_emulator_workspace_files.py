"""The Workspace file API subset a ledger needs, through the real SDK."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    BadRequest,
    InvalidParameterValue,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from databricks.sdk.service.workspace import ImportFormat, ObjectType

from reconciler.emulator import EmulatorHandle

MakeClient = Callable[..., WorkspaceClient]
LEDGER = "/Users/admin@pkgrepo.local/.pkgrepo/ledger.json"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_import_export_get_status_mkdirs_delete(client: WorkspaceClient) -> None:
    client.workspace.mkdirs("/Users/admin@pkgrepo.local/.pkgrepo")
    client.workspace.import_(LEDGER, content=b64(b'{"v": 1}'), format=ImportFormat.AUTO)
    assert base64.b64decode(client.workspace.export(LEDGER).content or "") == b'{"v": 1}'
    status = client.workspace.get_status(LEDGER)
    assert (status.object_type, status.size, status.path) == (ObjectType.FILE, 8, LEDGER)
    assert (
        client.workspace.get_status("/Users/admin@pkgrepo.local").object_type
        == ObjectType.DIRECTORY
    )

    with pytest.raises(ResourceAlreadyExists):
        client.workspace.import_(LEDGER, content=b64(b"{}"), format=ImportFormat.AUTO)
    client.workspace.import_(
        LEDGER, content=b64(b'{"v": 2}'), format=ImportFormat.RAW, overwrite=True
    )
    assert client.workspace.download(LEDGER).read() == b'{"v": 2}'  # direct_download

    client.workspace.delete(LEDGER)
    with pytest.raises(ResourceDoesNotExist):
        client.workspace.export(LEDGER)
    with pytest.raises(ResourceDoesNotExist):
        client.workspace.get_status(LEDGER)


def test_upload_multipart_form_as_the_sdk_sends_it(client: WorkspaceClient) -> None:
    path = "/Shared/ledger.json"
    client.workspace.upload(path, io.BytesIO(b'{"a": 1}'), format=ImportFormat.AUTO)
    client.workspace.upload(path, b'{"a": 2}', format=ImportFormat.AUTO, overwrite=True)
    assert client.workspace.download(path).read() == b'{"a": 2}'
    with pytest.raises(ResourceAlreadyExists):
        client.workspace.upload(path, b"{}", format=ImportFormat.AUTO)


def test_files_under_users_belong_to_that_user_and_admins(
    client: WorkspaceClient, make_client: MakeClient
) -> None:
    bob = make_client(token="dapi-bob")
    home = "/Users/bob@example.com/ledger.json"
    bob.workspace.import_(home, content=b64(b"mine"), format=ImportFormat.RAW)
    assert base64.b64decode(client.workspace.export(home).content or "") == b"mine"  # admin
    alice = make_client(token="dapi-alice")
    with pytest.raises(PermissionDenied):
        alice.workspace.export(home)
    with pytest.raises(PermissionDenied):
        alice.workspace.import_(home, content=b64(b"x"), format=ImportFormat.RAW, overwrite=True)
    with pytest.raises(PermissionDenied):
        bob.workspace.import_("/Shared/x.json", content=b64(b"x"), format=ImportFormat.RAW)
    with pytest.raises(PermissionDenied):
        bob.workspace.get_status(LEDGER)


def test_parent_must_exist_and_bad_requests_are_refused(client: WorkspaceClient) -> None:
    with pytest.raises(ResourceDoesNotExist, match="parent folder"):
        client.workspace.import_("/Shared/a/b.json", content=b64(b"x"), format=ImportFormat.AUTO)
    with pytest.raises(InvalidParameterValue, match="language"):
        client.workspace.import_("/Shared/b.py", content=b64(b"x"), format=ImportFormat.SOURCE)
    with pytest.raises(InvalidParameterValue, match="base64"):
        client.workspace.import_("/Shared/c.json", content="%%%", format=ImportFormat.AUTO)
    with pytest.raises(InvalidParameterValue, match="absolute"):
        client.workspace.get_status("relative/path")
    client.workspace.import_("/Shared/file", content=b64(b"x"), format=ImportFormat.AUTO)
    with pytest.raises(ResourceAlreadyExists):
        client.workspace.mkdirs("/Shared/file/sub")


def test_delete_non_empty_folder_needs_recursive(client: WorkspaceClient) -> None:
    client.workspace.mkdirs("/Shared/dir/sub")
    client.workspace.import_("/Shared/dir/sub/f", content=b64(b"x"), format=ImportFormat.AUTO)
    with pytest.raises(BadRequest) as not_empty:
        client.workspace.delete("/Shared/dir")
    assert not_empty.value.error_code == "DIRECTORY_NOT_EMPTY"
    client.workspace.delete("/Shared/dir", recursive=True)
    with pytest.raises(ResourceDoesNotExist):
        client.workspace.get_status("/Shared/dir/sub/f")


def test_files_are_per_workspace(emulator: EmulatorHandle, make_client: MakeClient) -> None:
    make_client("a").workspace.import_("/Shared/f", content=b64(b"x"), format=ImportFormat.AUTO)
    with pytest.raises(ResourceDoesNotExist):
        make_client("b").workspace.get_status("/Shared/f")
    assert emulator.files("a").export_file(emulator.admin, "/Shared/f") == b"x"
