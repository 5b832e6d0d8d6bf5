"""Migration m004's indexing of the audit records written before it, frozen as of m004.

Which patients a record concerns, by the rule of that day (``append_audit`` applies the live
rule to every record written since: service/storage/audit.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlite_utils


def patient_ids(patient_id: str, detail: Mapping[str, Any]) -> list[str]:
    """Its ``patient_id`` (also split on commas, as uploads join several) and the ids a query
    listed in ``detail["patients"]``; sorted, no repeats."""
    found: set[str] = set()
    if patient_id:
        found.add(patient_id)
        found.update(part.strip() for part in patient_id.split(","))
    listed = detail.get("patients")
    if isinstance(listed, list):
        found.update(p for p in listed if isinstance(p, str))
    found.discard("")
    return sorted(found)


def index_existing_records(db: sqlite_utils.Database) -> None:
    """An ``audit_patients`` row for each patient of each record already written."""
    after = 0
    while rows := db.execute(
        "SELECT id, patient_id, detail FROM audit_log WHERE id > ? ORDER BY id LIMIT 1000", [after]
    ).fetchall():
        for audit_id, patient_id, detail in rows:
            db.conn.executemany(
                "INSERT INTO audit_patients (audit_id, patient_id) VALUES (?, ?)",
                [(audit_id, p) for p in patient_ids(patient_id, json.loads(detail))],
            )
        after = rows[-1][0]
