"""Every warning reaches the user in one format, whether a command wrote it or the engine
logged it, and through the same secret scrubber."""

from __future__ import annotations

import logging

import pytest

from reconciler.terminal import output


def test_logged_and_written_warnings_read_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    output.configure_logging(debug=False)
    output.register_secrets(["planted-channel-token-1234"])
    logging.getLogger("pkgrepo.lock").warning("lock: held by planted-channel-token-1234")
    output.warning("plan: held by planted-channel-token-1234")
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: lock: held by ****", "warning: plan: held by ****"]


def test_debug_lines_name_where_they_come_from(capsys: pytest.CaptureFixture[str]) -> None:
    output.configure_logging(debug=True)
    try:
        logging.getLogger("pkgrepo.fleet").debug("planning ws1")
        assert capsys.readouterr().err == "debug pkgrepo.fleet: planning ws1\n"
    finally:
        output.configure_logging(debug=False)
