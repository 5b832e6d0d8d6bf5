"""The report editor's priors: signed reports of other consultations of the same patient.

Facility scope is part of the query (service/storage/scope.py). Candidates share the
consultation's facility and Patient ID; service/dicom/patient_identity.py then keeps only those
whose birth date or name confirms the match, so two patients sharing an ID are never paired.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ..dicom.patient_identity import PatientKey, same_patient
from .database import RecordNotFound
from .scope import Scope

_PATIENT = """
    SELECT c.id, c.facility_id, c.study_instance_uid,
           COALESCE(NULLIF(s.patient_id, ''), c.patient_id) AS patient_id,
           COALESCE(NULLIF(s.patient_name, ''), c.patient_name) AS patient_name,
           COALESCE(s.patient_birth_date, '') AS birth_date
    FROM consultations c
    LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id
"""


def _key(row: dict[str, Any]) -> PatientKey:
    return PatientKey(row["facility_id"], row["patient_id"], row["birth_date"], row["patient_name"])


def consultation_patient(
    db: sqlite_utils.Database, consultation_id: int, scope: Scope
) -> dict[str, Any]:
    """The consultation's patient (ID, name, birth date), if the caller may see it."""
    where, params = scope.where("c")
    rows = list(db.query(f"{_PATIENT} WHERE c.id = ? AND {where}", [consultation_id, *params]))
    if not rows:
        raise RecordNotFound(f"consultation {consultation_id}")
    return dict(rows[0])


def signed_priors(
    db: sqlite_utils.Database, consultation_id: int, scope: Scope, limit: int = 20
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The consultation's patient, and the latest signed version of each other consultation of
    the same patient the caller may see, newest signature first."""
    current = consultation_patient(db, consultation_id, scope)
    if not current["patient_id"]:
        return current, []
    where, params = scope.where("c")
    rows = db.query(
        f"""
        SELECT c.id AS consultation_id, c.facility_id, c.modality, c.body_part,
               COALESCE(NULLIF(s.patient_id, ''), c.patient_id) AS patient_id,
               COALESCE(NULLIF(s.patient_name, ''), c.patient_name) AS patient_name,
               COALESCE(s.patient_birth_date, '') AS birth_date,
               COALESCE(s.study_date, '') AS study_date,
               COALESCE(s.study_description, '') AS study_description,
               v.version, v.signed_at, v.signer_name, v.impression, v.critical
        FROM consultations c
        LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id
        JOIN reports r ON r.consultation_id = c.id AND r.signed_versions > 0
        JOIN report_versions v ON v.report_id = r.id AND v.version = r.signed_versions
        WHERE c.facility_id = ? AND c.patient_id = ? AND c.id != ? AND {where}
        ORDER BY v.signed_at DESC, c.id DESC
        LIMIT ?
        """,
        [current["facility_id"], current["patient_id"], consultation_id, *params, limit],
    )
    key = _key(current)
    return current, [dict(row) for row in rows if same_patient(key, _key(dict(row)))]
