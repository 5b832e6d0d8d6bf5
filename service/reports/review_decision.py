"""The reviewer's decision on a report awaiting review (审核, two-level sign-off, issue 19).

The reviewer holds the claim (same claim rules as reading) and re-enters the password, like the
writer did. Three decisions:

- **approve**: the writer's signed PDF gets a second PAdES signature, the reviewer's, added as
  an incremental update that covers the first; the reviewer also signs the canonical form with
  the reviewer's fields added. The writer's detached signature stays with the review.
- **edit**: the reviewer's text becomes the issued version, rendered anew and signed by the
  reviewer; the writer's signed text stays with the review, shown in the history.
- **return**: back to the writer with a comment; the writer edits and signs again.

Approving or editing issues the version exactly as a report signed alone is issued (portal,
Orthanc, HIS, critical-finding notice); when a preliminary had been released, the final
version supersedes it and the clinic is told.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from worklists.claims import lease_until
from worklists.review import ReviewPolicy

from ..auth.access import consultation_scope
from ..auth.identities import UnlockedIdentity, trust_store, unlocked_identity
from ..auth.password_check import check_password
from ..auth.sessions import CurrentUser
from ..clock import to_iso
from ..signing import ConsortiumCA, sign_detached, sign_pdf
from ..storage import Conflict, Database
from ..storage import consultations as consultation_store
from ..storage import key_images as figure_store
from ..storage import report_reviews as review_store
from ..storage import reports as store
from ..worklist.effects import Effects
from ..worklist.live import WorklistChange
from ..worklist.notifications import Notice
from ..worklist.review_claims import AWAITING_REVIEW, check_reviewer
from .authoring import NotAuthor, _claim_holder, validate_draft
from .canonical import canonical_bytes
from .cosign import cosign_pdf
from .documents_data import document_for
from .key_images import as_report_figures
from .pdf import render_report_pdf
from .public_address import check_printable
from .signing import (
    SignedReport,
    _critical_notice,
    _Evidence,
    _Prepared,
    clinic_notice,
    issue_version,
    issued_report,
    new_verification_code,
    release_claim,
    signed_event,
)

REVIEW_FIELD = "TelereadReview"
"""The PDF signature field of the reviewer's signature (the writer's is TelereadSignature)."""


@dataclass(frozen=True)
class _Decision:
    prepared: _Prepared
    review: dict[str, Any]
    edited: bool
    figures: tuple[dict[str, Any], ...] = ()
    """The key images the writer signed (digests under both signatures), issued with it."""


def _awaiting(
    db: sqlite_utils.Database,
    consultation_id: int,
    user: CurrentUser,
    now: datetime,
    policy: ReviewPolicy,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The consultation, report and awaiting review, if ``user`` may decide it now."""
    if user.role != "specialist":
        raise NotAuthor("not_reviewer", "only reading specialists review reports")
    row = consultation_store.get_consultation(db, consultation_scope(user), consultation_id)
    report = store.report_for(db, consultation_id)
    review = review_store.awaiting(db, report["id"]) if report else None
    if row["status"] != AWAITING_REVIEW or report is None or review is None:
        raise Conflict("not_awaiting_review", "this report does not await review")
    check_reviewer(db, row, user, policy)
    if _claim_holder(row, now) != user.id:
        raise NotAuthor("not_claim_holder", "claim the consultation before reviewing its report")
    return row, report, review


def _prepare(
    db: sqlite_utils.Database,
    consultation_id: int,
    user: CurrentUser,
    serial: str,
    now: datetime,
    policy: ReviewPolicy,
    public_url: str,
    edits: dict[str, Any] | None,
) -> _Decision:
    row, report, review = _awaiting(db, consultation_id, user, now, policy)
    text = {k: review[k] for k in store.VERSION_TEXT_FIELDS} | validate_draft(edits or {})
    if not (str(text["findings"]).strip() or str(text["impression"]).strip()):
        raise Conflict("empty_report", "write the findings or the impression before signing")
    code = new_verification_code() if edits is not None else review["verification_code"]
    values = text | {
        "version": review["version"],
        "supersedes_version": review["supersedes_version"],
        "signer_name": review["writer_name"],
        "certificate_serial": review["writer_certificate_serial"],
        "signed_at": review["written_at"],
        "verification_code": code,
        "verification_url": review["verification_url"] if edits is None else None,
        "reviewer_id": user.id,
        "reviewer_name": user.display_name or user.username,
        "reviewer_certificate_serial": serial,
        "reviewed_at": to_iso(now.replace(microsecond=0)),
    }
    figures = figure_store.review_figures(db, review["id"])
    document = document_for(
        db, report["id"], row, values, review["writer_id"], public_url, as_report_figures(figures)
    )
    return _Decision(
        _Prepared(row, report, document), review, edited=edits is not None, figures=tuple(figures)
    )


def _co_signed_bytes(
    decision: _Decision, identity: UnlockedIdentity, evidence: _Evidence
) -> tuple[bytes, bytes, bytes]:
    document = decision.prepared.document
    canonical = canonical_bytes(document)
    long_term = evidence.long_term()
    signature = sign_detached(
        canonical,
        identity.key,
        identity.certificate,
        identity.chain,
        timestamper=long_term.timestamper,
    )
    if not decision.edited:
        # the writer's signed PDF gets the reviewer's visible signature in the field reserved
        # for it: an incremental update over the first signature
        pdf = cosign_pdf(
            decision.review["pdf"],
            document,
            identity.key,
            identity.certificate,
            identity.chain,
            long_term=long_term,
        )
        return canonical, signature, pdf
    # an edited text is a new document that only the reviewer signed (both names printed)
    pdf = sign_pdf(
        render_report_pdf(document),
        identity.key,
        identity.certificate,
        identity.chain,
        reason=f"Review of imaging report {document.verification_code}",
        location=document.centre_name,
        signer_name=document.reviewer_name,
        long_term=long_term,
        field_name=REVIEW_FIELD,
    )
    return canonical, signature, pdf


async def co_sign(
    database: Database,
    ca: ConsortiumCA,
    user: CurrentUser,
    consultation_id: int,
    password: str,
    *,
    now: datetime,
    policy: ReviewPolicy,
    public_url: str,
    edits: dict[str, Any] | None = None,
    client_ip: str | None = None,
    tsa_url: str | None = None,
    loopback_allowed: bool = True,
) -> SignedReport:
    """Approve (``edits`` None) or edit and approve the awaiting report, and issue it."""
    check_printable(public_url, loopback_allowed=loopback_allowed)
    await check_password(database, user.username, password, client_ip, now)
    await database.read(_awaiting, consultation_id, user, now, policy)  # before any key work
    crl_url = f"{public_url.rstrip('/')}/api/ca/crl"
    identity = await unlocked_identity(database, ca, user, password, now, crl_url)
    decision = await database.read(
        _prepare, consultation_id, user, identity.serial_hex, now, policy, public_url, edits
    )
    trust = await database.read(trust_store, ca, now)
    evidence = _Evidence(ca, tsa_url, crl_url, trust, now)
    canonical, signature, pdf = await asyncio.to_thread(
        _co_signed_bytes, decision, identity, evidence
    )
    return await database.write(_record, decision, user, canonical, signature, pdf, now)


def _record(
    db: sqlite_utils.Database,
    decision: _Decision,
    user: CurrentUser,
    canonical: bytes,
    signature: bytes,
    pdf: bytes,
    now: datetime,
) -> SignedReport:
    prepared, review = decision.prepared, decision.review
    document, report = prepared.document, prepared.report
    stamp = to_iso(now.replace(microsecond=0))
    state = "edited" if decision.edited else "approved"
    review_store.decide(db, review["id"], state, user.id, document.reviewer_name, stamp)
    consultation_id = report["consultation_id"]
    text = {
        "findings": document.findings,
        "impression": document.impression,
        "recommendation": document.recommendation,
        "critical": int(document.critical),
        "refer": int(document.refer),
        "quality": document.quality,
        "quality_reason": document.quality_reason,
    }
    version_id = issue_version(
        db,
        consultation_id,
        text
        | {
            "report_id": report["id"],
            "version": document.version,
            "supersedes_version": document.supersedes_version,
            "signer_id": review["writer_id"],
            "signer_name": document.signer_name,
            "certificate_serial": document.signer_certificate_serial,
            "signed_at": review["written_at"],
            "verification_code": document.verification_code,
            "verification_url": document.verification_url,
            "canonical": canonical,
            "signature": signature,
            "pdf": pdf,
            "reviewer_id": user.id,
            "reviewer_name": document.reviewer_name,
            "reviewer_certificate_serial": document.reviewer_certificate_serial,
            "reviewed_at": stamp,
            "text_by": "reviewer" if decision.edited else "writer",
        },
        (
            (
                "reviewed",
                user.id,
                {
                    "report_id": report["id"],
                    "version": document.version,
                    "review_id": review["id"],
                    "decision": state,
                    "writer_id": review["writer_id"],
                },
            ),
            signed_event(report, document, user.id),
        ),
        stamp,
        now,
    )
    figure_store.save_figures(db, version_id, list(decision.figures))
    review_store.adopt_issued_text(db, report["id"], text, stamp)
    release_claim(db, consultation_id, "signed", stamp)
    notices: list[Notice] = []
    if review["preliminary_version"] is not None:
        notices.append(_final_notice(db, prepared, review["preliminary_version"], stamp))
    elif document.critical:
        notices.append(_critical_notice(db, prepared, stamp))
    return issued_report(prepared, version_id, stamp, tuple(notices))


def _final_notice(
    db: sqlite_utils.Database, prepared: _Prepared, preliminary: int, stamp: str
) -> Notice:
    """The clinic had the preliminary report: tell it the reviewed final one replaces it."""
    version = prepared.document.version
    return clinic_notice(
        db,
        prepared,
        stamp,
        "final_notified",
        {"version": version, "preliminary_version": preliminary},
        kind="report_final",
        title=f"Final report for consultation #{prepared.consultation['id']}",
        body="The reviewed final report replaces the preliminary report.",
        message="report_final",
        params={"version": version, "preliminary_version": preliminary},
    )


@dataclass(frozen=True)
class Returned:
    consultation: dict[str, Any]
    writer_id: int
    effects: Effects


def return_to_writer(
    db: sqlite_utils.Database,
    consultation_id: int,
    user: CurrentUser,
    comment: str,
    now: datetime,
    policy: ReviewPolicy,
    lease_minutes: float,
) -> Returned:
    """Send the report back to its writer with a comment; the writer holds the claim again."""
    comment = comment.strip()
    if not comment:
        raise ValueError("say what the writer should change")
    row, report, review = _awaiting(db, consultation_id, user, now, policy)
    stamp = to_iso(now)
    name = user.display_name or user.username
    review_store.decide(db, review["id"], "returned", user.id, name, stamp, comment)
    writer = review["writer_id"]
    if report["state"] == "signed":  # a preliminary was issued: the writer corrects it
        store.reopen_for_correction(db, report["id"], writer, stamp)
    consultation_store.append_event(
        db,
        consultation_id,
        "returned",
        stamp,
        user.id,
        {"report_id": report["id"], "review_id": review["id"], "to": writer, "comment": comment},
    )
    consultation_store.update_consultation(
        db,
        consultation_id,
        {
            "status": "ready",
            "claimed_by": writer,
            "claimed_at": stamp,
            "claim_expires_at": to_iso(lease_until(now, lease_minutes)),
            "updated_at": stamp,
        },
    )
    change = WorklistChange.of(row, "claimed", {"claimed_by_id": writer})
    return Returned(row, writer, Effects(changes=(change,)))
