"""Signers' private keys, never stored in clear: PKCS#8 encrypted with the signer's password.

Unlocking needs the password again, which is what makes signing a deliberate act.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class WrongKeyPassword(ValueError):
    """The password does not open the key."""


@dataclass(frozen=True)
class ImportedIdentity:
    locked_key: bytes
    certificate: x509.Certificate
    chain: list[x509.Certificate]


def new_signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def lock_key(key: PrivateKey, password: str) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode("utf-8")),
    )


def unlock_key(locked: bytes, password: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(locked, password.encode("utf-8"))
    except (ValueError, TypeError) as exc:
        raise WrongKeyPassword("the password does not open this signing key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise WrongKeyPassword("unsupported key type")
    return key


def relock_key(locked: bytes, old_password: str, new_password: str) -> bytes:
    return lock_key(unlock_key(locked, old_password), new_password)


def _can_sign(certificate: x509.Certificate) -> bool:
    """Document signatures need nonRepudiation (contentCommitment): PDF validators insist."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return usage.content_commitment


def import_pkcs12(data: bytes, p12_password: str, new_password: str) -> ImportedIdentity:
    """A key and certificate from an external CA, relocked with the teleread password."""
    try:
        key, certificate, extra = pkcs12.load_key_and_certificates(
            data, p12_password.encode("utf-8") if p12_password else None
        )
    except (ValueError, TypeError) as exc:
        raise ValueError("not a PKCS#12 file, or the PKCS#12 password is wrong") from exc
    if key is None or certificate is None:
        raise ValueError("the PKCS#12 file holds no key with its certificate")
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("only ECDSA and RSA keys can sign reports")
    if certificate.not_valid_after_utc <= datetime.now(UTC):
        raise ValueError("the certificate has expired")
    if not _can_sign(certificate):
        raise ValueError(
            "the certificate is not for signing documents (key usage nonRepudiation missing)"
        )
    return ImportedIdentity(lock_key(key, new_password), certificate, list(extra or []))
