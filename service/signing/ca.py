"""The consortium CA: created on first start, it issues each signer's certificate and the CRL.

Its key lives encrypted under DATA_DIR/pki/ (PKCS#8, ``BestAvailableEncryption``). The passphrase
comes from TELEREAD_CA_PASSPHRASE when set (keep it in a secret store, off the data disk), else a
random one is generated beside the key with mode 0600 — better than a clear key, weaker than a
passphrase held elsewhere (docs/signatures.md).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.4.1.311.10.3.12")
"""Microsoft/Adobe "document signing" extended key usage: PDF readers recognise it."""

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
CA_PASSPHRASE = "ca-passphrase"
CA_YEARS = 20


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _passphrase(directory: Path, given: bytes | None) -> bytes:
    if given:
        return given
    path = directory / CA_PASSPHRASE
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32).encode("ascii"))
    return path.read_bytes().strip()


class ConsortiumCA:
    """The CA's certificate and (unlocked, in memory only) key."""

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.certificate = certificate
        self._key = key

    @classmethod
    def load_or_create(
        cls, directory: Path, name: str, passphrase: bytes | None = None
    ) -> ConsortiumCA:
        """Load the CA from ``directory``, creating it (key, self-signed cert) the first time."""
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        secret = _passphrase(directory, passphrase)
        cert_path, key_path = directory / CA_CERT, directory / CA_KEY
        if cert_path.exists() and key_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), secret)
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(certificate, key)
        key = ec.generate_private_key(ec.SECP384R1())
        certificate = _self_signed(key, name)
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(secret),
        )
        _write_private(key_path, encrypted)
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(certificate, key)

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        common_name: str,
        organisation: str,
        user_id: int,
        now: datetime,
        email: str | None = None,
        days: int = 825,
        crl_url: str | None = None,
    ) -> x509.Certificate:
        """An end-entity signing certificate (digitalSignature + nonRepudiation).

        ``crl_url`` is declared as the CRL distribution point: PDF readers fetch it, and
        verifiers (pyHanko's "check if declared" rule) check revocation because of it.
        """
        attributes = [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation or "teleread"),
            x509.NameAttribute(NameOID.USER_ID, str(user_id)),
        ]
        if email:
            attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(signing=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_id(), critical=False)
        )
        if crl_url:
            point = x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(crl_url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def crl(
        self,
        revoked: Iterable[tuple[int, datetime]],
        *,
        now: datetime,
        next_update_days: int = 7,
    ) -> x509.CertificateRevocationList:
        """The current CRL listing ``(serial, revoked_at)`` pairs, signed by the CA."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + timedelta(days=next_update_days))
            .add_extension(self._authority_key_id(), critical=False)
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        )
        for serial, at in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(min(at, now))
                .build()
            )
        return builder.sign(self._key, hashes.SHA256())

    def _authority_key_id(self) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key())


def _usage(signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=signing,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


def _self_signed(key: ec.EllipticCurvePrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now().astimezone()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
