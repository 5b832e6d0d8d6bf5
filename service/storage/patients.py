"""The master patient index's rows (migration m042): local identities, the persons they belong
to, their national identifiers, and every link and unlink.

What links automatically is decided here in one place, inside the caller's transaction, so
that an identity is never half linked: two identities are one person when they carry the same
checked national identifier that neither disputes, unless an administrator separated them
(``patient_link_blocks``). Checking the identifiers is :mod:`service.identity_numbers`' job;
the caller passes only identifiers that passed it.

Reads for other storage modules: :data:`LINKED_IDENTITIES` is a CTE naming every local identity
(facility, Patient ID) of the person a (facility, Patient ID) belongs to, or that pair alone
when it is not indexed yet, so a query joins consultations to it instead of matching on
Patient ID.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from ..clock import to_iso, utc_now
from ..identity_numbers import Identifier, contradiction
from .database import RecordNotFound

LINKED_IDENTITIES = """
    linked(facility_id, patient_id) AS (
        SELECT o.facility_id, o.patient_id
        FROM patient_identities me
        JOIN patient_identities o ON o.person_id = me.person_id
        WHERE me.facility_id = ? AND me.patient_id = ?
        UNION
        SELECT ?, ?
    )
"""
"""A CTE (without ``WITH``) taking :func:`linked_parameters` first: the local identities of that
patient's person, the pair itself always included."""


def linked_parameters(facility_id: int, patient_id: str) -> list[Any]:
    """The positional parameters of :data:`LINKED_IDENTITIES`."""
    return [facility_id, patient_id, facility_id, patient_id]


@dataclass(frozen=True)
class LocalPatient:
    """What one facility's record says of its patient."""

    facility_id: int
    patient_id: str
    name: str = ""
    birth_date: str = ""
    sex: str = ""


@dataclass(frozen=True)
class Recorded:
    """The outcome of recording a local identity: its id, its person, and the link changes the
    identifiers made (ids of ``patient_link_changes`` rows)."""

    identity_id: int
    person_id: int
    links: tuple[int, ...] = ()
    disputed: tuple[str, ...] = ()


def record_local_identity(
    db: sqlite_utils.Database,
    patient: LocalPatient,
    identifiers: Iterable[Identifier] = (),
    source: str = "",
) -> Recorded:
    """Index a facility's patient (insert, or refresh the demographics it last sent) and the
    checked national identifiers it carried; link it with every other identity carrying one of
    them. Call inside a write transaction. Blank Patient IDs are not indexed (RecordNotFound)."""
    if not patient.patient_id.strip():
        raise RecordNotFound("a patient without a Patient ID is not indexed")
    now = to_iso(utc_now())
    identity = _upsert_identity(db, patient, now)
    links: list[int] = []
    disputed: list[str] = []
    for identifier in dict.fromkeys(identifiers):
        problem = contradiction(identifier, patient.birth_date, patient.sex)
        db.execute(
            """
            INSERT INTO patient_identifiers (identity_id, system, value, source, disputed,
                recorded_at) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (identity_id, system, value) DO UPDATE SET disputed = excluded.disputed
            """,
            [identity["id"], identifier.system, identifier.value, source, problem or "", now],
        )
        if problem:
            disputed.append(problem)
            continue
        links.extend(_link_by_identifier(db, identity["id"], identifier, now))
    person_id = db.execute(
        "SELECT person_id FROM patient_identities WHERE id = ?", [identity["id"]]
    ).fetchone()[0]
    return Recorded(identity["id"], person_id, tuple(links), tuple(disputed))


def _upsert_identity(db: sqlite_utils.Database, patient: LocalPatient, now: str) -> dict:
    row = db.execute(
        "SELECT id, person_id, name, birth_date, sex FROM patient_identities"
        " WHERE facility_id = ? AND patient_id = ?",
        [patient.facility_id, patient.patient_id],
    ).fetchone()
    if row is None:
        person = db.execute("INSERT INTO patient_persons (created_at) VALUES (?)", [now]).lastrowid
        cursor = db.execute(
            """
            INSERT INTO patient_identities (facility_id, patient_id, person_id, name,
                birth_date, sex, first_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                patient.facility_id,
                patient.patient_id,
                person,
                patient.name,
                patient.birth_date,
                patient.sex,
                now,
                now,
            ],  # fmt: skip
        )
        return {"id": cursor.lastrowid, "person_id": person}
    identity_id, person_id, name, birth_date, sex = row
    fresh = (patient.name or name, patient.birth_date or birth_date, patient.sex or sex)
    if fresh != (name, birth_date, sex):
        db.execute(
            "UPDATE patient_identities SET name = ?, birth_date = ?, sex = ?, updated_at = ?"
            " WHERE id = ?",
            [*fresh, now, identity_id],
        )
    return {"id": identity_id, "person_id": person_id}


def _link_by_identifier(
    db: sqlite_utils.Database, identity_id: int, identifier: Identifier, now: str
) -> list[int]:
    """Join the persons of every other identity carrying this identifier (undisputed) into this
    identity's person, skipping a person an administrator separated from it."""
    others = db.execute(
        """
        SELECT DISTINCT i.id, i.person_id FROM patient_identifiers x
        JOIN patient_identities i ON i.id = x.identity_id
        WHERE x.system = ? AND x.value = ? AND x.disputed = '' AND x.identity_id != ?
        ORDER BY i.id
        """,
        [identifier.system, identifier.value, identity_id],
    ).fetchall()
    changes = []
    for other_id, _ in others:
        mine = _person_of(db, identity_id)
        theirs = _person_of(db, other_id)
        if mine == theirs or persons_blocked(db, mine, theirs):
            continue
        changes.append(
            merge_persons(db, identity_id, other_id, "identifier", None, "", now, identifier.system)
        )
    return changes


def _person_of(db: sqlite_utils.Database, identity_id: int) -> int:
    row = db.execute("SELECT person_id FROM patient_identities WHERE id = ?", [identity_id])
    found = row.fetchone()
    if found is None:
        raise RecordNotFound(f"patient identity {identity_id}")
    return int(found[0])


def _members(db: sqlite_utils.Database, person_id: int) -> list[int]:
    return [
        r[0]
        for r in db.execute(
            "SELECT id FROM patient_identities WHERE person_id = ? ORDER BY id", [person_id]
        )
    ]


def persons_blocked(db: sqlite_utils.Database, person_a: int, person_b: int) -> bool:
    """True when an administrator separated any identity of one person from one of the other."""
    row = db.execute(
        """
        SELECT 1 FROM patient_link_blocks b
        JOIN patient_identities x ON x.id = b.identity_id
        JOIN patient_identities y ON y.id = b.other_identity_id
        WHERE (x.person_id = ? AND y.person_id = ?) OR (x.person_id = ? AND y.person_id = ?)
        LIMIT 1
        """,
        [person_a, person_b, person_b, person_a],
    ).fetchone()
    return row is not None


def merge_persons(
    db: sqlite_utils.Database,
    identity_id: int,
    other_identity_id: int,
    method: str,
    actor_id: int | None,
    reason: str,
    now: str | None = None,
    identifier_system: str = "",
) -> int:
    """Put both identities' persons into one: the older person (lower id) survives and the
    other's identities move into it. Records and returns the ``patient_link_changes`` row."""
    now = now or to_iso(utc_now())
    a, b = _person_of(db, identity_id), _person_of(db, other_identity_id)
    if a == b:
        raise ValueError("both identities already belong to one person")
    survivor, retired = min(a, b), max(a, b)
    moved = _members(db, retired)
    db.execute(
        "UPDATE patient_identities SET person_id = ? WHERE person_id = ?", [survivor, retired]
    )
    return _change(
        db, "link", method, identity_id, other_identity_id, retired, survivor, moved,
        identifier_system, actor_id, reason, now,
    )  # fmt: skip


def separate_identity(
    db: sqlite_utils.Database, identity_id: int, actor_id: int | None, reason: str
) -> int:
    """Take one identity out of its person into a person of its own, and block every automatic
    link between it and the identities it leaves. Returns the change's id."""
    now = to_iso(utc_now())
    person = _person_of(db, identity_id)
    left = [i for i in _members(db, person) if i != identity_id]
    if not left:
        raise ValueError("the identity is not linked to any other")
    fresh = db.execute("INSERT INTO patient_persons (created_at) VALUES (?)", [now]).lastrowid
    db.execute("UPDATE patient_identities SET person_id = ? WHERE id = ?", [fresh, identity_id])
    change = _change(
        db, "unlink", "administrator", identity_id, None, person, fresh, [identity_id], "",
        actor_id, reason, now,
    )  # fmt: skip
    for other in left:
        db.execute(
            "INSERT OR IGNORE INTO patient_link_blocks (identity_id, other_identity_id,"
            " change_id) VALUES (?, ?, ?)",
            [identity_id, other, change],
        )
    return change


def reverse_change(
    db: sqlite_utils.Database, change_id: int, actor_id: int | None, reason: str
) -> int:
    """Undo a link or unlink: the identities it moved go back to the person they came from
    (created again if it no longer exists), an unlink's blocks are lifted. Raises ValueError
    when the change was already reversed or is itself a reversal."""
    change = get_change(db, change_id)
    if change["reversed_by"] is not None or change["method"] == "reversal":
        raise ValueError(f"link change {change_id} cannot be reversed again")
    now = to_iso(utc_now())
    moved = json.loads(change["moved"])
    back_to = change["from_person_id"]
    if db.execute("SELECT 1 FROM patient_persons WHERE id = ?", [back_to]).fetchone() is None:
        db.execute("INSERT INTO patient_persons (id, created_at) VALUES (?, ?)", [back_to, now])
    current = _person_of(db, moved[0])
    marks = ", ".join("?" for _ in moved)
    db.execute(
        f"UPDATE patient_identities SET person_id = ? WHERE id IN ({marks})", [back_to, *moved]
    )
    db.execute("DELETE FROM patient_link_blocks WHERE change_id = ?", [change_id])
    action = "unlink" if change["action"] == "link" else "link"
    reversal = _change(
        db, action, "reversal", change["identity_id"], change["other_identity_id"], current,
        back_to, moved, "", actor_id, reason, now, reverses=change_id,
    )  # fmt: skip
    if change["action"] == "link":
        for identity in moved:
            for other in _members(db, current):
                db.execute(
                    "INSERT OR IGNORE INTO patient_link_blocks (identity_id, other_identity_id,"
                    " change_id) VALUES (?, ?, ?)",
                    [identity, other, reversal],
                )
    db.execute(
        "UPDATE patient_link_changes SET reversed_by = ? WHERE id = ?", [reversal, change_id]
    )
    return reversal


def _change(
    db: sqlite_utils.Database,
    action: str,
    method: str,
    identity_id: int,
    other_identity_id: int | None,
    from_person: int,
    to_person: int,
    moved: list[int],
    identifier_system: str,
    actor_id: int | None,
    reason: str,
    now: str,
    reverses: int | None = None,
) -> int:
    cursor = db.execute(
        """
        INSERT INTO patient_link_changes (action, method, identity_id, other_identity_id,
            from_person_id, to_person_id, moved, identifier_system, actor_id, reason, at,
            reverses) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [
            action,
            method,
            identity_id,
            other_identity_id,
            from_person,
            to_person,
            json.dumps(moved),
            identifier_system,
            actor_id,
            reason,
            now,
            reverses,
        ],  # fmt: skip
    )
    return int(cursor.lastrowid)


def get_change(db: sqlite_utils.Database, change_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM patient_link_changes WHERE id = ?", [change_id]).fetchone()
    if row is None:
        raise RecordNotFound(f"patient link change {change_id}")
    columns = [d[0] for d in db.execute("SELECT * FROM patient_link_changes LIMIT 0").description]
    return dict(zip(columns, row, strict=True))


def identity(db: sqlite_utils.Database, facility_id: int, patient_id: str) -> dict | None:
    """One local identity's row, or None when that patient is not indexed."""
    rows = list(
        db.query(
            "SELECT * FROM patient_identities WHERE facility_id = ? AND patient_id = ?",
            [facility_id, patient_id],
        )
    )
    return rows[0] if rows else None


def linked_identities(
    db: sqlite_utils.Database, facility_id: int, patient_id: str
) -> list[dict[str, Any]]:
    """Every local identity of that patient's person (itself included, first), with its
    facility's name; empty when the patient is not indexed."""
    return [
        dict(row)
        for row in db.query(
            """
            SELECT o.id, o.facility_id, f.name AS facility_name, o.patient_id, o.person_id,
                   o.name, o.birth_date, o.sex, o.first_seen_at, o.updated_at
            FROM patient_identities me
            JOIN patient_identities o ON o.person_id = me.person_id
            JOIN facilities f ON f.id = o.facility_id
            WHERE me.facility_id = ? AND me.patient_id = ?
            ORDER BY o.id != me.id, o.id
            """,
            [facility_id, patient_id],
        )
    ]


def identifiers_of(db: sqlite_utils.Database, identity_ids: Iterable[int]) -> list[dict]:
    """The national identifiers those identities carried (the numbers in full: the caller
    masks them for people who must not see them)."""
    ids = list(identity_ids)
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    return [
        dict(row)
        for row in db.query(
            f"SELECT identity_id, system, value, source, disputed, recorded_at"
            f" FROM patient_identifiers WHERE identity_id IN ({marks}) ORDER BY identity_id",
            ids,
        )
    ]


def link_changes(db: sqlite_utils.Database, identity_ids: Iterable[int]) -> list[dict]:
    """The link history touching those identities, newest first."""
    ids = list(identity_ids)
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    return [
        dict(row)
        for row in db.query(
            f"SELECT * FROM patient_link_changes WHERE identity_id IN ({marks})"
            f" OR other_identity_id IN ({marks}) ORDER BY id DESC",
            [*ids, *ids],
        )
    ]


def recent_exams(
    db: sqlite_utils.Database,
    facility_id: int,
    patient_id: str,
    modality: str,
    body_part: str,
    since: str,
    exclude_consultation: int | None = None,
) -> list[dict[str, Any]]:
    """Consultations of the same person (every linked facility) for the same exam item
    (modality + body part, as stored) whose images arrived, or which were requested, at or
    after ``since`` (ISO UTC), newest first, with the facility, the latest signed report's
    impression and whether that facility is on the recognition list for the item.

    The repeat-exam check at request time and at ingest, and what bench/patients.py times."""
    rows = db.query(
        f"""
        WITH {LINKED_IDENTITIES}
        SELECT c.id AS consultation_id, c.facility_id, f.name AS facility_name, c.patient_id,
               c.modality, c.body_part, c.status, c.accession_number,
               COALESCE(c.received_at, c.requested_at, c.created_at) AS performed_at,
               c.received_at, v.signed_at, v.impression,
               COALESCE(rec.status, '') AS recognition
        FROM linked l
        JOIN consultations c ON c.facility_id = l.facility_id AND c.patient_id = l.patient_id
        JOIN facilities f ON f.id = c.facility_id
        LEFT JOIN reports r ON r.consultation_id = c.id AND r.signed_versions > 0
        LEFT JOIN report_versions v ON v.report_id = r.id AND v.version = r.signed_versions
        LEFT JOIN recognition rec ON rec.facility_id = c.facility_id
            AND rec.modality = c.modality AND rec.body_part = c.body_part
        WHERE c.modality = ? AND c.body_part = ?
          AND COALESCE(c.received_at, c.requested_at, c.created_at) >= ?
          AND c.id IS NOT ?
        ORDER BY performed_at DESC, c.id DESC
        """,
        [
            *linked_parameters(facility_id, patient_id),
            modality,
            body_part,
            since,
            exclude_consultation,
        ],  # fmt: skip
    )
    return [dict(row) for row in rows]
