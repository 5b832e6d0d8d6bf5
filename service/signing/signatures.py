"""Signing and verifying with pyHanko: PAdES signatures in PDFs, detached CMS over other bytes.

With a timestamp authority and the trust store at hand, a PDF signature is PAdES B-LTA: the
signature is timestamped (B-T), the CA certificates and CRLs that prove the chain valid at that
moment go into the document security store (DSS, B-LT), and a document timestamp seals it all
(B-LTA). Verifiers then need neither the network nor a still-valid signer certificate.

pyHanko's API is asynchronous; these functions are synchronous (the service calls them in a
worker thread, as CPU work) and run pyHanko's coroutines on a private event loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import certifi
from asn1crypto import cms, pem
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.signers.constants import ESIC_EXTENSION_1
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation import async_validate_detached_cms, async_validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from .keys import PrivateKey
from .trust import TrustStore, Verification, invalid, to_asn1, verdict

T = TypeVar("T")


class _KnownOffline(logging.Filter):
    """pyHanko warns on every B-LT signature that it may not fetch revocation data: by design,
    the consortium's CRL is handed to it (an outside TSA's is fetched: ``LongTerm.online``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_KnownOffline())


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a pyHanko coroutine to completion from synchronous code, even inside a loop thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def simple_signer(
    key: PrivateKey, certificate: x509.Certificate, chain: Sequence[x509.Certificate]
) -> signers.SimpleSigner:
    der_key = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return signers.SimpleSigner(
        signing_cert=to_asn1(certificate),
        signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
        cert_registry=SimpleCertificateStore.from_certs([to_asn1(c) for c in chain]),
    )


class _Pdf17Signer(signers.PdfSigner):
    """PAdES kept in PDF 1.7 with the ESIC extension, as PDF/A-2 needs: for an ECDSA key pyHanko
    would declare the whole document PDF 2.0 (ISO 32002), which PDF/A-2 validators refuse."""

    def register_extensions(self, pdf_out: BasePdfFileWriter, *, md_algorithm: str) -> None:
        pdf_out.ensure_output_version(version=(1, 7))
        pdf_out.register_extension(ESIC_EXTENSION_1)


#: An appearance page is drawn at its own size, from the field's corner (pyHanko would centre
#: it inside a 5 pt margin, shrunk to fit).
_AS_IS = layout.SimpleBoxLayoutRule(
    x_align=layout.AxisAlignment.ALIGN_MIN,
    y_align=layout.AxisAlignment.ALIGN_MIN,
    margins=layout.Margins(),
)


@dataclass(frozen=True)
class Appearance:
    """A visible signature: ``pdf``'s first page drawn as the field's appearance (made to the
    field's size, so nothing is scaled). ``field`` names the field to fill; a field of that name
    not in the document is made on page ``page`` (0-based, -1 the last) at ``box``."""

    field: str
    pdf: bytes
    page: int = -1
    box: tuple[float, float, float, float] | None = None


def sign_pdf(
    pdf: bytes,
    key: PrivateKey,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    *,
    reason: str,
    location: str,
    signer_name: str,
    long_term: LongTerm | None = None,
    appearance: Appearance | None = None,
    field_name: str = "TelereadSignature",
) -> bytes:
    """Add a PAdES signature to ``pdf`` as incremental updates: B-B alone, B-LTA with
    ``long_term``. Invisible in a new field named ``field_name``, or with ``appearance``
    visible in the field it names (a later signature filling a field reserved before the
    first: an update the earlier signatures' diff analysis allows)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    meta = signers.PdfSignatureMetadata(
        field_name=appearance.field if appearance else field_name,
        reason=reason,
        location=location,
        name=signer_name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        embed_validation_info=long_term is not None,
        use_pades_lta=long_term is not None,
        validation_context=long_term.validation_context() if long_term else None,
    )
    with tempfile.TemporaryDirectory() as directory:
        extra: dict[str, Any] = {}
        if appearance is not None:
            # pyHanko imports the appearance page from a file, while it signs
            stamp = Path(directory) / "appearance.pdf"
            stamp.write_bytes(appearance.pdf)
            extra["stamp_style"] = StaticStampStyle.from_pdf_file(
                str(stamp), border_width=0, background_opacity=1.0, background_layout=_AS_IS
            )
            if appearance.box is not None:
                page = appearance.page
                if page < 0:
                    page += int(writer.root["/Pages"]["/Count"])
                extra["new_field_spec"] = fields.SigFieldSpec(
                    appearance.field, on_page=page, box=appearance.box
                )
        pdf_signer = _Pdf17Signer(
            meta,
            signer=simple_signer(key, certificate, chain),
            timestamper=long_term.timestamper if long_term else None,
            **extra,
        )
        output = _run(pdf_signer.async_sign_pdf(writer, output=io.BytesIO()))
    return output.getvalue()


@dataclass(frozen=True)
class LongTerm:
    """What a B-LTA signature needs besides the signer: a timestamp authority, and the trust
    roots and current CRLs whose evidence goes into the DSS. ``online``: also fetch what is
    not at hand (an outside TSA's own revocation status); never needed for the consortium's."""

    timestamper: TimeStamper
    trust: TrustStore
    online: bool = False

    def validation_context(self) -> ValidationContext:
        roots = [to_asn1(c) for c in self.trust.roots]
        crls = [crl.public_bytes(serialization.Encoding.DER) for crl in self.trust.crls]
        if self.online:  # an outside TSA chains to a public root: Mozilla's (certifi) too
            return ValidationContext(
                trust_roots=[*roots, *public_roots()],
                crls=crls,
                allow_fetching=True,
                revocation_mode="soft-fail",
            )
        # soft-fail: an imported signer's outside CA publishes a CRL we do not hold offline;
        # what we hold (the consortium's) still goes into the DSS
        return ValidationContext(
            trust_roots=roots, crls=crls, allow_fetching=False, revocation_mode="soft-fail"
        )


@cache
def public_roots() -> tuple[asn1_x509.Certificate, ...]:
    """The Mozilla root programme's CAs as certifi ships them (a dependency of pyHanko's)."""
    bundle = Path(certifi.where()).read_bytes()
    return tuple(asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(bundle, True))


def verify_pdf(pdf: bytes, trust: TrustStore, *, at: datetime | None = None) -> Verification:
    """Every signature of the PDF, in order: each intact and chained to a trusted CA, the last
    covering the whole file, and an earlier one seeing after it only later signatures (a
    reviewer's co-signature fills a signature field: pyHanko's "form filling" level). The
    verdict names the first signer (the report's writer); later ones are its ``co_signers``."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = reader.embedded_regular_signatures  # not the document timestamps
    except (PdfReadError, ValueError, KeyError, IndexError) as exc:
        return invalid(f"the PDF cannot be read: {exc}")
    if not embedded:
        return invalid("the PDF carries no signature")
    last = len(embedded) - 1
    verdicts = [
        _verify_embedded(signature, trust, at, later_signatures_allowed=index < last)
        for index, signature in enumerate(embedded)
    ]
    first, later = verdicts[0], verdicts[1:]
    if not later:
        return first
    reasons = list(first.reasons)
    for verdict_ in later:
        reasons += [f"co-signature of {verdict_.signer}: {reason}" for reason in verdict_.reasons]
    return replace(
        first,
        valid=all(v.valid for v in verdicts),
        intact=all(v.intact for v in verdicts),
        trusted=all(v.trusted for v in verdicts),
        revoked=any(v.revoked for v in verdicts),
        reasons=tuple(reasons),
        co_signers=tuple(later),
    )


def _verify_embedded(
    signature: Any, trust: TrustStore, at: datetime | None, *, later_signatures_allowed: bool
) -> Verification:
    """One embedded signature's verdict. What may follow it: the DSS and document timestamps
    (B-LT/B-LTA) always, and another signature filling its field when one is to follow."""

    def validate(moment: datetime | None):
        context = trust.validation_context(moment)
        return _run(async_validate_pdf_signature(signature, context, skip_diff=False))

    try:
        status = _as_of_timestamp(validate, at)
    except (SignatureValidationError, PdfReadError, ValueError) as exc:
        return invalid(f"the signature cannot be checked: {exc}")
    allowed = ModificationLevel.LTA_UPDATES
    if later_signatures_allowed:
        allowed = ModificationLevel.FORM_FILLING
    covers_all = status.coverage is not None and (
        status.coverage.name == "ENTIRE_FILE"
        or (
            status.coverage.name == "ENTIRE_REVISION"
            and status.modification_level is not None
            and status.modification_level <= allowed
        )
    )
    result = verdict(status, intact_ok=covers_all)
    if not covers_all and status.intact:
        extra = "content was added to the PDF after it was signed"
        result = replace(result, reasons=(*result.reasons, extra))
    return result


def _as_of_timestamp(validate: Callable[[datetime | None], Any], at: datetime | None) -> Any:
    """The status at ``at``; but a signature whose certificate is no longer valid there (it
    expired) while its signature timestamp is sound is judged as of the timestamp: that it
    existed then is what the timestamp proves (PAdES B-T). A revoked certificate stays revoked."""
    status = validate(at)
    stamp = status.timestamp_validity
    if status.trusted or status.revoked or not (status.intact and status.valid) or stamp is None:
        return status
    if not (stamp.intact and stamp.valid and stamp.trusted):
        return status
    return validate(stamp.timestamp)


def sign_detached(
    payload: bytes,
    key: PrivateKey,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    *,
    timestamper: TimeStamper | None = None,
) -> bytes:
    """A detached CMS SignedData (DER) over ``payload``, with the signing time attribute, and
    with ``timestamper`` a signature timestamp (CAdES-T) that keeps it verifiable after the
    certificate expires."""
    signer = simple_signer(key, certificate, chain)
    content_info = _run(
        signer.async_sign_general_data(payload, "sha256", detached=True, timestamper=timestamper)
    )
    return content_info.dump()


def verify_detached(
    payload: bytes, signature: bytes, trust: TrustStore, *, at: datetime | None = None
) -> Verification:
    try:
        signed_data = cms.ContentInfo.load(signature)["content"]
        # Parse now, so that a damaged signature fails here: what validation reads, not the
        # whole tree (``.native`` of a CMS with a timestamp token inside took seconds).
        for part in ("digest_algorithms", "encap_content_info", "certificates"):
            signed_data[part].native  # noqa: B018
        signer_info = signed_data["signer_infos"][0]
        for part in ("sid", "digest_algorithm", "signed_attrs", "signature_algorithm", "signature"):
            signer_info[part].native  # noqa: B018
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return invalid(f"the signature cannot be read: {exc}")

    def validate(moment: datetime | None):
        context = trust.validation_context(moment)
        return _run(
            async_validate_detached_cms(payload, signed_data, signer_validation_context=context)
        )

    try:
        status = _as_of_timestamp(validate, at)
    except (SignatureValidationError, ValueError) as exc:
        return invalid(f"the signature cannot be checked: {exc}")
    return verdict(status)
