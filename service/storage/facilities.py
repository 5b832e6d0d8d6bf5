"""Facilities: township clinics, county hospitals and the regional centre, known by AE title."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ..clock import to_iso, utc_now
from .database import Conflict, RecordNotFound

FACILITY_KINDS = ("township", "county", "regional")
#: DICOM Specific Character Set values a facility's modalities may use (worklist items carry it;
#: HL7 messages to the facility use the matching MSH-18 name).
CHARACTER_SETS = {"ISO_IR 192": "UNICODE UTF-8", "GB18030": "GB 18030"}
DEFAULT_CHARACTER_SET = "ISO_IR 192"
#: An HL7 v2 namespace ID (HD.1 of MSH-4) as hospital systems configure them, and the MLLP
#: address results go to.
HL7_CODE_PATTERN = r"^[A-Za-z0-9_.\-]{1,20}$"
HL7_ENDPOINT_PATTERN = r"^[A-Za-z0-9.\-]{1,253}:[0-9]{1,5}$"


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
    hl7_code: str | None = None,
    hl7_endpoint: str | None = None,
    character_set: str = DEFAULT_CHARACTER_SET,
) -> int:
    if db.execute("SELECT 1 FROM facilities WHERE aet = ?", [aet]).fetchone():
        raise Conflict("aet_taken", f"AE title {aet!r} is already registered")
    _refuse_taken_hl7_code(db, hl7_code, None)
    cursor = db.execute(
        "INSERT INTO facilities (name, kind, aet, timezone, contact, dicom_host, dicom_port,"
        " hl7_code, hl7_endpoint, character_set, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            name, kind, aet, timezone, contact, dicom_host, dicom_port,
            hl7_code, hl7_endpoint, character_set, to_iso(utc_now()),
        ],
    )  # fmt: skip
    return int(cursor.lastrowid)


def _refuse_taken_hl7_code(
    db: sqlite_utils.Database, hl7_code: str | None, facility_id: int | None
) -> None:
    """An HL7 code names one facility: neither another's code nor another's AE title, which
    MSH-4 may carry instead (:func:`facility_by_hl7_code`)."""
    if not hl7_code:
        return
    row = db.execute(
        "SELECT id FROM facilities WHERE (hl7_code = ? OR aet = ?) AND id IS NOT ?",
        [hl7_code, hl7_code, facility_id],
    ).fetchone()
    if row is not None:
        raise Conflict("hl7_code_taken", f"HL7 code {hl7_code!r} already names facility {row[0]}")


def get_facility(db: sqlite_utils.Database, facility_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM facilities WHERE id = ?", [facility_id]).fetchone()
    if row is None:
        raise RecordNotFound(f"facility {facility_id}")
    return dict(row)


def facility_by_aet(db: sqlite_utils.Database, aet: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM facilities WHERE aet = ?", [aet.strip()]).fetchone()
    return dict(row) if row else None


def facility_by_hl7_code(db: sqlite_utils.Database, code: str) -> dict[str, Any] | None:
    """The facility an HL7 sender names in MSH-4: its HL7 code if one has it, else its AE title."""
    code = code.strip()
    if not code:
        return None
    row = db.execute(
        "SELECT * FROM facilities WHERE hl7_code = ? OR aet = ?"
        " ORDER BY hl7_code = ? DESC, id LIMIT 1",
        [code, code, code],
    ).fetchone()
    return dict(row) if row else None


def list_facilities(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute("SELECT * FROM facilities ORDER BY id")]


_EDITABLE = (
    "name", "kind", "aet", "timezone", "contact", "dicom_host", "dicom_port",
    "hl7_code", "hl7_endpoint", "character_set",
)  # fmt: skip


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
    if "hl7_code" in changes:
        _refuse_taken_hl7_code(db, changes["hl7_code"], facility_id)
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
