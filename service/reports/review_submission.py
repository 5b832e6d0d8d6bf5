"""The writer's signature on a report that needs review (two-level sign-off, issue 19).

The writer (报告医师) signs exactly as for a report issued alone: password, PAdES PDF, detached
signature over the canonical form. What changes is what happens next: the signed text is kept
in ``report_reviews``, the consultation goes to ``awaiting_review`` on the reviewers' queue, and
nothing reaches the clinic, Orthanc or the HIS until a reviewer (审核医师) decides.

A stat or urgent report may be released as preliminary (初步报告) at the same time: the writer's
password is at hand only now, so two documents are signed at once, the preliminary version
(issued to the clinic at once like any signed version, marked preliminary on every page) and the
unmarked next version held for the reviewer's co-signature, which supersedes the preliminary.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime

import sqlite_utils

from worklists.review import ReviewPolicy

from ..auth.identities import UnlockedIdentity
from ..auth.sessions import CurrentUser
from ..clock import to_iso
from ..runtime.orthanc.client import OrthancClient
from ..signing import ConsortiumCA
from ..storage import Conflict, Database
from ..storage import consultations as consultation_store
from ..storage import report_reviews as review_store
from ..storage import reports as store
from ..storage import users as user_store
from ..worklist.effects import Effects
from ..worklist.live import WorklistChange
from .document import ReportDocument
from .key_images import save_review_figures, save_signed_figures
from .signing import (
    SignedReport,
    _critical_notice,
    _Evidence,
    _Prepared,
    _signed_bytes,
    issue_version,
    new_verification_code,
    release_claim,
    sign_ready,
    unlock_and_prepare,
)

AWAITING_REVIEW = "awaiting_review"


@dataclasses.dataclass(frozen=True)
class _Signed:
    document: ReportDocument
    canonical: bytes
    signature: bytes
    pdf: bytes


async def sign_for_issue_or_review(
    database: Database,
    ca: ConsortiumCA,
    user: CurrentUser,
    consultation_id: int,
    password: str,
    *,
    now: datetime,
    public_url: str,
    review: ReviewPolicy,
    preliminary: bool = False,
    client_ip: str | None = None,
    tsa_url: str | None = None,
    loopback_allowed: bool = True,
    orthanc: OrthancClient | None = None,
) -> SignedReport:
    """The writer's signature: issued at once (``signing.sign_report``'s path) unless the
    ``review`` rule sends the report to a reviewer; ``preliminary`` then also releases it at
    once, for the priorities the rule allows (``preliminary_not_allowed`` otherwise)."""
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
    prepared = ready.prepared
    if not await database.read(_needs_review, review, prepared, user):
        return await sign_ready(database, ready, user, now)
    if preliminary and not review.may_release_preliminary(prepared.consultation["priority"]):
        raise Conflict(
            "preliminary_not_allowed",
            "only stat and urgent reports may be released as preliminary before review",
        )
    return await submit_for_review(
        database,
        prepared,
        ready.identity,
        ready.evidence,
        user,
        now,
        preliminary=preliminary,
        public_url=public_url,
    )


def _needs_review(
    db: sqlite_utils.Database, review: ReviewPolicy, prepared: _Prepared, user: CurrentUser
) -> bool:
    grade = user_store.signer_names(db, user.id).get("grade")
    row = prepared.consultation
    return review.needs_review(grade or "", row.get("queue") or "general", row["priority"])


def _held_document(document: ReportDocument, public_url: str) -> ReportDocument:
    """The unmarked version held for review when the preliminary takes ``document.version``."""
    code = new_verification_code()
    return dataclasses.replace(
        document,
        version=document.version + 1,
        supersedes_version=document.version,
        verification_code=code,
        verification_url=f"{public_url.rstrip('/')}/verify/{code}",
    )


def _sign_all(
    documents: tuple[ReportDocument, ...], identity: UnlockedIdentity, evidence: _Evidence
) -> tuple[_Signed, ...]:
    """Sign each document; the last is held for review, its PDF keeping a field for the
    reviewer's visible co-signature (cosign.py)."""
    last = len(documents) - 1
    return tuple(
        _Signed(d, *_signed_bytes(d, identity, evidence, review_field=i == last))
        for i, d in enumerate(documents)
    )


async def submit_for_review(
    database: Database,
    prepared: _Prepared,
    identity: UnlockedIdentity,
    evidence: _Evidence,
    user: CurrentUser,
    now: datetime,
    *,
    preliminary: bool,
    public_url: str,
) -> SignedReport:
    """Sign the draft for review (and, with ``preliminary``, release it before review)."""
    document = prepared.document
    if preliminary:
        documents = (
            dataclasses.replace(document, preliminary=True),
            _held_document(document, public_url),
        )
    else:
        documents = (document,)
    signed = await asyncio.to_thread(_sign_all, documents, identity, evidence)
    return await database.write(_record, prepared, user, signed, identity.serial_hex, now)


def _record(
    db: sqlite_utils.Database,
    prepared: _Prepared,
    user: CurrentUser,
    signed: tuple[_Signed, ...],
    serial: str,
    now: datetime,
) -> SignedReport:
    report = prepared.report
    current = store.report_for(db, report["consultation_id"])
    if current is None or current["updated_at"] != report["updated_at"]:
        raise Conflict("draft_changed", "the draft changed while signing: review and sign again")
    stamp = to_iso(signed[0].document.signed_at)
    released = (
        _release_preliminary(db, prepared, user, signed[0], serial, now)
        if len(signed) > 1
        else None
    )
    held = signed[-1]
    review_id = review_store.insert_submission(
        db,
        {
            "report_id": report["id"],
            "consultation_id": report["consultation_id"],
            "version": held.document.version,
            "supersedes_version": held.document.supersedes_version,
            **{k: report[k] for k in store.VERSION_TEXT_FIELDS},
            "writer_id": user.id,
            "writer_name": held.document.signer_name,
            "writer_certificate_serial": serial,
            "written_at": stamp,
            "verification_code": held.document.verification_code,
            "verification_url": held.document.verification_url,
            "canonical": held.canonical,
            "signature": held.signature,
            "pdf": held.pdf,
            "preliminary_version": released.document.version if released else None,
        },
    )
    save_review_figures(db, review_id, prepared.key_figures)
    consultation_id = report["consultation_id"]
    consultation_store.append_event(
        db,
        consultation_id,
        "written",
        stamp,
        user.id,
        {
            "report_id": report["id"],
            "version": held.document.version,
            "review_id": review_id,
            "preliminary": released is not None,
            "critical": bool(report["critical"]),
        },
    )
    release_claim(db, consultation_id, AWAITING_REVIEW, stamp)
    notices = ()
    if released is not None and report["critical"]:
        notices = (_critical_notice(db, _released(prepared, released), stamp),)
    effects = Effects(
        changes=(WorklistChange.of(prepared.consultation, "updated"),),
        notices=notices,
        deliver=released is not None,
    )
    shown = released or held
    return SignedReport(
        prepared.consultation,
        report["id"],
        0,
        shown.document.version,
        shown.document.verification_code,
        stamp,
        effects,
        awaiting_review=True,
        preliminary=released is not None,
    )


def _released(prepared: _Prepared, released: _Signed) -> _Prepared:
    return dataclasses.replace(prepared, document=released.document)


def _release_preliminary(
    db: sqlite_utils.Database,
    prepared: _Prepared,
    user: CurrentUser,
    signed: _Signed,
    serial: str,
    now: datetime,
) -> _Signed:
    """Issue the preliminary version as any signed version is issued: portal, Orthanc, HIS."""
    report, document = prepared.report, signed.document
    stamp = to_iso(document.signed_at)
    released = {"report_id": report["id"], "version": document.version}
    version_id = issue_version(
        db,
        report["consultation_id"],
        {
            **released,
            "supersedes_version": document.supersedes_version,
            **{k: report[k] for k in store.VERSION_TEXT_FIELDS},
            "signer_id": user.id,
            "signer_name": document.signer_name,
            "certificate_serial": serial,
            "signed_at": stamp,
            "verification_code": document.verification_code,
            "verification_url": document.verification_url,
            "canonical": signed.canonical,
            "signature": signed.signature,
            "pdf": signed.pdf,
            "preliminary": 1,
        },
        (("preliminary_released", user.id, released),),
        stamp,
        now,
    )
    save_signed_figures(db, version_id, prepared.key_figures)
    return signed
