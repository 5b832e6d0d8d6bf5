"""The review list of likely matches (migration m043) and the reads its page needs.

A candidate is a pair of local identities (lower id first) that birth date, sex and name say
may be one person but no national identifier links; an administrator links or rejects it.
Deciding what matches is :mod:`service.patients.candidates`' job; this module only stores and
reads. The one read an identity's recording makes (:func:`same_birth_and_sex`) goes through the
(birth_date, sex) index, so it stays a few dozen rows with millions of identities.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from .database import RecordNotFound
from .patients import LocalPatient, persons_blocked

STATUSES = ("pending", "linked", "rejected")


def patient_of_consultation(db: sqlite_utils.Database, consultation_id: int) -> LocalPatient | None:
    """The consultation's patient as its facility described it, None without a Patient ID."""
    row = db.execute(
        "SELECT facility_id, patient_id, patient_name, patient_birth_date, patient_sex"
        " FROM consultations WHERE id = ?",
        [consultation_id],
    ).fetchone()
    if row is None or not (row[1] or "").strip():
        return None
    return LocalPatient(row[0], row[1], row[2] or "", row[3] or "", row[4] or "")


def same_birth_and_sex(db: sqlite_utils.Database, identity_id: int) -> list[dict[str, Any]]:
    """Identities of other persons with this identity's birth date and sex (both known), and no
    candidate row with it yet: what its name is compared with."""
    return [
        dict(row)
        for row in db.execute(
            """
            SELECT o.id, o.facility_id, o.patient_id, o.name, o.person_id
            FROM patient_identities me
            JOIN patient_identities o ON o.birth_date = me.birth_date AND o.sex = me.sex
            WHERE me.id = ? AND me.birth_date != '' AND me.sex != ''
              AND o.person_id != me.person_id
              AND NOT EXISTS (
                  SELECT 1 FROM patient_link_candidates k
                  WHERE k.identity_id = MIN(me.id, o.id) AND k.other_identity_id = MAX(me.id, o.id)
              )
            ORDER BY o.id LIMIT 200
            """,
            [identity_id],
        )
    ]


def separated(db: sqlite_utils.Database, identity_id: int, other_identity_id: int) -> bool:
    """True when an administrator separated any identity of one's person from the other's."""
    persons = [
        db.execute("SELECT person_id FROM patient_identities WHERE id = ?", [i]).fetchone()
        for i in (identity_id, other_identity_id)
    ]
    if None in persons:
        return False
    return persons_blocked(db, persons[0][0], persons[1][0])


def propose(
    db: sqlite_utils.Database,
    identity_id: int,
    other_identity_id: int,
    score: float,
    reasons: list[str],
    now: str,
) -> int | None:
    """Add the pair to the review list once (a pair already listed, in any status, is kept as
    it is); the new row's id, or None."""
    low, high = sorted((identity_id, other_identity_id))
    cursor = db.execute(
        """
        INSERT OR IGNORE INTO patient_link_candidates (identity_id, other_identity_id, score,
            reasons, found_at) VALUES (?, ?, ?, ?, ?)
        """,
        [low, high, score, json.dumps(reasons), now],
    )
    return int(cursor.lastrowid) if cursor.rowcount else None


def settle(db: sqlite_utils.Database, identity_ids: Iterable[int], now: str) -> None:
    """Resolve the pending candidates of these identities' persons that a link or unlink
    decided: a pair now in one person is ``linked``, a pair an administrator separated
    ``rejected``."""
    ids = sorted(set(identity_ids))
    if not ids:
        return
    marks = ", ".join("?" for _ in ids)
    rows = db.execute(
        f"""
        SELECT k.id, k.identity_id, k.other_identity_id, a.person_id = b.person_id
        FROM patient_link_candidates k
        JOIN patient_identities a ON a.id = k.identity_id
        JOIN patient_identities b ON b.id = k.other_identity_id
        WHERE k.status = 'pending' AND (
            a.person_id IN (SELECT person_id FROM patient_identities WHERE id IN ({marks}))
            OR b.person_id IN (SELECT person_id FROM patient_identities WHERE id IN ({marks})))
        """,
        [*ids, *ids],
    ).fetchall()
    for candidate_id, one, other, same in rows:
        if same:
            status = "linked"
        elif separated(db, one, other):
            status = "rejected"
        else:
            continue
        db.execute(
            "UPDATE patient_link_candidates SET status = ?, decided_at = ? WHERE id = ?",
            [status, now, candidate_id],
        )


def decide(
    db: sqlite_utils.Database,
    candidate_id: int,
    status: str,
    actor_id: int | None,
    reason: str,
    now: str,
    change_id: int | None = None,
) -> None:
    db.execute(
        """
        UPDATE patient_link_candidates SET status = ?, decided_by = ?, decided_at = ?,
            reason = ?, change_id = ? WHERE id = ?
        """,
        [status, actor_id, now, reason, change_id, candidate_id],
    )


_CANDIDATE_SELECT = """
    SELECT k.id, k.score, k.reasons, k.status, k.found_at, k.decided_by, k.decided_at,
           k.reason, k.change_id, u.username AS decided_by_name,
           k.identity_id, k.other_identity_id
    FROM patient_link_candidates k
    LEFT JOIN users u ON u.id = k.decided_by
"""


def get_candidate(db: sqlite_utils.Database, candidate_id: int) -> dict[str, Any]:
    row = db.execute(_CANDIDATE_SELECT + " WHERE k.id = ?", [candidate_id]).fetchone()
    if row is None:
        raise RecordNotFound(f"patient link candidate {candidate_id}")
    return _candidate(row)


def list_candidates(
    db: sqlite_utils.Database, status: str = "pending", limit: int = 200
) -> list[dict[str, Any]]:
    """The review list (oldest first, as they wait) or its decided part (newest first)."""
    order = "k.id" if status == "pending" else "k.decided_at DESC, k.id DESC"
    rows = db.execute(
        _CANDIDATE_SELECT + f" WHERE k.status = ? ORDER BY {order} LIMIT ?", [status, limit]
    ).fetchall()
    return [_candidate(row) for row in rows]


def _candidate(row: Any) -> dict[str, Any]:
    found = dict(row)
    found["reasons"] = json.loads(found["reasons"])
    return found


def identities(db: sqlite_utils.Database, identity_ids: Iterable[int]) -> dict[int, dict]:
    """Those identities with their facility's name and the size of their person, by id."""
    ids = sorted(set(identity_ids))
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    rows = db.execute(
        f"""
        SELECT i.id, i.facility_id, f.name AS facility_name, i.patient_id, i.person_id,
               i.name, i.birth_date, i.sex, i.first_seen_at, i.updated_at,
               (SELECT COUNT(*) FROM patient_identities p WHERE p.person_id = i.person_id)
                   AS person_identities
        FROM patient_identities i JOIN facilities f ON f.id = i.facility_id
        WHERE i.id IN ({marks})
        """,
        ids,
    ).fetchall()
    return {row["id"]: dict(row) for row in rows}


def recent_changes(db: sqlite_utils.Database, limit: int = 100) -> list[dict[str, Any]]:
    """The link history, newest first, with who acted."""
    rows = db.execute(
        """
        SELECT c.id, c.action, c.method, c.identity_id, c.other_identity_id, c.moved,
               c.identifier_system, c.actor_id, u.username AS actor_name, c.reason, c.at,
               c.reverses, c.reversed_by
        FROM patient_link_changes c LEFT JOIN users u ON u.id = c.actor_id
        ORDER BY c.id DESC LIMIT ?
        """,
        [limit],
    ).fetchall()
    changes = []
    for row in rows:
        change = dict(row)
        change["moved"] = json.loads(change["moved"])
        changes.append(change)
    return changes


def consultations_with_images(db: sqlite_utils.Database) -> list[tuple[int, str]]:
    """(consultation id, Orthanc study id) of every consultation whose images arrived and whose
    patient has a Patient ID: what ``teleread patients backfill`` reads identifiers from."""
    return [
        (row[0], row[1])
        for row in db.execute(
            "SELECT id, orthanc_study_id FROM consultations"
            " WHERE orthanc_study_id IS NOT NULL AND orthanc_study_id != ''"
            " AND patient_id != '' ORDER BY id"
        )
    ]
