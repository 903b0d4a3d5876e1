"""What the output scrubber takes from a certificate bundle: a certificate is public, so a
large bundle read back from a workspace does not slow every later line of output; a private
key pasted into the same value stays secret."""

from __future__ import annotations

import trustme

from reconciler.core.redact import MASK, Scrubber


def test_a_bundle_read_back_registers_its_private_key_not_its_certificates() -> None:
    ca = trustme.CA()
    cert = ca.cert_pem.bytes().decode()
    key = ca.private_key_pem.bytes().decode()
    scrubber = Scrubber([cert * 50 + key])
    key_line = next(line for line in key.splitlines() if len(line) > 40)
    cert_line = next(line for line in cert.splitlines() if len(line) > 40)
    assert scrubber.scrub(f"leak: {key_line}") == f"leak: {MASK}"
    assert scrubber.scrub(cert_line) == cert_line  # public: shown as the plan shows it
    assert scrubber.scrub("a line of output") == "a line of output"


def test_a_huge_value_registers_a_bounded_number_of_pieces() -> None:
    scrubber = Scrubber(["\n".join(f"token-line-{i:06d}-abcdefgh" for i in range(5_000))])
    assert scrubber.scrub("token-line-000001-abcdefgh") == MASK  # one of the first
    assert len(scrubber._forms) < 2_000
