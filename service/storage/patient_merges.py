"""Patient merges (migration m031): the merge, the consultations it rewrote, and its reversal.

The rules (which consultations, which fields, what a reversal restores) are in
:mod:`service.intake.patient_merges`; this module only reads and writes the rows.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from .database import RecordNotFound

PATIENT_FIELDS = ("patient_id", "patient_name", "patient_birth_date", "patient_sex")
"""The consultation columns a merge may rewrite."""


def consultations_of_patient(
    db: sqlite_utils.Database, facility_id: int, patient_id: str
) -> list[dict[str, Any]]:
    """The facility's consultations (open or finished) filed under this patient id."""
    columns = ", ".join(("id", *PATIENT_FIELDS))
    return [
        dict(row)
        for row in db.execute(
            f"SELECT {columns} FROM consultations WHERE facility_id = ? AND patient_id = ?"
            " ORDER BY id",
            [facility_id, patient_id],
        )
    ]


def patient_fields(db: sqlite_utils.Database, consultation_id: int) -> dict[str, Any]:
    """A consultation's patient columns as they are now."""
    columns = ", ".join(PATIENT_FIELDS)
    row = db.execute(
        f"SELECT {columns} FROM consultations WHERE id = ?", [consultation_id]
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"consultation {consultation_id}")
    return dict(row)


def insert_merge(db: sqlite_utils.Database, values: dict[str, Any]) -> int:
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    cursor = db.execute(
        f"INSERT INTO patient_merges ({columns}) VALUES ({marks})", list(values.values())
    )
    return int(cursor.lastrowid)


def insert_change(
    db: sqlite_utils.Database,
    merge_id: int,
    consultation_id: int,
    prior_values: dict[str, Any],
    merged_values: dict[str, Any],
) -> None:
    db.execute(
        "INSERT INTO patient_merge_changes"
        " (merge_id, consultation_id, prior_values, merged_values) VALUES (?, ?, ?, ?)",
        [
            merge_id,
            consultation_id,
            json.dumps(prior_values, ensure_ascii=False, sort_keys=True),
            json.dumps(merged_values, ensure_ascii=False, sort_keys=True),
        ],
    )


def get_merge(db: sqlite_utils.Database, merge_id: int) -> dict[str, Any]:
    """One merge with its facility's name and the consultations it changed."""
    row = db.execute(f"{_MERGES} WHERE m.id = ?", [merge_id]).fetchone()
    if row is None:
        raise RecordNotFound(f"patient merge {merge_id}")
    return dict(row) | {"changes": changes_of(db, merge_id)}


def changes_of(db: sqlite_utils.Database, merge_id: int) -> list[dict[str, Any]]:
    """The consultations a merge rewrote, each with its values before and the merge's own."""
    return [
        {
            "consultation_id": row["consultation_id"],
            "prior_values": json.loads(row["prior_values"]),
            "merged_values": json.loads(row["merged_values"]),
        }
        for row in db.execute(
            "SELECT * FROM patient_merge_changes WHERE merge_id = ? ORDER BY consultation_id",
            [merge_id],
        )
    ]


def mark_reversed(
    db: sqlite_utils.Database, merge_id: int, reversed_at: str, reversed_by: int | None
) -> bool:
    """Mark the merge reversed; False if it already was (nothing written)."""
    cursor = db.execute(
        "UPDATE patient_merges SET reversed_at = ?, reversed_by = ?"
        " WHERE id = ? AND reversed_at IS NULL",
        [reversed_at, reversed_by, merge_id],
    )
    return cursor.rowcount == 1


_MERGES = """
    SELECT m.*, f.name AS facility_name, f.aet AS facility_aet,
           (SELECT COUNT(*) FROM patient_merge_changes x WHERE x.merge_id = m.id)
               AS consultations_changed,
           (SELECT COALESCE(NULLIF(u.display_name, ''), u.username) FROM users u
             WHERE u.id = m.reversed_by) AS reversed_by_name
    FROM patient_merges m
    JOIN facilities f ON f.id = m.facility_id
"""


def list_merges(
    db: sqlite_utils.Database, *, facility_id: int | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Merges newest first (of one facility, or all), each with the ids it changed."""
    where, params = ("WHERE m.facility_id = ?", [facility_id]) if facility_id else ("", [])
    rows = [
        dict(row)
        for row in db.execute(
            f"{_MERGES} {where} ORDER BY m.merged_at DESC, m.id DESC LIMIT ?", [*params, limit]
        )
    ]
    ids = _consultation_ids(db, [row["id"] for row in rows])
    return [row | {"consultation_ids": ids.get(row["id"], [])} for row in rows]


def _consultation_ids(db: sqlite_utils.Database, merge_ids: list[int]) -> dict[int, list[int]]:
    if not merge_ids:
        return {}
    marks = ", ".join("?" for _ in merge_ids)
    found: dict[int, list[int]] = {}
    for merge_id, consultation_id in db.execute(
        f"SELECT merge_id, consultation_id FROM patient_merge_changes"
        f" WHERE merge_id IN ({marks}) ORDER BY merge_id, consultation_id",
        merge_ids,
    ):
        found.setdefault(merge_id, []).append(consultation_id)
    return found
