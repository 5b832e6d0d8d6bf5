"""The clinic's side of a signed report: opening it, acknowledging it, and critical findings.

A report reaches the clinic signed; a clinician there opens it and acknowledges it (the
consultation closes). A critical finding additionally needs an explicit acknowledgement by a
clinician of the originating facility; unacknowledged after the configured minutes, the centre's
duty managers are alerted. Every step is an event, so the chain shows in the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from ..auth.access import consultation_scope
from ..auth.sessions import CurrentUser
from ..clock import to_iso
from ..storage import Conflict, RecordNotFound
from ..storage import consultations as consultation_store
from ..storage import reports as store
from ..worklist.effects import Effects
from ..worklist.live import WorklistChange
from ..worklist.notifications import Notice, notice_facts
from ..worklist.roster import managers_to_tell

CLINIC_ROLES = frozenset({"clinician", "radiographer", "requester"})
CRITICAL_ACK_ROLES = frozenset({"clinician", "requester"})


class NotClinic(Conflict):
    """Only the originating facility acknowledges its report."""


@dataclass(frozen=True)
class SignedCopy:
    """One signed version's PDF, with what the audit record and the timeline need."""

    consultation: dict[str, Any]
    version: dict[str, Any]
    pdf: bytes


def signed_report(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The consultation (within the user's scope) and its report, which must have a signed
    version: RecordNotFound otherwise, so an unsigned draft never reaches the clinic."""
    row = consultation_store.get_consultation(db, consultation_scope(user), consultation_id)
    report = store.report_for(db, consultation_id)
    if report is None or report["signed_versions"] == 0:
        raise RecordNotFound(f"signed report of consultation {consultation_id}")
    return row, report


def open_version(
    db: sqlite_utils.Database, consultation_id: int, version: int, user: CurrentUser, now: datetime
) -> SignedCopy:
    """The PDF of a signed version; the clinic's first opening of the latest is an event."""
    row, report = signed_report(db, consultation_id, user)
    blobs = store.version_blobs(db, report["id"], version)
    if user.role in CLINIC_ROLES and version == report["signed_versions"]:
        if not consultation_store.was_opened(db, consultation_id, version):
            consultation_store.append_event(
                db, consultation_id, "opened", to_iso(now), user.id, {"version": version}
            )
    return SignedCopy(row, blobs, blobs["pdf"])


def version_to_print(
    db: sqlite_utils.Database, consultation_id: int, version: int, user: CurrentUser
) -> dict[str, Any]:
    """The consultation whose signed ``version`` the user is about to print; RecordNotFound
    unless that version exists and is within the user's scope (the print is then audited)."""
    row, report = signed_report(db, consultation_id, user)
    store.version_blobs(db, report["id"], version)
    return row


def acknowledge(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser, now: datetime
) -> Effects:
    """The clinic confirms it received the latest version; the consultation closes."""
    if user.role not in CLINIC_ROLES:
        raise NotClinic("not_clinic", "only the originating facility acknowledges its report")
    row, report = signed_report(db, consultation_id, user)
    version = report["signed_versions"]
    if report["acknowledged_version"] == version:
        return _acknowledged(row)
    stamp = to_iso(now)
    store.acknowledge(db, report["id"], version, user.id, stamp)
    consultation_store.append_event(
        db, consultation_id, "acknowledged", stamp, user.id, {"version": version}
    )
    # A preliminary report (issue 19) is acknowledged too, but the consultation stays open for
    # its review: the final version closes it when acknowledged in turn.
    if report["state"] == "signed" and row["status"] != "awaiting_review":
        consultation_store.update_consultation(
            db, consultation_id, {"status": "closed", "updated_at": stamp}
        )
    return _acknowledged(row)


def acknowledge_critical(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser, now: datetime
) -> Effects:
    """A clinician of the originating facility takes responsibility for the critical finding."""
    if user.role not in CRITICAL_ACK_ROLES:
        raise NotClinic("not_clinician", "a clinician of the originating facility must do this")
    row, report = signed_report(db, consultation_id, user)
    latest = store.version_blobs(db, report["id"], report["signed_versions"])
    if not latest["critical"]:
        raise Conflict("not_critical", "the report carries no critical finding")
    if report["critical_acknowledged_at"] is None:
        stamp = to_iso(now)
        store.acknowledge_critical(db, report["id"], user.id, stamp)
        consultation_store.append_event(
            db,
            consultation_id,
            "critical_acknowledged",
            stamp,
            user.id,
            {"version": report["signed_versions"]},
        )
    return _acknowledged(row)


def _acknowledged(row: dict[str, Any]) -> Effects:
    """The worklists hear of an acknowledgement (even a repeated one: it is harmless)."""
    return Effects(changes=(WorklistChange.of(row, "acknowledged"),))


def escalate_unacknowledged_critical(
    db: sqlite_utils.Database, now: datetime, minutes: float
) -> list[Notice]:
    """Alert the duty managers once per critical report left unacknowledged too long."""
    overdue = store.unacknowledged_critical(db, to_iso(now - timedelta(minutes=minutes)))
    if not overdue:
        return []
    managers = managers_to_tell(db, now)
    notices = []
    for row in overdue:
        consultation_store.append_event(
            db,
            row["consultation_id"],
            "critical_escalated",
            to_iso(now),
            None,
            {"version": row["version"], "managers": managers, "minutes": minutes},
        )
        notices.append(
            Notice(
                kind="critical_unacknowledged",
                user_ids=tuple(managers),
                consultation_id=row["consultation_id"],
                title=f"Critical finding not acknowledged: #{row['consultation_id']}",
                body=f"{row['facility_name']} has not acknowledged it for {minutes:g} minutes",
                facts=notice_facts(row, minutes=minutes),
                message="critical_unacknowledged",
                params={"facility": row["facility_name"], "minutes": f"{minutes:g}"},
            )
        )
    return notices
