"""Facilities: township clinics, county hospitals and the regional centre, known by AE title."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ..clock import to_iso, utc_now
from .database import Conflict, RecordNotFound

FACILITY_KINDS = ("township", "county", "regional")


def add_facility(
    db: sqlite_utils.Database,
    *,
    name: str,
    kind: str,
    aet: str,
    timezone: str,
    contact: str = "",
    dicom_host: str | None = None,
    dicom_port: int | None = None,
) -> int:
    if db.execute("SELECT 1 FROM facilities WHERE aet = ?", [aet]).fetchone():
        raise Conflict("aet_taken", f"AE title {aet!r} is already registered")
    cursor = db.execute(
        "INSERT INTO facilities (name, kind, aet, timezone, contact, dicom_host, dicom_port,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [name, kind, aet, timezone, contact, dicom_host, dicom_port, to_iso(utc_now())],
    )
    return int(cursor.lastrowid)


def get_facility(db: sqlite_utils.Database, facility_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM facilities WHERE id = ?", [facility_id]).fetchone()
    if row is None:
        raise RecordNotFound(f"facility {facility_id}")
    return dict(row)


def facility_by_aet(db: sqlite_utils.Database, aet: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM facilities WHERE aet = ?", [aet.strip()]).fetchone()
    return dict(row) if row else None


def list_facilities(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute("SELECT * FROM facilities ORDER BY id")]


_EDITABLE = ("name", "kind", "aet", "timezone", "contact", "dicom_host", "dicom_port")


def update_facility(db: sqlite_utils.Database, facility_id: int, **changes: Any) -> None:
    """Set some of the editable columns; a new AE title must be free (``aet_taken``)."""
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if (
        "aet" in changes
        and db.execute(
            "SELECT 1 FROM facilities WHERE aet = ? AND id != ?", [changes["aet"], facility_id]
        ).fetchone()
    ):
        raise Conflict("aet_taken", f"AE title {changes['aet']!r} is already registered")
    get_facility(db, facility_id)
    if not changes:
        return
    assignments = ", ".join(f"{column} = ?" for column in changes)
    db.execute(
        f"UPDATE facilities SET {assignments} WHERE id = ?", [*changes.values(), facility_id]
    )


def facility_of_consultation(db: sqlite_utils.Database, consultation_id: int) -> dict[str, Any]:
    """The facility that sent a consultation (its DICOM node, for delivery); empty if none."""
    row = db.execute(
        "SELECT f.* FROM facilities f JOIN consultations c ON c.facility_id = f.id WHERE c.id = ?",
        [consultation_id],
    ).fetchone()
    return dict(row) if row else {}
