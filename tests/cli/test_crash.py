"""An unexpected error is a bug: exit 3 with its type and scrubbed message, the trace only
with ``--debug`` or ``PKGREPO_DEBUG=1``, and never a secret value."""

from __future__ import annotations

import click
import pytest

from reconciler.cli import EXIT_CRASH, main
from reconciler.commands import schema
from reconciler.terminal import output

PLANTED = "crash-planted-S3cr3t"
URL_SECRET = "urlpass-9f8e7d"


@pytest.fixture
def crashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``pkgrepo schema`` raises a RuntimeError quoting a known secret and a URL credential."""
    output.register_secrets([PLANTED])

    def boom() -> int:
        raise RuntimeError(f"boom {PLANTED} at https://alice:{URL_SECRET}@index.example.com/x")

    monkeypatch.setattr(schema.command, "callback", boom)


def _text(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    return out + err


@pytest.mark.usefixtures("crashing")
def test_crash_exits_3_with_type_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == EXIT_CRASH == 3
    text = _text(capsys)
    assert "unexpected error (RuntimeError): boom" in text
    assert "index.example.com" in text
    assert "rerun with --debug" in text
    assert "Traceback" not in text
    assert PLANTED not in text and URL_SECRET not in text


@pytest.mark.usefixtures("crashing")
@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_scrubbed_trace(
    how: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["schema"]
    if how == "flag":
        args = ["--debug", "schema"]
    else:
        monkeypatch.setenv("PKGREPO_DEBUG", "1")
    assert main(args) == 3
    text = _text(capsys)
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError" in text
    assert "rerun with --debug" not in text
    assert PLANTED not in text and URL_SECRET not in text


def test_user_errors_still_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "does-not-exist.yaml"]) == 1
    assert "unexpected error" not in _text(capsys)


def test_help_names_exit_code_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "3 unexpected error" in click.unstyle(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("https://u:p@ss@host/x", "p@ss"),
        ("alice:pw123456@host.example.com", "pw123456"),
        ("password=hunter2 and more", "hunter2"),
        ("{'token': 'ghp_abcdef123'}", "ghp_abcdef123"),
        ("Authorization: Bearer eyJhbGciOi.abc", "eyJhbGciOi"),
        ("token dapi0123456789abcdef here", "dapi0123456789abcdef"),
        ("https://h.example.com/simple?access_token=zz99", "zz99"),
    ],
)
def test_credential_shapes_are_masked(text: str, hidden: str) -> None:
    from reconciler.core.redact import mask_credentials

    assert hidden not in mask_credentials(text)


def test_masking_is_linear_on_hostile_text() -> None:
    """Bounded patterns: a long message cannot stall the error path (no timing assertion:
    a quadratic pattern on these inputs would not finish within the test's timeout)."""
    from reconciler.core.redact import mask_credentials

    for text in ("a-" * 200_000, "https://" + "a" * 400_000, "x:" * 200_000):
        assert mask_credentials(text)


def test_full_disk_is_the_machines_problem(capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    from reconciler.commands import schema as schema_module

    def full() -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    original = schema_module.command.callback
    schema_module.command.callback = full
    try:
        assert main(["schema"]) == 1
    finally:
        schema_module.command.callback = original
    text = _text(capsys)
    assert "No space left on device" in text and "bug" not in text


@pytest.mark.parametrize("value", ["2", "maybe", ""])
def test_any_debug_value_is_no_usage_error(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PKGREPO_DEBUG", value)
    assert main(["schema"]) == 0


@pytest.mark.usefixtures("crashing")
@pytest.mark.parametrize("value", ["t", "y", "TRUE", "on"])
def test_usual_yes_values_turn_on_the_trace(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PKGREPO_DEBUG", value)
    assert main(["schema"]) == 3
    assert "Traceback" in _text(capsys)
