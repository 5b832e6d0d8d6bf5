"""The HL7 results outbox (``hl7_outbox``, migration m030): one ORU^R01 per signed report version
for a facility with an MLLP endpoint, from the signing transaction to the HIS's acknowledgement.

A row is ``pending`` until the HIS answers AA (``sent``) or the attempts run out (``failed``,
with the reason). Order per consultation: a row is due only when no earlier row of the same
consultation is still pending, so a correction (C) never overtakes its original (F).
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from .database import Conflict, RecordNotFound
from .fencing import Fence, claim_due_row, release_claims

STATUSES = ("pending", "sent", "failed")

_LIST_COLUMNS = (
    "o.id, o.consultation_id, o.report_version_id, o.facility_id, o.endpoint, o.result_status,"
    " o.status, o.attempts, o.next_attempt_at, o.reason, o.ack_code, o.created_at,"
    " o.last_attempt_at, o.sent_at, v.version, c.patient_id, c.patient_name,"
    " c.accession_number, c.placer_order_number, f.name AS facility_name"
)
_JOINS = (
    " FROM hl7_outbox o JOIN report_versions v ON v.id = o.report_version_id"
    " JOIN consultations c ON c.id = o.consultation_id JOIN facilities f ON f.id = o.facility_id"
)


def enqueue_result(
    db: sqlite_utils.Database, consultation_id: int, version_id: int, version: int, now: str
) -> int | None:
    """Queue the ORU^R01 of a version just signed, in the signing's transaction. OBR-25: P for
    a version released before review (issue 19), F for the first version that is not (the
    reviewed one replacing a preliminary included), C for a correction of a final one. None
    when the facility has no HL7 endpoint."""
    row = db.execute(
        "SELECT f.id, f.hl7_endpoint FROM consultations c JOIN facilities f"
        " ON f.id = c.facility_id WHERE c.id = ?",
        [consultation_id],
    ).fetchone()
    if row is None or not row["hl7_endpoint"]:
        return None
    facts = db.execute(
        "SELECT v.preliminary, (SELECT COUNT(*) FROM report_versions w"
        " WHERE w.report_id = v.report_id AND w.version < v.version AND w.preliminary = 0)"
        " FROM report_versions v WHERE v.id = ?",
        [version_id],
    ).fetchone()
    if facts is None:  # not stored yet: judged by its number, as before issue 19
        result_status = "F" if version == 1 else "C"
    else:
        result_status = "P" if facts[0] else ("F" if facts[1] == 0 else "C")
    cursor = db.execute(
        "INSERT INTO hl7_outbox (consultation_id, report_version_id, facility_id, endpoint,"
        " result_status, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [consultation_id, version_id, row["id"], row["hl7_endpoint"], result_status, now, now],
    )  # fmt: skip
    return int(cursor.lastrowid)


def due_messages(
    db: sqlite_utils.Database, now: str, stale_before: str, limit: int = 20
) -> list[dict[str, Any]]:
    """Pending rows whose time has come, that no worker has in flight (a claim made before
    ``stale_before`` is a dead worker's) and that no earlier pending row of their consultation
    holds back, oldest first."""
    rows = db.execute(
        "SELECT o.* FROM hl7_outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= ?"
        " AND (o.claimed_at IS NULL OR o.claimed_at < ?)"
        " AND NOT EXISTS (SELECT 1 FROM hl7_outbox e WHERE e.consultation_id = o.consultation_id"
        "   AND e.id < o.id AND e.status = 'pending')"
        " ORDER BY o.next_attempt_at, o.id LIMIT ?",
        [now, stale_before, limit],
    )
    return [dict(r) for r in rows]


def claim_message(
    db: sqlite_utils.Database,
    outbox_id: int,
    now: str,
    stale_before: str,
    fence: Fence | None = None,
) -> bool:
    """Take a due message for one attempt: True when this worker has it, False when it is
    sent, not due, or in another worker's hands; refused (``Superseded``) when the worker's
    leader no longer holds the lease. Recording the attempt lets it go."""
    return claim_due_row(db, "hl7_outbox", outbox_id, now, stale_before, fence)


def release_message_claims(db: sqlite_utils.Database) -> int:
    """Forget every claim (one host, at the sender's start: they are its own dead attempts)."""
    return release_claims(db, "hl7_outbox")


def message_facts(db: sqlite_utils.Database, outbox_id: int) -> dict[str, Any]:
    """What the message of a row is built from: the row, its facility, and the version's
    report id, number, signer and signed PDF."""
    row = db.execute("SELECT * FROM hl7_outbox WHERE id = ?", [outbox_id]).fetchone()
    if row is None:
        raise RecordNotFound(f"HL7 message {outbox_id}")
    facility = db.execute("SELECT * FROM facilities WHERE id = ?", [row["facility_id"]]).fetchone()
    version = db.execute(
        "SELECT * FROM report_versions WHERE id = ?", [row["report_version_id"]]
    ).fetchone()
    return {"outbox": dict(row), "facility": dict(facility), "version": dict(version)}


def record_sent(db: sqlite_utils.Database, outbox_id: int, ack_code: str, now: str) -> None:
    db.execute(
        "UPDATE hl7_outbox SET status = 'sent', attempts = attempts + 1, ack_code = ?,"
        " reason = '', last_attempt_at = ?, sent_at = ?, next_attempt_at = NULL,"
        " claimed_at = NULL WHERE id = ?",
        [ack_code, now, now, outbox_id],
    )


def record_failure(
    db: sqlite_utils.Database,
    outbox_id: int,
    *,
    reason: str,
    ack_code: str,
    now: str,
    next_attempt_at: str | None,
) -> None:
    """One failed attempt: pending again at ``next_attempt_at``, or failed for good (None)."""
    db.execute(
        "UPDATE hl7_outbox SET status = ?, attempts = attempts + 1, reason = ?, ack_code = ?,"
        " last_attempt_at = ?, next_attempt_at = ?, claimed_at = NULL WHERE id = ?",
        ["pending" if next_attempt_at else "failed", reason[:1000], ack_code, now,
         next_attempt_at, outbox_id],
    )  # fmt: skip


def list_messages(
    db: sqlite_utils.Database, status: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The outbox for the administrator, newest first, optionally of one status."""
    where, params = ("WHERE o.status = ?", [status]) if status else ("", [])
    rows = db.execute(
        f"SELECT {_LIST_COLUMNS}{_JOINS} {where} ORDER BY o.id DESC LIMIT ?", [*params, limit]
    )
    return [dict(r) for r in rows]


def get_message(db: sqlite_utils.Database, outbox_id: int) -> dict[str, Any]:
    row = db.execute(f"SELECT {_LIST_COLUMNS}{_JOINS} WHERE o.id = ?", [outbox_id]).fetchone()
    if row is None:
        raise RecordNotFound(f"HL7 message {outbox_id}")
    return dict(row)


def retry_message(db: sqlite_utils.Database, outbox_id: int, now: str) -> dict[str, Any]:
    """Make a failed (or waiting) message due now with a fresh count of attempts, to the
    facility's endpoint as it is now (an administrator may have corrected it). A sent one is
    refused (``already_sent``), and so is one a later message of its consultation has already
    replaced at the HIS (``superseded``): sending it now would put the older result last."""
    row = get_message(db, outbox_id)
    if row["status"] == "sent":
        raise Conflict("already_sent", f"HL7 message {outbox_id} was acknowledged already")
    later = db.execute(
        "SELECT id FROM hl7_outbox WHERE consultation_id = ? AND id > ? AND status = 'sent'"
        " LIMIT 1",
        [row["consultation_id"], outbox_id],
    ).fetchone()
    if later is not None:
        raise Conflict(
            "superseded", f"a later result of this consultation (#{later['id']}) was sent"
        )
    db.execute(
        "UPDATE hl7_outbox SET status = 'pending', attempts = 0, next_attempt_at = ?,"
        " endpoint = coalesce((SELECT nullif(hl7_endpoint, '') FROM facilities"
        "   WHERE id = hl7_outbox.facility_id), endpoint) WHERE id = ?",
        [now, outbox_id],
    )
    return get_message(db, outbox_id)
