"""Reports: templates, the one draft per consultation, immutable signed versions, acknowledgements.

A report row is the working copy (the draft being written, or the last signed text when no draft is
open); every signature appends a ``report_versions`` row that triggers keep immutable.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from .database import Conflict, RecordNotFound
from .fencing import Fence, claim_due_row, release_claims
from .scope import Scope

VERSION_TEXT_FIELDS = (
    "findings",
    "impression",
    "recommendation",
    "critical",
    "refer",
    "quality",
    "quality_reason",
)
"""A report's text as a signed version (and a review's submission) keeps it."""
DRAFT_FIELDS = (*VERSION_TEXT_FIELDS, "technical_flagged", "template_id")
TEMPLATE_FIELDS = ("name", "modality", "body_part", "findings", "impression", "recommendation")


# --- templates -------------------------------------------------------------------------------


def _template(row: Any) -> dict[str, Any]:
    return dict(row) | {"macros": json.loads(row["macros"])}


def list_templates(
    db: sqlite_utils.Database, modality: str = "", body_part: str = ""
) -> list[dict[str, Any]]:
    """Templates that fit (an empty modality/body part on a template fits anything), best first."""
    rows = db.execute(
        "SELECT * FROM report_templates"
        " WHERE (? = '' OR modality IN ('', ?)) AND (? = '' OR body_part IN ('', ?))"
        " ORDER BY CASE WHEN modality <> '' THEN 1 ELSE 0 END"
        " + CASE WHEN body_part <> '' THEN 1 ELSE 0 END DESC, name",
        [modality, modality, body_part, body_part],
    )
    return [_template(r) for r in rows]


def get_template(db: sqlite_utils.Database, template_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM report_templates WHERE id = ?", [template_id]).fetchone()
    if row is None:
        raise RecordNotFound(f"report template {template_id}")
    return _template(row)


def save_template(
    db: sqlite_utils.Database,
    values: dict[str, Any],
    user_id: int | None,
    now: str,
    template_id: int | None = None,
) -> int:
    """Insert or update a template; names are unique (``template_name_taken``)."""
    clash = db.execute(
        "SELECT id FROM report_templates WHERE name = ? AND id IS NOT ?",
        [values["name"], template_id],
    ).fetchone()
    if clash:
        raise Conflict("template_name_taken", f"a template named {values['name']!r} exists")
    row = {k: values.get(k, "") for k in TEMPLATE_FIELDS}
    row |= {"macros": json.dumps(values.get("macros", []), ensure_ascii=False)}
    row |= {"updated_by": user_id, "updated_at": now}
    if template_id is None:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cursor = db.execute(
            f"INSERT INTO report_templates ({columns}) VALUES ({marks})", list(row.values())
        )
        return int(cursor.lastrowid)
    get_template(db, template_id)
    assignments = ", ".join(f"{k} = ?" for k in row)
    db.execute(
        f"UPDATE report_templates SET {assignments} WHERE id = ?", [*row.values(), template_id]
    )
    return template_id


def delete_template(db: sqlite_utils.Database, template_id: int) -> None:
    get_template(db, template_id)
    db.execute("UPDATE reports SET template_id = NULL WHERE template_id = ?", [template_id])
    db.execute("DELETE FROM report_templates WHERE id = ?", [template_id])


# --- reports and versions --------------------------------------------------------------------


def report_for(db: sqlite_utils.Database, consultation_id: int) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT r.*, u.display_name AS author_name FROM reports r"
        " LEFT JOIN users u ON u.id = r.author_id WHERE r.consultation_id = ?",
        [consultation_id],
    ).fetchone()
    return dict(row) if row else None


def save_draft(
    db: sqlite_utils.Database,
    consultation_id: int,
    author_id: int,
    fields: dict[str, Any],
    now: str,
) -> dict[str, Any]:
    """Write the draft (creating the report on first save); the caller checked who may write."""
    values = {k: fields[k] for k in DRAFT_FIELDS if k in fields}
    existing = report_for(db, consultation_id)
    if existing is None:
        row = values | {
            "consultation_id": consultation_id,
            "state": "draft",
            "author_id": author_id,
            "draft_saved_at": now,
            "created_at": now,
            "updated_at": now,
        }
        db.execute(
            f"INSERT INTO reports ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
            list(row.values()),
        )
    else:
        row = values | {"author_id": author_id, "draft_saved_at": now, "updated_at": now}
        db.execute(
            f"UPDATE reports SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
            [*row.values(), existing["id"]],
        )
    saved = report_for(db, consultation_id)
    assert saved is not None
    return saved


def reopen_for_correction(db: sqlite_utils.Database, report_id: int, author_id: int, now: str):
    db.execute(
        "UPDATE reports SET state = 'draft', author_id = ?, draft_saved_at = ?, updated_at = ?"
        " WHERE id = ?",
        [author_id, now, now, report_id],
    )


def insert_version(db: sqlite_utils.Database, values: dict[str, Any]) -> int:
    """Append a signed version and mark the report signed; the version number must be next."""
    cursor = db.execute(
        f"INSERT INTO report_versions ({', '.join(values)})"
        f" VALUES ({', '.join('?' for _ in values)})",
        list(values.values()),
    )
    db.execute(
        "UPDATE reports SET state = 'signed', signed_versions = ?, updated_at = ?,"
        " acknowledged_version = NULL, acknowledged_at = NULL, acknowledged_by = NULL"
        " WHERE id = ?",
        [values["version"], values["signed_at"], values["report_id"]],
    )
    return int(cursor.lastrowid)


_VERSION_COLUMNS = (
    "v.id, v.report_id, v.version, v.supersedes_version, v.findings, v.impression,"
    " v.recommendation, v.critical, v.refer, v.quality, v.quality_reason, v.signer_id,"
    " v.signer_name, v.certificate_serial, v.signed_at, v.verification_code, v.verification_url,"
    " v.pdf_sop_instance_uid, v.sr_sop_instance_uid, v.preliminary, v.reviewer_id,"
    " v.reviewer_name, v.reviewer_certificate_serial, v.reviewed_at, v.text_by"
)


def signer_facility(db: sqlite_utils.Database, report_id: int, version: int) -> int:
    """The facility of the reader who signed ``version`` of the report."""
    row = db.execute(
        "SELECT u.facility_id FROM report_versions v JOIN users u ON u.id = v.signer_id"
        " WHERE v.report_id = ? AND v.version = ?",
        [report_id, version],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"version {version} of report {report_id}")
    return int(row["facility_id"])


def versions_of(db: sqlite_utils.Database, report_id: int) -> list[dict[str, Any]]:
    rows = db.execute(
        f"SELECT {_VERSION_COLUMNS} FROM report_versions v WHERE v.report_id = ? ORDER BY version",
        [report_id],
    )
    return [dict(r) for r in rows]


def version_blobs(db: sqlite_utils.Database, report_id: int, version: int) -> dict[str, Any]:
    """A version with its signed bytes (PDF, canonical form, detached signature)."""
    row = db.execute(
        f"SELECT {_VERSION_COLUMNS}, v.pdf, v.canonical, v.signature FROM report_versions v"
        " WHERE v.report_id = ? AND v.version = ?",
        [report_id, version],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"report {report_id} version {version}")
    return dict(row)


def version_by_code(db: sqlite_utils.Database, code: str) -> dict[str, Any] | None:
    """The version a verification code names, with what the public page may show."""
    row = db.execute(
        f"SELECT {_VERSION_COLUMNS}, v.pdf, v.canonical, v.signature,"
        " r.consultation_id, r.signed_versions, c.patient_name, c.facility_id,"
        " f.name AS facility_name, f.timezone AS facility_timezone, s.study_date"
        " FROM report_versions v JOIN reports r ON r.id = v.report_id"
        " JOIN consultations c ON c.id = r.consultation_id"
        " JOIN facilities f ON f.id = c.facility_id"
        " LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id"
        " WHERE v.verification_code = ?",
        [code],
    ).fetchone()
    return dict(row) if row else None


def set_version_objects(
    db: sqlite_utils.Database, version_id: int, pdf_uid: str | None, sr_uid: str | None
) -> None:
    db.execute(
        "UPDATE report_versions SET pdf_sop_instance_uid = ?, sr_sop_instance_uid = ? WHERE id = ?",
        [pdf_uid, sr_uid, version_id],
    )


def acknowledge(
    db: sqlite_utils.Database, report_id: int, version: int, user_id: int, now: str
) -> None:
    db.execute(
        "UPDATE reports SET acknowledged_version = ?, acknowledged_at = ?, acknowledged_by = ?"
        " WHERE id = ?",
        [version, now, user_id, report_id],
    )


def acknowledge_critical(db: sqlite_utils.Database, report_id: int, user_id: int, now: str):
    db.execute(
        "UPDATE reports SET critical_acknowledged_at = ?, critical_acknowledged_by = ?"
        " WHERE id = ?",
        [now, user_id, report_id],
    )


def portal_reports(
    db: sqlite_utils.Database, scope: Scope, limit: int = 200
) -> list[dict[str, Any]]:
    """Signed reports a facility may see, with acknowledgement state: critical findings nobody
    has acknowledged first, then newest signature first."""
    where, params = scope.where()
    rows = db.execute(
        "SELECT r.id AS report_id, r.consultation_id, r.signed_versions AS version,"
        " r.acknowledged_version, r.acknowledged_at, r.critical,"
        " r.critical_acknowledged_at, v.signed_at, v.signer_name, v.critical AS version_critical,"
        " v.preliminary, v.reviewer_name,"
        " v.verification_code, c.patient_name, c.patient_id, c.modality, c.body_part,"
        " c.priority, c.status, c.study_instance_uid, c.facility_id, f.name AS facility_name"
        " FROM reports r JOIN consultations c ON c.id = r.consultation_id"
        " JOIN facilities f ON f.id = c.facility_id"
        " JOIN report_versions v ON v.report_id = r.id AND v.version = r.signed_versions"
        f" WHERE r.signed_versions > 0 AND {where}"
        " ORDER BY (v.critical = 1 AND r.critical_acknowledged_at IS NULL) DESC,"
        " v.signed_at DESC, r.id DESC LIMIT ?",
        [*params, limit],
    )
    return [dict(r) for r in rows]


def unacknowledged_critical(db: sqlite_utils.Database, signed_before: str) -> list[dict[str, Any]]:
    """Critical reports signed before a time and still not acknowledged by the clinic."""
    rows = db.execute(
        "SELECT r.id AS report_id, r.consultation_id, c.facility_id, f.name AS facility_name,"
        " v.signed_at, v.version FROM reports r"
        " JOIN report_versions v ON v.report_id = r.id AND v.version = r.signed_versions"
        " JOIN consultations c ON c.id = r.consultation_id"
        " JOIN facilities f ON f.id = c.facility_id"
        " WHERE v.critical = 1 AND r.critical_acknowledged_at IS NULL AND v.signed_at <= ?"
        " AND NOT EXISTS (SELECT 1 FROM consultation_events e WHERE e.consultation_id = c.id"
        "   AND e.type = 'critical_escalated' AND e.at >= v.signed_at)",
        [signed_before],
    )
    return [dict(r) for r in rows]


def clinic_recipients(
    db: sqlite_utils.Database, facility_id: int, requested_by: int | None
) -> list[int]:
    """Who at the originating facility hears of a critical finding: its enabled clinicians and
    the requester who filed the consultation."""
    rows = db.execute(
        "SELECT id FROM users WHERE disabled = 0 AND ((facility_id = ? AND role = 'clinician')"
        " OR id = ?) ORDER BY id",
        [facility_id, requested_by],
    )
    return [r["id"] for r in rows]


# --- deliveries ------------------------------------------------------------------------------


def create_delivery(
    db: sqlite_utils.Database, version_id: int, channel: str, now: str
) -> int | None:
    """A pending delivery, due now; None when this version already has one on the channel."""
    cursor = db.execute(
        "INSERT INTO report_deliveries (report_version_id, channel, status, next_attempt_at,"
        " created_at) VALUES (?, ?, 'pending', ?, ?)"
        " ON CONFLICT (report_version_id, channel) DO NOTHING",
        [version_id, channel, now, now],
    )
    return int(cursor.lastrowid) if cursor.rowcount else None


def due_deliveries(
    db: sqlite_utils.Database, now: str, stale_before: str, limit: int = 20
) -> list[dict[str, Any]]:
    """Pending deliveries whose time has come and that no worker has in flight (a claim made
    before ``stale_before`` is a dead worker's: its delivery is due again)."""
    rows = db.execute(
        "SELECT d.*, v.report_id, v.version, r.consultation_id FROM report_deliveries d"
        " JOIN report_versions v ON v.id = d.report_version_id"
        " JOIN reports r ON r.id = v.report_id"
        " WHERE d.status = 'pending' AND d.next_attempt_at <= ?"
        " AND (d.claimed_at IS NULL OR d.claimed_at < ?) ORDER BY d.next_attempt_at"
        " LIMIT ?",
        [now, stale_before, limit],
    )
    return [dict(r) for r in rows]


def claim_delivery(
    db: sqlite_utils.Database,
    delivery_id: int,
    now: str,
    stale_before: str,
    fence: Fence | None = None,
) -> bool:
    """Take a due delivery for one attempt: True when this worker has it, False when it is
    done, not due, or in another worker's hands; refused (``Superseded``) when the worker's
    leader no longer holds the lease. :func:`record_attempt` lets it go."""
    return claim_due_row(db, "report_deliveries", delivery_id, now, stale_before, fence)


def release_delivery_claims(db: sqlite_utils.Database) -> int:
    """Forget every claim (one host, at the worker's start: the claims are its own dead
    attempts, tried again now rather than after they go stale); how many."""
    return release_claims(db, "report_deliveries")


def record_attempt(
    db: sqlite_utils.Database,
    delivery_id: int,
    *,
    ok: bool,
    detail: str,
    now: str,
    next_attempt_at: str | None,
    give_up: bool = False,
) -> int:
    """Log one attempt; done on success, pending again (or failed for good) otherwise."""
    db.execute(
        "INSERT INTO delivery_attempts (delivery_id, at, ok, detail) VALUES (?, ?, ?, ?)",
        [delivery_id, now, 1 if ok else 0, detail],
    )
    status = "done" if ok else ("failed" if give_up else "pending")
    db.execute(
        "UPDATE report_deliveries SET attempts = attempts + 1, status = ?, last_error = ?,"
        " next_attempt_at = ?, claimed_at = NULL,"
        " done_at = CASE WHEN ? <> 0 THEN ? ELSE done_at END WHERE id = ?",
        [status, "" if ok else detail, next_attempt_at, ok, now, delivery_id],
    )
    row = db.execute(
        "SELECT attempts FROM report_deliveries WHERE id = ?", [delivery_id]
    ).fetchone()
    return int(row["attempts"])


def deliveries_of(db: sqlite_utils.Database, report_id: int) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT d.id, d.channel, d.status, d.attempts, d.last_error, d.done_at, d.created_at,"
        " v.version FROM report_deliveries d JOIN report_versions v ON v.id = d.report_version_id"
        " WHERE v.report_id = ? ORDER BY d.id",
        [report_id],
    )
    deliveries = [dict(r) for r in rows]
    for delivery in deliveries:
        delivery["attempt_log"] = [
            dict(a)
            for a in db.execute(
                "SELECT at, ok, detail FROM delivery_attempts WHERE delivery_id = ? ORDER BY id",
                [delivery["id"]],
            )
        ]
    return deliveries


def version_row(db: sqlite_utils.Database, version_id: int) -> dict[str, Any]:
    row = db.execute(
        f"SELECT {_VERSION_COLUMNS}, r.consultation_id FROM report_versions v"
        " JOIN reports r ON r.id = v.report_id WHERE v.id = ?",
        [version_id],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"report version {version_id}")
    return dict(row)
