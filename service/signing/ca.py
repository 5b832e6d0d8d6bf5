"""The consortium CA: created on first start, it issues each signer's certificate and the CRL, and
runs the consortium's timestamp authority (TSA) when no outside one is configured.

Its key lives encrypted under DATA_DIR/pki/ (PKCS#8, ``BestAvailableEncryption``). The passphrase
comes from TELEREAD_CA_PASSPHRASE when set (keep it in a secret store, off the data disk), else a
random one is generated beside the key with mode 0600 — better than a clear key, weaker than a
passphrase held elsewhere (docs/signatures.md). The TSA's key lives beside it, locked the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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
TSA_CERT = "tsa.pem"
TSA_KEY = "tsa-key.pem"


@dataclass(frozen=True)
class TimestampIdentity:
    """The consortium TSA's key and certificate (timeStamping EKU), with the CA above it."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


@contextlib.contextmanager
def _held(directory: Path) -> Iterator[None]:
    """An exclusive lock on the CA's directory while it is read or made: replicas (or web
    processes) starting for the first time on one shared folder would otherwise each make a
    CA, and could even leave one's key beside another's certificate. ``flock`` holds across
    processes and containers of one host; released when the file closes, or the process dies."""
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _passphrase(directory: Path, given: bytes | None) -> bytes:
    if given:
        return given
    path = directory / CA_PASSPHRASE
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32).encode("ascii"))
    return path.read_bytes().strip()


def _load_or_create_key(path: Path, secret: bytes) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), secret)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(secret),
    )
    _write_private(path, encrypted)
    return key


def _crl_points(url: str) -> x509.CRLDistributionPoints:
    point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return x509.CRLDistributionPoints([point])


def _crl_url_of(certificate: x509.Certificate) -> str | None:
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return None
    names = [name for point in points for name in point.full_name or ()]
    return names[0].value if names else None


class ConsortiumCA:
    """The CA's certificate and (unlocked, in memory only) key, and its TSA's key."""

    def __init__(
        self,
        certificate: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        tsa_key: ec.EllipticCurvePrivateKey | None = None,
        directory: Path | None = None,
    ) -> None:
        self.certificate = certificate
        self._key = key
        self._tsa_key = tsa_key or ec.generate_private_key(ec.SECP256R1())
        self._directory = directory
        self._tsa: dict[str | None, TimestampIdentity] = {}

    @classmethod
    def load_or_create(
        cls, directory: Path, name: str, passphrase: bytes | None = None
    ) -> ConsortiumCA:
        """Load the CA from ``directory``, creating it (key, self-signed cert) the first time."""
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        with _held(directory):
            return cls._load_or_create(directory, name, passphrase)

    @classmethod
    def _load_or_create(cls, directory: Path, name: str, passphrase: bytes | None) -> ConsortiumCA:
        secret = _passphrase(directory, passphrase)
        cert_path, key_path = directory / CA_CERT, directory / CA_KEY
        if cert_path.exists() and key_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), secret)
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            tsa_key = _load_or_create_key(directory / TSA_KEY, secret)
            return cls(certificate, key, tsa_key, directory)
        key = ec.generate_private_key(ec.SECP384R1())
        certificate = _self_signed(key, name)
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(secret),
        )
        _write_private(key_path, encrypted)
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(certificate, key, _load_or_create_key(directory / TSA_KEY, secret), directory)

    def timestamp_authority(self, crl_url: str | None, *, now: datetime) -> TimestampIdentity:
        """The TSA's certificate naming ``crl_url`` (where verifiers fetch its revocation status:
        validating a timestamp years later needs it), issued on first use for each address and
        kept as DATA_DIR/pki/tsa.pem, so restarts reuse it."""
        if crl_url in self._tsa:
            return self._tsa[crl_url]
        path = self._directory / TSA_CERT if self._directory else None
        certificate = None
        if path is not None and path.exists():
            stored = x509.load_pem_x509_certificate(path.read_bytes())
            if _crl_url_of(stored) == crl_url and stored.not_valid_after_utc > now:
                certificate = stored
        if certificate is None:
            certificate = self._issue_tsa(crl_url, now)
            if path is not None:
                # a name of its own: web processes may issue at the same moment
                partial = path.with_name(f".{TSA_CERT}.{os.getpid()}.{secrets.token_hex(4)}")
                partial.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
                partial.replace(path)
        identity = TimestampIdentity(self._tsa_key, certificate, (self.certificate,))
        self._tsa[crl_url] = identity
        return identity

    def _issue_tsa(self, crl_url: str | None, now: datetime) -> x509.Certificate:
        """RFC 3161 2.3: the TSA's certificate has the one critical extended key usage
        timeStamping; it lasts as long as the CA, so old timestamps stay checkable."""
        public_key = self._tsa_key.public_key()
        name = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = f"{name[0].value if name else 'teleread'} timestamping"[:64]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(self.certificate.not_valid_after_utc)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(signing=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_id(), critical=False)
        )
        if crl_url:
            builder = builder.add_extension(_crl_points(crl_url), critical=False)
        return builder.sign(self._key, hashes.SHA256())

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
            builder = builder.add_extension(_crl_points(crl_url), critical=False)
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
