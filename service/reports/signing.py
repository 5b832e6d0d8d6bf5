"""Signing a report: a deliberate act with the password re-entered, producing an immutable version.

The draft is read, the key unlocked, the canonical form signed and the PDF rendered and signed
(PAdES B-LTA: timestamped by ``TELEREAD_TSA_URL`` or the consortium's own timestamp authority,
with the CA's CRL in the document; all CPU work in a thread), then one transaction checks the
draft did not change meanwhile and appends the version, the ``signed`` and portal ``delivered``
events, the status change, the deliveries still to do (with the HL7 result for a facility that
has an HIS endpoint) and, for a critical finding, the clinic's notification.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from ..auth.access import consultation_scope
from ..auth.identities import UnlockedIdentity, trust_store, unlocked_identity
from ..auth.password_check import check_password
from ..auth.sessions import CurrentUser
from ..clock import to_iso
from ..runtime.orthanc.client import OrthancClient
from ..signing import ConsortiumCA, LongTerm, TrustStore, sign_detached, sign_pdf, timestamper_for
from ..storage import Conflict, Database, hl7_outbox
from ..storage import consultations as consultation_store
from ..storage import reports as store
from ..worklist.effects import Effects
from ..worklist.live import WorklistChange
from ..worklist.notifications import Notice, notice_facts
from .authoring import check_may_write
from .canonical import canonical_bytes
from .document import ReportDocument
from .documents_data import document_for
from .key_images import KeyFigure, figures_to_sign, save_signed_figures
from .pdf import render_report_pdf
from .public_address import check_printable

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off paper


def new_verification_code() -> str:
    """20 symbols of a 32-letter alphabet: 100 bits, unguessable, typed from paper in groups."""
    symbols = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(20))
    return "-".join(symbols[i : i + 5] for i in range(0, 20, 5))


@dataclass(frozen=True)
class SignedReport:
    """What the route answers, and what signing sets in motion once committed: the worklists
    hear ``signed``, delivery starts, and a critical finding is notified to the clinic."""

    consultation: dict[str, Any]
    report_id: int
    version_id: int
    version: int
    verification_code: str
    signed_at: str
    effects: Effects
    awaiting_review: bool = False
    """Signed for review (issue 19): nothing is issued until a reviewer decides."""
    preliminary: bool = False
    """``version`` was released to the clinic as preliminary, before review."""


@dataclass(frozen=True)
class _Prepared:
    consultation: dict[str, Any]
    report: dict[str, Any]
    document: ReportDocument
    key_figures: tuple[KeyFigure, ...] = ()


def _prepare(
    db: sqlite_utils.Database,
    consultation_id: int,
    user: CurrentUser,
    identity_serial: str,
    now: datetime,
    public_url: str,
    key_figures: tuple[KeyFigure, ...] = (),
) -> _Prepared:
    row = consultation_store.get_consultation(db, consultation_scope(user), consultation_id)
    report = check_may_write(db, row, user, now)
    if report is None or not (report["findings"].strip() or report["impression"].strip()):
        raise Conflict("empty_report", "write the findings or the impression before signing")
    version = report["signed_versions"] + 1
    values = {
        "version": version,
        "supersedes_version": version - 1 if version > 1 else None,
        "findings": report["findings"],
        "impression": report["impression"],
        "recommendation": report["recommendation"],
        "critical": report["critical"],
        "refer": report["refer"],
        "quality": report["quality"],
        "quality_reason": report["quality_reason"],
        "signer_name": user.display_name or user.username,
        "certificate_serial": identity_serial,
        "signed_at": to_iso(now.replace(microsecond=0)),
        "verification_code": new_verification_code(),
    }
    figures = tuple(f.figure for f in key_figures)
    document = document_for(db, report["id"], row, values, user.id, public_url, figures)
    return _Prepared(row, report, document, key_figures)


@dataclass(frozen=True)
class _Evidence:
    """What makes the PDF signature long-term valid: the timestamp authority (an outside one,
    or the CA's own certifying ``crl_url``) and the trust store whose CRL goes into the PDF."""

    ca: ConsortiumCA
    tsa_url: str | None
    crl_url: str
    trust: TrustStore
    now: datetime

    def long_term(self) -> LongTerm:
        timestamper = timestamper_for(self.tsa_url, self.ca, self.crl_url, now=self.now)
        return LongTerm(timestamper, self.trust, online=bool(self.tsa_url))


def _signed_bytes(
    document: ReportDocument,
    identity: UnlockedIdentity,
    evidence: _Evidence,
    *,
    review_field: bool = False,
) -> tuple[bytes, ...]:
    """The canonical form, its detached signature and the signed PDF; ``review_field``: the
    PDF keeps a signature field for the reviewer's co-signature (cosign.py)."""
    canonical = canonical_bytes(document)
    long_term = evidence.long_term()
    signature = sign_detached(
        canonical,
        identity.key,
        identity.certificate,
        identity.chain,
        timestamper=long_term.timestamper,
    )
    pdf = sign_pdf(
        render_report_pdf(document, review_field=review_field),
        identity.key,
        identity.certificate,
        identity.chain,
        reason=f"Imaging report {document.verification_code}",
        location=document.centre_name,
        signer_name=document.signer_name,
        long_term=long_term,
    )
    return canonical, signature, pdf


@dataclass(frozen=True)
class Ready:
    """A draft about to be signed: the document built, the signer's key unlocked, the
    long-term evidence at hand. The password was checked to get here."""

    prepared: _Prepared
    identity: UnlockedIdentity
    evidence: _Evidence


async def unlock_and_prepare(
    database: Database,
    ca: ConsortiumCA,
    user: CurrentUser,
    consultation_id: int,
    password: str,
    *,
    now: datetime,
    public_url: str,
    client_ip: str | None = None,
    tsa_url: str | None = None,
    loopback_allowed: bool = True,
    orthanc: OrthancClient | None = None,
) -> Ready:
    """Everything before the signatures: the deliberate act (password), the key, the document
    (with ``orthanc``, the draft's key images rendered into its figures)."""
    check_printable(public_url, loopback_allowed=loopback_allowed)
    # Re-entering the password is the deliberate act; wrong guesses count like failed logins.
    await check_password(database, user.username, password, client_ip, now)
    crl_url = f"{public_url.rstrip('/')}/api/ca/crl"
    identity = await unlocked_identity(database, ca, user, password, now, crl_url)
    key_figures = await figures_to_sign(database, orthanc, consultation_id, user, now)
    prepared = await database.read(
        _prepare, consultation_id, user, identity.serial_hex, now, public_url, key_figures
    )
    trust = await database.read(trust_store, ca, now)
    return Ready(prepared, identity, _Evidence(ca, tsa_url, crl_url, trust, now))


async def sign_ready(
    database: Database, ready: Ready, user: CurrentUser, now: datetime
) -> SignedReport:
    """Sign and issue the prepared draft (the CPU work on a thread, then one write)."""
    canonical, signature, pdf = await asyncio.to_thread(
        _signed_bytes, ready.prepared.document, ready.identity, ready.evidence
    )
    return await database.write(
        _record, ready.prepared, user, canonical, signature, pdf, ready.identity.serial_hex, now
    )


async def sign_report(
    database: Database,
    ca: ConsortiumCA,
    user: CurrentUser,
    consultation_id: int,
    password: str,
    *,
    now: datetime,
    public_url: str,
    client_ip: str | None = None,
    tsa_url: str | None = None,
    loopback_allowed: bool = True,
    orthanc: OrthancClient | None = None,
) -> SignedReport:
    """Sign the caller's draft as the next version (``draft_changed`` if it moved meanwhile).

    Every CPU step (password check, key unlock, signatures, PDF) runs on a thread before the one
    write, which holds the transaction only to check and record.

    ``public_url`` goes into the certificate (CRL address) and the QR code: a loopback one is
    refused (``public_url_required``) unless ``loopback_allowed``. With ``orthanc`` the draft's key
    images are rendered into the version's figures (key_images.py). A report that may need review
    (issue 19) is signed through ``review_submission.sign_for_issue_or_review`` instead."""
    ready = await unlock_and_prepare(
        database,
        ca,
        user,
        consultation_id,
        password,
        now=now,
        public_url=public_url,
        client_ip=client_ip,
        tsa_url=tsa_url,
        loopback_allowed=loopback_allowed,
        orthanc=orthanc,
    )
    return await sign_ready(database, ready, user, now)


def _record(
    db: sqlite_utils.Database,
    prepared: _Prepared,
    user: CurrentUser,
    canonical: bytes,
    signature: bytes,
    pdf: bytes,
    serial: str,
    now: datetime,
) -> SignedReport:
    report, document = prepared.report, prepared.document
    current = store.report_for(db, report["consultation_id"])
    if current is None or current["updated_at"] != report["updated_at"]:
        raise Conflict("draft_changed", "the draft changed while signing: review and sign again")
    stamp = to_iso(document.signed_at)
    version_id = issue_version(
        db,
        report["consultation_id"],
        {
            "report_id": report["id"],
            "version": document.version,
            "supersedes_version": document.supersedes_version,
            **{k: report[k] for k in store.VERSION_TEXT_FIELDS},
            "signer_id": user.id,
            "signer_name": document.signer_name,
            "certificate_serial": serial,
            "signed_at": stamp,
            "verification_code": document.verification_code,
            "verification_url": document.verification_url,
            "canonical": canonical,
            "signature": signature,
            "pdf": pdf,
        },
        (signed_event(report, document, user.id),),
        stamp,
        now,
    )
    save_signed_figures(db, version_id, prepared.key_figures)
    release_claim(db, report["consultation_id"], "signed", stamp)
    notices = (_critical_notice(db, prepared, stamp),) if report["critical"] else ()
    return issued_report(prepared, version_id, stamp, notices)


def issue_version(
    db: sqlite_utils.Database,
    consultation_id: int,
    values: dict[str, Any],
    events: tuple[tuple[str, int | None, dict[str, Any]], ...],
    stamp: str,
    now: datetime,
) -> int:
    """Issue a signed version the one way every signed version is issued (signed directly,
    released as preliminary, or co-signed after review), in the caller's transaction: the
    version's row, the caller's timeline events (type, actor, detail) then "delivered" to the
    clinic's portal, the copy for Orthanc queued, and the ORU^R01 to the facility's HIS queued,
    so that no signed version is ever issued without them."""
    version_id = store.insert_version(db, values)
    for event_type, actor, detail in events:
        consultation_store.append_event(db, consultation_id, event_type, stamp, actor, detail)
    consultation_store.append_event(
        db,
        consultation_id,
        "delivered",
        stamp,
        None,
        {"channel": "portal", "report_id": values["report_id"], "version": values["version"]},
    )
    store.create_delivery(db, version_id, "orthanc", to_iso(now))
    hl7_outbox.enqueue_result(db, consultation_id, version_id, values["version"], to_iso(now))
    return version_id


def signed_event(
    report: dict[str, Any], document: ReportDocument, actor: int | None
) -> tuple[str, int | None, dict[str, Any]]:
    """The timeline's "signed" event of a final version."""
    detail = {
        "report_id": report["id"],
        "version": document.version,
        "critical": bool(document.critical),
        "refer": bool(document.refer),
        "quality": document.quality,
        "quality_reason": document.quality_reason,
    }
    return ("signed", actor, detail)


def release_claim(db: sqlite_utils.Database, consultation_id: int, status: str, stamp: str) -> None:
    """The consultation leaves its reader's hands with its new status."""
    consultation_store.update_consultation(
        db,
        consultation_id,
        {
            "status": status,
            "claimed_by": None,
            "claimed_at": None,
            "claim_expires_at": None,
            "updated_at": stamp,
        },
    )


def issued_report(
    prepared: _Prepared, version_id: int, stamp: str, notices: tuple[Notice, ...]
) -> SignedReport:
    """What signing answers for a version just issued (signed, or co-signed after review): the
    worklists told it is signed, the clinic's notices, the delivery kicked."""
    document = prepared.document
    effects = Effects(
        changes=(WorklistChange.of(prepared.consultation, "signed"),),
        notices=notices,
        deliver=True,
    )
    return SignedReport(
        prepared.consultation,
        prepared.report["id"],
        version_id,
        document.version,
        document.verification_code,
        stamp,
        effects,
    )


def clinic_notice(
    db: sqlite_utils.Database,
    prepared: _Prepared,
    stamp: str,
    event: str,
    detail: dict[str, Any],
    **notice: Any,
) -> Notice:
    """Tell the originating clinic's clinicians and the requester about this version, and say so
    in the timeline (``event``, with the recipients and ``detail``); ``notice`` names the kind,
    title, body, message and params."""
    row = prepared.consultation
    recipients = store.clinic_recipients(db, row["facility_id"], row["requested_by"])
    consultation_store.append_event(
        db, row["id"], event, stamp, None, {"user_ids": recipients, **detail}
    )
    return Notice(
        user_ids=tuple(recipients),
        consultation_id=row["id"],
        facts=notice_facts(row, report_version=prepared.document.version),
        **notice,
    )


def _critical_notice(db: sqlite_utils.Database, prepared: _Prepared, stamp: str) -> Notice:
    """Tell the clinic at once that the report has a critical finding, in the timeline too."""
    version = prepared.document.version
    return clinic_notice(
        db,
        prepared,
        stamp,
        "critical_notified",
        {"version": version},
        kind="critical_finding",
        title=f"CRITICAL finding: report for consultation #{prepared.consultation['id']}",
        body="A critical finding was reported. Open and acknowledge the report now.",
        message="critical_finding",
        params={"version": version},
    )
