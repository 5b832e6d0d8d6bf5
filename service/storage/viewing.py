"""The viewer's queries: which study a caller may open, the patient's other consultations, and
who has opened which study already.

Facility scope is part of every query (service/storage/scope.py): a study outside the caller's
reach is simply not found, exactly like a study that does not exist.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlite_utils

from .audit import append_audit
from .audit_chain import AuditEntry
from .database import RecordNotFound
from .linked_priors import current_consultation, linked_consultations
from .scope import Scope


class Opening(NamedTuple):
    """Who opened a study: a login session (``api_token_id`` 0) or an API token
    (``session_id`` 0)."""

    user_id: int
    session_id: int
    api_token_id: int
    study_instance_uid: str


# A consultation's images are its own Orthanc study (``orthanc_study_id``, set when images
# credited to its facility arrived), never whatever study shares its UID: a consultation
# without images of its own opens nothing. The patient audited is the study's own.
_CONSULTATION = """
    SELECT c.id, c.facility_id, c.study_instance_uid, c.orthanc_study_id,
           COALESCE(NULLIF(s.patient_id, ''), c.patient_id) AS patient_id,
           c.patient_name, c.modality, f.name AS facility_name
    FROM consultations c
    JOIN facilities f ON f.id = c.facility_id
    LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id
"""


def viewable_consultation(
    db: sqlite_utils.Database, consultation_id: int, scope: Scope
) -> dict[str, Any]:
    """The consultation the viewer opens, if in scope and its own images have arrived."""
    where, params = scope.where("c")
    rows = list(
        db.query(
            f"{_CONSULTATION} WHERE c.id = ? AND c.orthanc_study_id IS NOT NULL AND {where}",
            [consultation_id, *params],
        )
    )
    if not rows:
        raise RecordNotFound(f"consultation {consultation_id}")
    return dict(rows[0])


def viewable_study(db: sqlite_utils.Database, study_uid: str, scope: Scope) -> dict[str, Any]:
    """The in-scope consultation of a study (by DICOM UID) holding images of its own: the key
    to them. A study belongs to one facility, so this is that facility's consultation."""
    where, params = scope.where("c")
    rows = list(
        db.query(
            f"{_CONSULTATION} WHERE c.study_instance_uid = ? AND c.orthanc_study_id IS NOT NULL"
            f" AND {where} ORDER BY c.id LIMIT 1",
            [study_uid, *params],
        )
    )
    if not rows:
        raise RecordNotFound(f"study {study_uid}")
    return dict(rows[0])


def priors(
    db: sqlite_utils.Database, patient_id: str, consultation_id: int, scope: Scope
) -> list[dict[str, Any]]:
    """Other consultations of the same person the caller may see, at any linked facility (the
    master patient index, service/storage/linked_priors.py), with images, newest study first.

    ``disagrees`` names what of name, birth date and sex differs from the current study's: the
    viewer warns about it. ``patient_id`` is the caller's (the study's own); the index is keyed
    by the consultation's."""
    try:
        current = current_consultation(db, consultation_id, scope)
    except RecordNotFound:
        return []
    if not (patient_id or current["local_patient_id"]):
        return []
    rows = linked_consultations(db, current, scope, with_images=True, limit=200)
    return [
        {
            "consultation_id": row["consultation_id"],
            "study_uid": row["study_instance_uid"],
            "date": row["study_date"],
            "modality": row["modality"],
            "body_part": row["body_part"],
            "description": row["study_description"],
            "facility_name": row["facility_name"],
            "demographics_agree": not row["disagrees"],
            "disagrees": row["disagrees"],
        }
        for row in rows
    ][:50]


def open_study(
    db: sqlite_utils.Database,
    opening: Opening,
    opened_at: str,
    entry: AuditEntry | None = None,
    *,
    prune_before: str | None = None,
) -> bool:
    """Record ``opening``; True if it is the first (no process had recorded it yet).

    ``entry`` (the ``study.viewed`` record) is appended only by the first, in this same
    transaction, so however many processes race to serve a session's first frame of a study
    exactly one audits it. ``prune_before``: forget openings recorded before then first (the
    caller passes a day ago, at most once a minute); the next access after that is audited
    afresh.
    """
    if prune_before is not None:
        db.execute("DELETE FROM study_openings WHERE opened_at < ?", [prune_before])
    cursor = db.execute(
        "INSERT INTO study_openings"
        " (user_id, session_id, api_token_id, study_instance_uid, opened_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [*opening, opened_at],
    )
    first = cursor.rowcount == 1
    if first and entry is not None:
        append_audit(db, entry)
    return first


LAYOUT_KEEP_SECONDS = 3600.0
# A stable layout (built by the ingest) is kept a week: a study sent on Friday evening is often
# first opened on Monday. About 0.6 kB per instance (a 150-slice CT: 94 kB).
STABLE_LAYOUT_KEEP_SECONDS = 7 * 24 * 3600.0


def study_layout(db: sqlite_utils.Database, study_uid: str) -> dict[str, Any] | None:
    """The stored layout of a study (``orthanc_study_id``, ``built_at`` epoch seconds,
    ``stable``, ``layout`` JSON), or None."""
    rows = list(
        db.query(
            "SELECT orthanc_study_id, built_at, stable, layout FROM study_layouts"
            " WHERE study_instance_uid = ?",
            [study_uid],
        )
    )
    return dict(rows[0]) if rows else None


def save_study_layout(
    db: sqlite_utils.Database,
    study_uid: str,
    orthanc_study_id: str,
    built_at: float,
    layout: str,
    stable: bool = False,
) -> None:
    """Store (or replace) a study's layout, and drop layouts older than an hour (a week for
    those built when their study became stable)."""
    db.execute(
        "INSERT INTO study_layouts (study_instance_uid, orthanc_study_id, built_at, stable, layout)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT(study_instance_uid) DO UPDATE SET"
        " orthanc_study_id = excluded.orthanc_study_id, built_at = excluded.built_at,"
        " stable = excluded.stable, layout = excluded.layout",
        [study_uid, orthanc_study_id, built_at, int(stable), layout],
    )
    db.execute(
        "DELETE FROM study_layouts WHERE built_at < ? AND (stable = 0 OR built_at < ?)",
        [built_at - LAYOUT_KEEP_SECONDS, built_at - STABLE_LAYOUT_KEEP_SECONDS],
    )
