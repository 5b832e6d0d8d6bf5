"""Priors across facilities (issue 21 item 2): the other consultations of the person a
consultation's patient belongs to, found through the master patient index's linked local
identities (:data:`.patients.LINKED_IDENTITIES`) instead of a shared Patient ID.

Three readers use them: the worklist's prior count, the report editor's prior reports and the
viewer's Compare list. All three keep to the caller's scope (in the query) and to one rule of
who is the same person (service/dicom/patient_identity.py ``same_person_linked``): the link
decides across identities; under one facility's very same Patient ID, where the index cannot
tell two people apart, the name or birth date must confirm it as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlite_utils

from ..dicom.patient_identity import PatientKey, disagreements, same_person_linked
from .database import RecordNotFound
from .patients import LINKED_IDENTITIES, linked_parameters
from .scope import Scope

_COLUMNS = """
    c.id AS consultation_id, c.facility_id, f.name AS facility_name, c.study_instance_uid,
    c.orthanc_study_id, c.modality, c.body_part, c.patient_id AS local_patient_id,
    COALESCE(NULLIF(s.patient_id, ''), c.patient_id) AS patient_id,
    COALESCE(NULLIF(s.patient_name, ''), c.patient_name, '') AS patient_name,
    COALESCE(NULLIF(s.patient_birth_date, ''), c.patient_birth_date, '') AS birth_date,
    COALESCE(NULLIF(s.patient_sex, ''), c.patient_sex, '') AS sex,
    COALESCE(s.study_date, '') AS study_date,
    COALESCE(s.study_description, '') AS study_description,
    COALESCE(c.received_at, c.requested_at, c.created_at) AS performed_at
"""
"""One consultation as the three readers compare it: the study's own demographics first (what
the images say), the consultation's when the images have not arrived."""

_FROM = """
    FROM consultations c
    JOIN facilities f ON f.id = c.facility_id
    LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id
"""

_SIGNED = """
    , v.version, v.signed_at, v.signer_name, v.findings, v.impression, v.critical,
    COALESCE(rec.status, '') AS recognition
"""
_SIGNED_JOINS = """
    JOIN reports r ON r.consultation_id = c.id AND r.signed_versions > 0
    JOIN report_versions v ON v.report_id = r.id AND v.version = r.signed_versions
    LEFT JOIN recognition rec ON rec.facility_id = c.facility_id
        AND rec.modality = c.modality AND rec.body_part = c.body_part
"""
"""The latest signed version's text and whether the reading facility is on the recognition list
(service/storage/recognition.py) for that exam item (facility, modality, body part)."""


def key_of(row: dict[str, Any]) -> PatientKey:
    """What a row (of :data:`_COLUMNS`) says of its patient, under its local Patient ID."""
    return PatientKey(
        row["facility_id"],
        row["local_patient_id"] or row["patient_id"],
        row["birth_date"] or "",
        row["patient_name"] or "",
        row["sex"] or "",
    )


def performed_key(row: dict[str, Any]) -> tuple[str, str]:
    """When a consultation's study was performed, comparable across rows: the DICOM study date,
    else the day its images arrived (or it was requested), then that time."""
    day = row["study_date"] or (row["performed_at"] or "")[:10].replace("-", "")
    return day, row["performed_at"] or ""


def current_consultation(
    db: sqlite_utils.Database, consultation_id: int, scope: Scope
) -> dict[str, Any]:
    """The consultation priors are sought for, if the caller may see it."""
    where, params = scope.where("c")
    rows = list(
        db.query(
            f"SELECT {_COLUMNS} {_FROM} WHERE c.id = ? AND {where}", [consultation_id, *params]
        )
    )
    if not rows:
        raise RecordNotFound(f"consultation {consultation_id}")
    return dict(rows[0])


def linked_consultations(
    db: sqlite_utils.Database,
    current: dict[str, Any],
    scope: Scope,
    *,
    signed: bool = False,
    with_images: bool = False,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The other consultations of ``current``'s person the caller may see, newest study first,
    each with ``disagrees`` (which of name, birth date and sex differ from the current's).

    ``signed``: only those with a signed report, with its latest version's text and the
    recognition status; ``with_images``: only those whose own images arrived."""
    if not (current["local_patient_id"] or "").strip():
        return []
    where, params = scope.where("c")
    extra = " AND c.orthanc_study_id IS NOT NULL" if with_images else ""
    rows = db.query(
        f"""
        WITH {LINKED_IDENTITIES}
        SELECT {_COLUMNS} {_SIGNED if signed else ""}
        FROM linked l
        JOIN consultations c ON c.facility_id = l.facility_id AND c.patient_id = l.patient_id
        JOIN facilities f ON f.id = c.facility_id
        LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id
        {_SIGNED_JOINS if signed else ""}
        WHERE c.id != ? AND {where}{extra}
        ORDER BY COALESCE(s.study_date, '') DESC, c.id DESC
        LIMIT ?
        """,
        [
            *linked_parameters(current["facility_id"], current["local_patient_id"]),
            current["consultation_id"],
            *params,
            limit,
        ],
    )
    return _same_person(current, (dict(row) for row in rows))


def _same_person(current: dict[str, Any], rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    mine = key_of(current)
    found = []
    for row in rows:
        theirs = key_of(row)
        if same_person_linked(mine, theirs):
            found.append(row | {"disagrees": list(disagreements(mine, theirs))})
    return found


_LEAN = """
    c.facility_id, c.patient_id,
    COALESCE(NULLIF(s.patient_birth_date, ''), c.patient_birth_date, ''),
    COALESCE(NULLIF(s.patient_name, ''), c.patient_name, ''),
    COALESCE(NULLIF(s.patient_sex, ''), c.patient_sex, ''),
    COALESCE(
        NULLIF(s.study_date, ''),
        REPLACE(SUBSTR(COALESCE(c.received_at, c.requested_at, c.created_at), 1, 10), '-', '')
    ),
    COALESCE(c.received_at, c.requested_at, c.created_at)
"""
""":data:`_COLUMNS`' patient and :func:`performed_key` as plain values, for the worklist's count:
a page asks it on every refresh, and dicts of every column cost more than the query."""


def prior_counts(
    db: sqlite_utils.Database, scope: Scope, consultation_ids: Iterable[int]
) -> dict[int, int]:
    """For each consultation (a worklist page's), how many studies of the same person the caller
    may see were performed before it and have images: two queries for the whole page."""
    ids = list(dict.fromkeys(consultation_ids))
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    currents = {
        row[0]: tuple(row)[1:]
        for row in db.execute(
            f"SELECT c.id, {_LEAN} FROM consultations c"
            f" LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id WHERE c.id IN ({marks})",
            ids,
        )
    }
    where, params = scope.where("c")
    # Two arms, not a join on a materialised set of linked pairs: that shape took ~60 ms at
    # 100,000 consultations, this one ~0.3 ms (a page of 50; measured with bench/worklist.py's
    # data plus an index of its patients).
    candidates = db.execute(
        f"""
        WITH cur(id, facility_id, patient_id) AS (
            SELECT id, facility_id, patient_id FROM consultations
            WHERE id IN ({marks}) AND patient_id != ''
        )
        SELECT cur.id, {_LEAN}
        FROM cur
        JOIN patient_identities me
            ON me.facility_id = cur.facility_id AND me.patient_id = cur.patient_id
        JOIN patient_identities o ON o.person_id = me.person_id
        JOIN consultations c ON c.facility_id = o.facility_id AND c.patient_id = o.patient_id
        LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id
        WHERE c.id != cur.id AND c.orthanc_study_id IS NOT NULL AND {where}
        UNION ALL
        SELECT cur.id, {_LEAN}
        FROM cur
        JOIN consultations c ON c.facility_id = cur.facility_id AND c.patient_id = cur.patient_id
        LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id
        WHERE c.id != cur.id AND c.orthanc_study_id IS NOT NULL AND {where}
          AND NOT EXISTS (
              SELECT 1 FROM patient_identities x
              WHERE x.facility_id = cur.facility_id AND x.patient_id = cur.patient_id
          )
        """,
        [*ids, *params, *params],
    )
    counts = dict.fromkeys(ids, 0)
    for current_id, *row in candidates:
        current = currents[current_id]
        if tuple(row[5:]) < current[5:] and same_person_linked(
            PatientKey(*current[:5]), PatientKey(*row[:5])
        ):
            counts[current_id] += 1
    return counts
