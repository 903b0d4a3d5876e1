"""``export`` output validates as written (issue 14, item 9, first half)."""

from __future__ import annotations

from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient

from reconciler.core.model import SCOPE
from reconciler.emulator import ADMIN_TOKEN, ServiceModes
from tests.operator.conftest import Fleet
from tests.support.cli import Pkgrepo


def test_an_export_outside_a_notebook_validates_as_written(
    pkgrepo: Pkgrepo, fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the service refuses ``secrets/get`` over REST (as some workspaces do), no value
    can be read back. Extra index URLs are several URLs in one string: the exported file
    leaves them alone instead of asking for a variable that `validate` would refuse, and
    validates as written (with the index URL it asks for)."""
    emu = fleet.emu
    emu.set_modes("legacy", ServiceModes(rest_get="refused"))
    secrets = WorkspaceClient(host=emu.host("legacy"), token=ADMIN_TOKEN).secrets
    secrets.create_scope(SCOPE)
    secrets.put_secret(SCOPE, "pip-index-url", string_value="https://pypi.example.com/simple")
    extras = "https://a.example.com/simple https://b.example.com/simple"
    secrets.put_secret(SCOPE, "pip-extra-index-urls", string_value=extras)
    out = tmp_path / "exported" / "pkgrepo.yaml"
    done = pkgrepo(
        "export",
        "--host",
        f"legacy={emu.host('legacy')}",
        "--token-env",
        "PKGREPO_TEST_TOKEN",
        "--output",
        str(out),
    )
    assert done.code == 0, done.err
    text = out.read_text()
    assert "LEGACY_PIP_EXTRA_INDEX_URLS" not in text + done.err
    assert "pip-extra-index-urls could not be read" in text
    monkeypatch.setenv("LEGACY_PIP_INDEX_URL", "https://pypi.example.com/simple")
    checked = pkgrepo("validate", str(out))
    assert checked.code == 0, checked.text


def test_export_from_a_file_needs_only_the_credentials_it_uses(
    pkgrepo: Pkgrepo, fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`export --from` reads workspaces: it needs their tokens, not the index credentials
    the file would write. A missing workspace token is still one clear error."""
    path = fleet.write(("dev-a",))
    assert pkgrepo("apply", path, "--auto-approve", "-q").code == 0
    monkeypatch.delenv("INDEX_TOKEN")
    out = tmp_path / "exported.yaml"
    done = pkgrepo("export", "--from", path, "--output", str(out))
    assert done.code == 0, done.err
    assert "INDEX_TOKEN" not in done.err and out.exists()
    monkeypatch.delenv("PKGREPO_TEST_TOKEN")
    again = pkgrepo("export", "--from", path, "--output", str(out), "--force")
    assert again.code == 1
    assert "PKGREPO_TEST_TOKEN" in again.err and "auth.token" in again.err
