"""The viewer's queries: which study a caller may open, and the patient's other consultations.

Facility scope is part of every query (service/storage/scope.py): a study outside the caller's
reach is simply not found, exactly like a study that does not exist.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from .database import RecordNotFound
from .scope import Scope

_CONSULTATION = """
    SELECT c.id, c.facility_id, c.study_instance_uid,
           COALESCE(c.orthanc_study_id, s.orthanc_id) AS orthanc_study_id,
           c.patient_id, c.patient_name, c.modality, f.name AS facility_name
    FROM consultations c
    JOIN facilities f ON f.id = c.facility_id
    LEFT JOIN studies s ON s.study_instance_uid = c.study_instance_uid
"""


def viewable_consultation(
    db: sqlite_utils.Database, consultation_id: int, scope: Scope
) -> dict[str, Any]:
    """The consultation the viewer opens, if in scope and its images have arrived."""
    where, params = scope.where("c")
    rows = list(db.query(f"{_CONSULTATION} WHERE c.id = ? AND {where}", [consultation_id, *params]))
    if not rows or not rows[0]["orthanc_study_id"]:
        raise RecordNotFound(f"consultation {consultation_id}")
    return dict(rows[0])


def viewable_study(db: sqlite_utils.Database, study_uid: str, scope: Scope) -> dict[str, Any]:
    """One in-scope consultation of a study (by DICOM UID): the key to its images."""
    where, params = scope.where("c")
    rows = list(
        db.query(
            f"{_CONSULTATION} WHERE c.study_instance_uid = ? AND {where} ORDER BY c.id LIMIT 1",
            [study_uid, *params],
        )
    )
    if not rows or not rows[0]["orthanc_study_id"]:
        raise RecordNotFound(f"study {study_uid}")
    return dict(rows[0])


def priors(
    db: sqlite_utils.Database, patient_id: str, consultation_id: int, scope: Scope
) -> list[dict[str, Any]]:
    """Other consultations of the same patient ID the caller may see, newest study first."""
    if not patient_id:
        return []
    where, params = scope.where("c")
    rows = db.query(
        f"""
        SELECT c.id AS consultation_id, c.study_instance_uid AS study_uid,
               COALESCE(s.study_date, '') AS date, c.modality,
               COALESCE(s.study_description, '') AS description, f.name AS facility_name
        FROM consultations c
        JOIN facilities f ON f.id = c.facility_id
        LEFT JOIN studies s ON s.study_instance_uid = c.study_instance_uid
        WHERE c.patient_id = ? AND c.id != ? AND {where}
        ORDER BY COALESCE(s.study_date, '') DESC, c.id DESC
        LIMIT 50
        """,
        [patient_id, consultation_id, *params],
    )
    return [dict(row) for row in rows]
