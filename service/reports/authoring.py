"""Writing a report: who may write the draft, autosave, corrections after signing.

The first version is written by the specialist holding the consultation's claim (the claim is the
"I am reading this" of the worklist). After signing the text is frozen; a correction reopens the
report as a draft for one specialist, whose signature then adds version n+1 that supersedes n.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from worklists.claims import ClaimState, claim_state

from ..auth.access import consultation_scope, may_correct_report_signed_at
from ..auth.sessions import CurrentUser
from ..clock import from_iso, to_iso
from ..storage import Conflict, RecordNotFound
from ..storage import consultations as consultation_store
from ..storage import reports as store
from .recognition_mark import recognised_at_each

WRITING_ROLES = frozenset({"specialist", "manager"})
QUALITY_RATINGS = ("good", "acceptable", "poor")


class NotAuthor(Conflict):
    """The caller may not write this report now (no claim, or someone else's draft)."""


class NotSignersFacility(Exception):
    """Only a reader of the facility that signed a report corrects it."""


@dataclass(frozen=True)
class ReportView:
    """A consultation's report as a given user may see it."""

    consultation: dict[str, Any]
    report: dict[str, Any] | None
    versions: list[dict[str, Any]]
    draft_visible: bool


def read_report(db: sqlite_utils.Database, consultation_id: int, user: CurrentUser) -> ReportView:
    """Readers see the draft; the originating facility sees signed versions only."""
    row = consultation_store.get_consultation(db, consultation_scope(user), consultation_id)
    report = store.report_for(db, consultation_id)
    versions = store.versions_of(db, report["id"]) if report else []
    exam = (row.get("facility_id"), row.get("modality"), row.get("body_part"))
    times = [version["signed_at"] for version in versions]
    # the mutual-recognition mark each version's PDF prints (issue 20)
    for version, recognised in zip(versions, recognised_at_each(db, *exam, times), strict=True):
        version["recognised"] = recognised
    return ReportView(row, report, versions, draft_visible=user.role in WRITING_ROLES)


def _claim_holder(row: dict[str, Any], now: datetime) -> int | None:
    expires = row["claim_expires_at"]
    state = claim_state(row["claimed_by"], from_iso(expires) if expires else None, now)
    return row["claimed_by"] if state is ClaimState.HELD else None


def check_may_write(
    db: sqlite_utils.Database, row: dict[str, Any], user: CurrentUser, now: datetime
) -> dict[str, Any] | None:
    """The report (None before the first save) if ``user`` may write it now; NotAuthor if not."""
    if user.role not in WRITING_ROLES:
        raise NotAuthor("not_author", "only reading specialists write reports")
    if row["status"] == "awaiting_review":  # two-level sign-off: the reviewer decides first
        raise NotAuthor("awaiting_review", "the report awaits review: it cannot change now")
    report = store.report_for(db, row["id"])
    if report is not None and report["state"] == "signed":
        raise NotAuthor("report_signed", "the report is signed: start a correction to change it")
    if report is not None and report["signed_versions"] > 0:
        if report["author_id"] != user.id:  # a correction belongs to whoever opened it
            raise NotAuthor("not_author", f"{report['author_name']} is correcting this report")
        return report
    if row["status"] == "cancelled":
        raise Conflict("finished", f"consultation {row['id']} was cancelled")
    if _claim_holder(row, now) != user.id:
        raise NotAuthor("not_claim_holder", "claim the consultation before writing its report")
    return report


def validate_draft(fields: dict[str, Any]) -> dict[str, Any]:
    """Normalise the flags; a poor quality rating needs its reason (it goes back to the clinic)."""
    cleaned = dict(fields)
    for flag in ("critical", "refer", "technical_flagged"):
        if flag in cleaned:
            cleaned[flag] = 1 if cleaned[flag] else 0
    quality = cleaned.get("quality")
    if quality is not None and quality not in QUALITY_RATINGS:
        raise ValueError(f"quality must be one of {', '.join(QUALITY_RATINGS)}")
    if quality == "poor" and not str(cleaned.get("quality_reason") or "").strip():
        raise ValueError("a poor image quality rating needs a reason")
    return cleaned


def save_draft(
    db: sqlite_utils.Database,
    consultation_id: int,
    user: CurrentUser,
    fields: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Autosave: one transaction, only for the writer :func:`check_may_write` allows."""
    row = consultation_store.get_consultation(db, consultation_scope(user), consultation_id)
    check_may_write(db, row, user, now)
    if fields.get("template_id") is not None:
        store.get_template(db, fields["template_id"])
    return store.save_draft(db, consultation_id, user.id, validate_draft(fields), to_iso(now))


def start_correction(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser, now: datetime
) -> dict[str, Any]:
    """Reopen a signed report as a draft for ``user``; the signed versions stay as they are."""
    if user.role not in WRITING_ROLES:
        raise NotAuthor("not_author", "only reading specialists correct reports")
    row = consultation_store.get_consultation(db, consultation_scope(user), consultation_id)
    if row["status"] == "awaiting_review":
        raise NotAuthor("awaiting_review", "the report awaits review: it cannot change now")
    report = store.report_for(db, consultation_id)
    if report is None or report["signed_versions"] == 0:
        raise RecordNotFound(f"signed report of consultation {consultation_id}")
    signed_at = store.signer_facility(db, report["id"], report["signed_versions"])
    if not may_correct_report_signed_at(user, signed_at):
        raise NotSignersFacility(
            "the report was signed by another facility's reader: only its readers correct it"
        )
    if report["state"] == "draft":
        if report["author_id"] == user.id:
            return report
        raise NotAuthor("correction_in_progress", f"{report['author_name']} is correcting it")
    store.reopen_for_correction(db, report["id"], user.id, to_iso(now))
    consultation_store.append_event(
        db, row["id"], "correction_started", to_iso(now), user.id, {"report_id": report["id"]}
    )
    reopened = store.report_for(db, consultation_id)
    assert reopened is not None
    return reopened
