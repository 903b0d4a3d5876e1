"""Self-signed certificates made on the fly, so tests never depend on a file that expires,
and can pin exact expiry dates for the cert-* policy checks."""

from __future__ import annotations

import datetime as dt
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@cache
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_pem(
    common_name: str, not_after: dt.datetime, not_before: dt.datetime | None = None
) -> str:
    """A self-signed CA certificate expiring at ``not_after`` (valid for the ten years
    before it unless ``not_before`` is given)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or not_after - dt.timedelta(days=3650))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(_key(), hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_cert(
    common_name: str = "Corp Root CA", *, days: int = 3650, not_before_days: int = -1
) -> str:
    """A PEM certificate valid from ``not_before_days`` to ``days`` from now."""
    now = dt.datetime.now(dt.UTC)
    return make_pem(
        common_name, now + dt.timedelta(days=days), now + dt.timedelta(days=not_before_days)
    )


def private_key_pem() -> str:
    """The key behind these certificates: a PEM file that is not a certificate."""
    return (
        _key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
