"""Reading PEM certificate bundles (pure: parsing only, with ``cryptography``).

The ``pip-cert`` value is compared by the certificates it holds, not byte for byte, so a
trailing newline or CRLF line ends are not drift.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

_PEM_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)


def certificates_only(text: str) -> tuple[str, bool]:
    """The certificate blocks of ``text`` as one PEM bundle, and whether ``text`` held
    anything else (a private key, other PEM blocks, stray text). The bundle is empty when
    ``text`` holds no certificate; the other content is never returned."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = [
        f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
        for body in _PEM_BLOCK.findall(normalized)
    ]
    rest = _PEM_BLOCK.sub("", normalized).strip()
    return "".join(blocks), bool(rest)


class CertificateError(ValueError):
    """The text is not a bundle of valid X.509 PEM certificates."""


@dataclass(frozen=True)
class CertInfo:
    subject: str
    not_after: dt.datetime
    sha256: str
    """Upper-case hex, colon-separated, as browsers and ``openssl x509 -fingerprint`` show it."""

    @property
    def short_fingerprint(self) -> str:
        return self.sha256[:23]


def parse_bundle(text: str) -> tuple[CertInfo, ...]:
    """Every certificate in ``text``, in order. Raises ``CertificateError`` if there is none
    or one does not parse."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = _PEM_BLOCK.findall(normalized)
    if not blocks:
        raise CertificateError("no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")
    infos: list[CertInfo] = []
    for index, body in enumerate(blocks, start=1):
        pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
        try:
            cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise CertificateError(f"certificate {index} does not parse as X.509") from exc
        digest = cert.fingerprint(hashes.SHA256()).hex().upper()
        infos.append(
            CertInfo(
                subject=cert.subject.rfc4514_string() or "(empty subject)",
                not_after=cert.not_valid_after_utc,
                sha256=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
            )
        )
    return tuple(infos)


def fingerprints(text: str) -> tuple[str, ...] | None:
    """The SHA-256 fingerprints of a bundle, or ``None`` when it does not parse (then the
    caller falls back to comparing the text)."""
    try:
        return tuple(info.sha256 for info in parse_bundle(text))
    except CertificateError:
        return None
