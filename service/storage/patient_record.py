"""The consortium record's reads and its stated reasons (issue 21 item 4).

A person's record is every consultation of every local identity linked to one (facility,
Patient ID), through :data:`service.storage.patients.LINKED_IDENTITIES`. Which of them a caller
sees at once is the caller's scope (:class:`service.storage.scope.Scope`), applied here in SQL;
the rest only once a reason is in force (``patient_record_reasons``, m045).

The access log reads the audit trail through its patient index (``audit_patients``): the record's
audit entries list every linked (facility, Patient ID) in ``detail["identities"]``, so each
identity's log finds them without reading every record's JSON.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from .database import RecordNotFound
from .dialects import is_postgres
from .patients import LINKED_IDENTITIES, linked_parameters
from .scope import Scope

RECORD_ACTIONS = "patient_record.%"
"""The audit actions of the record (view, query, print, reason, report, access log)."""


def identity_by_id(db: sqlite_utils.Database, identity_id: int) -> dict[str, Any]:
    """One local identity with its facility's name; RecordNotFound when there is none."""
    rows = list(
        db.query(
            """
            SELECT i.id, i.facility_id, f.name AS facility_name, i.patient_id, i.person_id,
                   i.name, i.birth_date, i.sex
            FROM patient_identities i JOIN facilities f ON f.id = i.facility_id
            WHERE i.id = ?
            """,
            [identity_id],
        )
    )
    if not rows:
        raise RecordNotFound(f"patient identity {identity_id}")
    return dict(rows[0])


def identity_of_consultation(db: sqlite_utils.Database, consultation_id: int, scope: Scope) -> int:
    """The local identity of a consultation's patient, if the caller sees the consultation."""
    where, params = scope.where("c")
    row = db.execute(
        f"""
        SELECT i.id FROM consultations c
        JOIN patient_identities i ON i.facility_id = c.facility_id AND i.patient_id = c.patient_id
        WHERE c.id = ? AND {where}
        """,
        [consultation_id, *params],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"patient of consultation {consultation_id}")
    return int(row[0])


def has_consultation_in(
    db: sqlite_utils.Database, facility_id: int, patient_id: str, scope: Scope
) -> bool:
    """Whether any consultation of the person (any linked identity) lies within ``scope``: the
    care relationship, when the scope is the caller's facility's."""
    where, params = scope.where("c")
    row = db.execute(
        f"""
        WITH {LINKED_IDENTITIES}
        SELECT 1 FROM linked l
        JOIN consultations c ON c.facility_id = l.facility_id AND c.patient_id = l.patient_id
        WHERE {where} LIMIT 1
        """,
        [*linked_parameters(facility_id, patient_id), *params],
    ).fetchone()
    return row is not None


def record_consultations(
    db: sqlite_utils.Database, facility_id: int, patient_id: str, scope: Scope
) -> list[dict[str, Any]]:
    """Every consultation of the person at every linked facility, newest first, each with
    ``in_scope`` (1 when ``scope`` allows it), the study's description and date, the latest
    signed version's impression and whether its facility is recognised for the exam item."""
    where, params = scope.where("c")
    rows = db.query(
        f"""
        WITH {LINKED_IDENTITIES}
        SELECT c.id AS consultation_id, c.facility_id, f.name AS facility_name,
               f.timezone AS facility_timezone, c.patient_id, c.modality, c.body_part,
               c.status, COALESCE(s.study_description, '') AS study_description,
               COALESCE(s.study_date, '') AS study_date,
               COALESCE(c.received_at, c.requested_at, c.created_at) AS performed_at,
               v.version, v.signed_at, v.signer_name, COALESCE(v.impression, '') AS impression,
               COALESCE(rec.status, '') AS recognition, ({where}) AS in_scope
        FROM linked l
        JOIN consultations c ON c.facility_id = l.facility_id AND c.patient_id = l.patient_id
        JOIN facilities f ON f.id = c.facility_id
        LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id
        LEFT JOIN reports r ON r.consultation_id = c.id AND r.signed_versions > 0
        LEFT JOIN report_versions v ON v.report_id = r.id AND v.version = r.signed_versions
        LEFT JOIN recognition rec ON rec.facility_id = c.facility_id
            AND rec.modality = c.modality AND rec.body_part = c.body_part
        ORDER BY performed_at DESC, c.id DESC
        """,
        [*linked_parameters(facility_id, patient_id), *params],
    )
    return [dict(row) | {"in_scope": bool(row["in_scope"])} for row in rows]


def signed_pdf(
    db: sqlite_utils.Database, facility_id: int, patient_id: str, consultation_id: int
) -> tuple[int, bytes]:
    """The latest signed version's number and PDF of a consultation of the person;
    RecordNotFound when the consultation is not the person's or has no signed version."""
    row = db.execute(
        f"""
        WITH {LINKED_IDENTITIES}
        SELECT v.version, v.pdf FROM linked l
        JOIN consultations c ON c.facility_id = l.facility_id AND c.patient_id = l.patient_id
        JOIN reports r ON r.consultation_id = c.id AND r.signed_versions > 0
        JOIN report_versions v ON v.report_id = r.id AND v.version = r.signed_versions
        WHERE c.id = ?
        """,
        [*linked_parameters(facility_id, patient_id), consultation_id],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"signed report of consultation {consultation_id}")
    return int(row[0]), bytes(row[1])


def add_reason(db: sqlite_utils.Database, reason: dict[str, Any]) -> int:
    """Keep a stated reason (columns of ``patient_record_reasons``); returns its id."""
    columns = ", ".join(reason)
    marks = ", ".join("?" for _ in reason)
    cursor = db.execute(
        f"INSERT INTO patient_record_reasons ({columns}) VALUES ({marks})", list(reason.values())
    )
    return int(cursor.lastrowid)


def reason_in_force(
    db: sqlite_utils.Database,
    identity_id: int,
    user_id: int,
    session_id: int | None,
    api_token_id: int | None,
    now: str,
) -> dict[str, Any] | None:
    """The latest reason this caller (same session or API token) stated for the identity that
    has not expired, or None."""
    rows = list(
        db.query(
            """
            SELECT id, category, text, stated_at, expires_at FROM patient_record_reasons
            WHERE identity_id = ? AND user_id = ? AND expires_at > ?
              AND session_id IS ? AND api_token_id IS ?
            ORDER BY id DESC LIMIT 1
            """,
            [identity_id, user_id, now, session_id, api_token_id],
        )
    )
    return dict(rows[0]) if rows else None


def access_log(
    db: sqlite_utils.Database, identities: list[tuple[int, str]], limit: int = 5000
) -> list[dict[str, Any]]:
    """The record's audit entries that listed any of these (facility, Patient ID) pairs, newest
    first: who (name, role, facility), when (UTC), what, why, and the outcome."""
    if not identities:
        return []
    patient_ids = sorted({p for _, p in identities})
    marks = ", ".join("?" for _ in patient_ids)
    pairs = " OR ".join(
        "(CAST(json_extract(j.value, '$.facility_id') AS INTEGER) = ?"
        " AND json_extract(j.value, '$.patient_id') = ?)"
        for _ in identities
    )
    listed = (
        "jsonb_array_elements(CAST(a.detail AS JSONB) -> 'identities') AS j(value)"
        if is_postgres(db)
        else "json_each(a.detail, '$.identities') j"
    )
    flat = [value for pair in identities for value in pair]
    rows = db.query(
        f"""
        SELECT DISTINCT a.id, a.at, a.user_id, a.username, COALESCE(u.display_name, '')
               AS display_name, a.role, a.facility_id, COALESCE(f.name, '') AS facility_name,
               a.action, a.outcome, a.client_ip, a.detail
        FROM audit_patients p
        JOIN audit_log a ON a.id = p.audit_id
        LEFT JOIN users u ON u.id = a.user_id
        LEFT JOIN facilities f ON f.id = a.facility_id
        WHERE p.patient_id IN ({marks}) AND a.action LIKE ?
          AND EXISTS (SELECT 1 FROM {listed} WHERE {pairs})
        ORDER BY a.id DESC LIMIT ?
        """,
        [*patient_ids, RECORD_ACTIONS, *flat, limit],
    )
    return [dict(row) for row in rows]
