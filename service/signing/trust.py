"""What verification trusts, and the verdict it gives, independent of PDF or CMS details."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import ValidationContext


@dataclass(frozen=True)
class TrustStore:
    """The consortium CA and imported CAs (roots), with the CRLs known offline."""

    roots: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    def validation_context(self, at: datetime | None) -> ValidationContext:
        """pyHanko's context: no network fetching; a CRL saying "revoked" fails the chain."""
        return ValidationContext(
            trust_roots=[to_asn1(c) for c in self.roots],
            crls=[crl.public_bytes(serialization.Encoding.DER) for crl in self.crls],
            allow_fetching=False,
            revocation_mode="soft-fail",
            moment=at,
        )


@dataclass(frozen=True)
class Verification:
    valid: bool
    intact: bool
    trusted: bool
    revoked: bool
    signer: str | None
    signer_serial: int | None
    signed_at: datetime | None
    reasons: tuple[str, ...]
    # A report co-signed by its reviewer (issue 19) carries a second PAdES signature: the
    # verdict above is the whole document's, ``signer`` the first (the writer's), and here is
    # each later signature's own verdict, in order.
    co_signers: tuple[Verification, ...] = ()


def to_asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def invalid(reason: str) -> Verification:
    return Verification(False, False, False, False, None, None, None, (reason,))


def verdict(status, intact_ok: bool = True) -> Verification:
    """Turn a pyHanko signature status into a :class:`Verification` with readable reasons."""
    cert = status.signing_cert
    signer = cert.subject.native.get("common_name") if cert is not None else None
    revoked = bool(status.revoked)
    trusted = bool(status.trusted) and not revoked
    intact = bool(status.intact and status.valid) and intact_ok
    reasons: list[str] = []
    if not intact:
        reasons.append("the signature does not match the document: it was changed after signing")
    if revoked:
        details = status.revocation_details
        when = f" on {details.revocation_date:%Y-%m-%d}" if details else ""
        reasons.append(f"the signer's certificate was revoked{when}")
    elif not status.trusted and intact:  # an altered document is not evaluated for trust
        reasons.append("the signer's certificate is not issued by a trusted CA (or has expired)")
    signed_at = getattr(status, "signer_reported_dt", None)
    return Verification(
        valid=intact and trusted,
        intact=intact,
        trusted=trusted,
        revoked=revoked,
        signer=signer,
        signer_serial=cert.serial_number if cert is not None else None,
        signed_at=signed_at,
        reasons=tuple(reasons),
    )
