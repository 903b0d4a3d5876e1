"""Which workspaces a command acts on: the selection flags are parsed on the command line's
side (``reconciler.commands.selection``), every mistake names its flag, and every command
that selects (plan, apply, drift, verify, force-unlock, export --from) says it the same way,
before it reaches any workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.commands.selection import Selection, from_flags, select, shard_of
from reconciler.core.errors import UserError
from reconciler.core.model import WorkspaceSpec, frozen_map

FILE = """\
version: 1
defaults:
  auth: {token: {env: SELECTION_TEST_TOKEN}}
  repositories: {index_url: "https://pypi.example.com/simple"}
  acls: {admins: MANAGE}
workspaces:
  dev: {host: "http://127.0.0.1:9/dev", labels: {env: dev}}
  prod-eu: {host: "http://127.0.0.1:9/prod-eu", labels: {env: prod}}
  prod-us: {host: "http://127.0.0.1:9/prod-us", labels: {env: prod}}
"""


def _spec(name: str, **labels: str) -> WorkspaceSpec:
    return WorkspaceSpec(name=name, host=f"http://127.0.0.1:9/{name}", labels=frozen_map(labels))


FLEET = [_spec("dev", env="dev"), _spec("prod-eu", env="prod"), _spec("prod-us", env="prod")]


@pytest.mark.parametrize(
    ("names", "labels", "shard", "message"),
    [
        ((), (), "2", "--shard '2': expected I/N"),
        ((), (), "0/2", "--shard '0/2': I must be between 1 and N"),
        ((), (), "3/2", "--shard '3/2': I must be between 1 and N"),
        ((), (), "a/b", "--shard 'a/b': expected I/N"),
        ((), ("env",), None, "--select 'env': expected LABEL=VALUE"),
        ((), ("=prod",), None, "--select '=prod': expected LABEL=VALUE"),
    ],
)
def test_a_malformed_flag_is_named_in_its_error(
    names: tuple[str, ...], labels: tuple[str, ...], shard: str | None, message: str
) -> None:
    with pytest.raises(UserError) as raised:
        from_flags(names, labels, shard)
    assert message in str(raised.value)


def test_the_flags_make_one_selection_the_fleet_is_chosen_by() -> None:
    selection = from_flags(("prod-*",), ("env=prod",), "1/1")
    assert selection == Selection(names=("prod-*",), labels={"env": "prod"}, shard=(1, 1))
    assert [ws.name for ws in select(FLEET, selection)] == ["prod-eu", "prod-us"]
    with pytest.raises(UserError, match="--workspace 'staging' matches no workspace"):
        select(FLEET, from_flags(("staging",), (), None))
    with pytest.raises(UserError) as raised:
        select(FLEET, from_flags((), ("env=qa",), None))
    assert "--select env=qa matches no workspace" in str(raised.value)
    assert "labels in the file: env (dev, prod)" in str(raised.value)


def test_shards_cover_the_fleet_exactly_once() -> None:
    names = [f"ws-{i}" for i in range(40)]
    fleet = [_spec(name) for name in names]
    chosen = [ws.name for i in (1, 2, 3) for ws in select(fleet, from_flags((), (), f"{i}/3"))]
    assert sorted(chosen) == sorted(names)
    assert all(1 <= shard_of(name, 3) <= 3 for name in names)


@pytest.mark.parametrize(
    "argv",
    [
        ("plan", "{file}"),
        ("apply", "{file}", "--auto-approve"),
        ("drift", "{file}"),
        ("verify", "{file}"),
        ("force-unlock", "--file", "{file}", "--auto-approve"),
        ("export", "--from", "{file}", "--output", "{out}"),
    ],
)
def test_every_command_that_selects_says_a_bad_shard_the_same_way(
    argv: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SELECTION_TEST_TOKEN", "dapi-selection-test")
    file = tmp_path / "pkgrepo.yaml"
    file.write_text(FILE)
    out = tmp_path / "out.yaml"
    args = [a.format(file=file, out=out) for a in argv]
    code = main([*args, "--shard", "5/4"])
    stderr = capsys.readouterr().err
    assert code == 1
    assert "--shard '5/4': I must be between 1 and N" in stderr
    assert "Traceback" not in stderr and not out.exists()
    code = main([*args, "--select", "env=qa"])
    stderr = capsys.readouterr().err
    assert code == 1
    assert "--select env=qa matches no workspace in the file" in stderr
