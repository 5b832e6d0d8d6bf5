"""Ingest bookkeeping: the change-feed cursor, studies seen, upload attributions, quarantine."""

from __future__ import annotations

from typing import Any

import sqlite_utils

CURSOR_KEY = "orthanc_changes_seq"


class CursorMoved(Exception):
    """The change cursor is not where this follower read it: another follower (an old leader
    still finishing a round, or the new one) recorded those changes' work first. The
    transaction that raised it rolls back, so no change's work is ever recorded twice."""


def get_cursor(db: sqlite_utils.Database) -> int:
    row = db.execute("SELECT value FROM ingest_state WHERE key = ?", [CURSOR_KEY]).fetchone()
    return int(row[0]) if row else 0


def expect_cursor(db: sqlite_utils.Database, expected: int) -> None:
    """Refuse (:class:`CursorMoved`) unless the cursor still has the value this follower read:
    called first in the transaction that records a change's work (a compare-and-set, with
    ``set_cursor`` at its end; on PostgreSQL the SERIALIZABLE write makes the pair atomic)."""
    found = get_cursor(db)
    if found != expected:
        raise CursorMoved(f"the change cursor is at {found}, not {expected} as read")


def set_cursor(db: sqlite_utils.Database, seq: int, expected: int | None = None) -> None:
    """Advance (never rewind) the cursor; called in the same transaction as the work it covers.
    ``expected``: the value read before that work (:func:`expect_cursor`)."""
    if expected is not None:
        expect_cursor(db, expected)
    db.execute(
        "INSERT INTO ingest_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
        " SET value = excluded.value WHERE CAST(ingest_state.value AS INTEGER) < ?",
        [CURSOR_KEY, str(seq), seq],
    )


def upsert_study(db: sqlite_utils.Database, study: dict[str, Any]) -> None:
    columns = ", ".join(study)
    marks = ", ".join("?" for _ in study)
    updates = ", ".join(f"{c} = excluded.{c}" for c in study if c != "orthanc_id")
    db.execute(
        f"INSERT INTO studies ({columns}) VALUES ({marks})"
        f" ON CONFLICT (orthanc_id) DO UPDATE SET {updates}",
        list(study.values()),
    )


def known_study_ids(db: sqlite_utils.Database) -> set[str]:
    """Orthanc study ids already handled: ingested, or held in quarantine (in Orthanc: a study
    whose instances were moved out of Orthanc is gone, and the same id seen again is new)."""
    ids = {r[0] for r in db.execute("SELECT orthanc_id FROM studies")}
    ids |= {
        r[0]
        for r in db.execute(
            "SELECT orthanc_study_id FROM quarantine q WHERE NOT EXISTS"
            " (SELECT 1 FROM quarantined_instances i WHERE i.quarantine_id = q.id)"
        )
    }
    return ids


def add_attribution(
    db: sqlite_utils.Database,
    *,
    study_instance_uid: str,
    facility_id: int,
    user_id: int,
    via: str,
    client_ip: str | None,
    at: str,
) -> None:
    """Remember who sent a study through the service (Orthanc itself records no user for STOW)."""
    db.execute(
        "INSERT INTO upload_attributions (study_instance_uid, facility_id, user_id, via,"
        " client_ip, at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (study_instance_uid, facility_id) DO NOTHING",
        [study_instance_uid, facility_id, user_id, via, client_ip, at],
    )


def claim_for_upload(
    db: sqlite_utils.Database,
    *,
    study_instance_uid: str,
    facility_id: int,
    user_id: int,
    via: str,
    client_ip: str | None,
    at: str,
) -> int:
    """Credit an upload's study to the uploader's facility unless another facility owns it;
    returns the owner (the uploader's facility when the upload may go on)."""
    owner = study_owner(db, study_instance_uid)
    if owner is not None and owner != facility_id:
        return owner
    add_attribution(
        db,
        study_instance_uid=study_instance_uid,
        facility_id=facility_id,
        user_id=user_id,
        via=via,
        client_ip=client_ip,
        at=at,
    )
    return facility_id


def attributions_for(db: sqlite_utils.Database, study_instance_uid: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in db.execute(
            "SELECT * FROM upload_attributions WHERE study_instance_uid = ? ORDER BY id",
            [study_instance_uid],
        )
    ]


def quarantine_study(db: sqlite_utils.Database, entry: dict[str, Any]) -> int:
    """Keep a study nobody can be credited with; repeated sightings update, never duplicate.

    Returns the quarantine entry's id."""
    row = db.execute(
        "INSERT INTO quarantine (orthanc_study_id, study_instance_uid, patient_id, patient_name,"
        " origin, remote_aet, remote_ip, instances, reason, first_seen_at, last_seen_at)"
        " VALUES (:orthanc_study_id, :study_instance_uid, :patient_id, :patient_name, :origin,"
        " :remote_aet, :remote_ip, :instances, :reason, :seen_at, :seen_at)"
        " ON CONFLICT (orthanc_study_id, origin, remote_aet) DO UPDATE SET"
        " instances = excluded.instances, last_seen_at = excluded.last_seen_at,"
        " remote_ip = excluded.remote_ip, reason = excluded.reason RETURNING id",
        entry,
    ).fetchone()
    return int(row[0])


def study_owner(db: sqlite_utils.Database, study_instance_uid: str) -> int | None:
    """The facility a study belongs to: the first one credited with it, by a consultation (from
    its images or from a request naming the UID) or by an upload through the service (credited
    before Orthanc holds the files). None while no facility is."""
    row = db.execute(
        "SELECT facility_id FROM ("
        " SELECT facility_id, created_at AS at, 0 AS kind, id FROM consultations"
        " WHERE study_instance_uid = ?"
        " UNION ALL SELECT facility_id, at, 1 AS kind, id FROM upload_attributions"
        " WHERE study_instance_uid = ?"
        ") AS credited ORDER BY at, kind, id LIMIT 1",
        [study_instance_uid, study_instance_uid],
    ).fetchone()
    return int(row[0]) if row else None


def credited_orthanc_study(
    db: sqlite_utils.Database, study_instance_uid: str, orthanc_id: str
) -> dict[str, Any] | None:
    """The consultation holding another Orthanc study of this Study UID, if one does.

    Orthanc keys studies by Patient ID and Study UID together, so a study UID arriving with a
    second Patient ID is a second Orthanc study, and every look-up by the UID becomes ambiguous.
    """
    row = db.execute(
        "SELECT id, facility_id, orthanc_study_id, patient_id FROM consultations"
        " WHERE study_instance_uid = ? AND orthanc_study_id IS NOT NULL"
        " AND orthanc_study_id != ? ORDER BY id LIMIT 1",
        [study_instance_uid, orthanc_id],
    ).fetchone()
    return dict(row) if row else None


def hold_instances(
    db: sqlite_utils.Database,
    quarantine_id: int,
    orthanc_instance_ids: list[str],
    reasons: dict[str, str] | None = None,
) -> None:
    """Mark instances to be moved out of Orthanc into the quarantine (``moved_at`` NULL); an
    instance moved before and sent again (same Orthanc id) is marked to be moved again.
    ``reasons``: an instance's own reason (a malformed file's), where it has one."""
    reasons = reasons or {}
    db.conn.executemany(
        "INSERT INTO quarantined_instances (quarantine_id, orthanc_instance_id, reason)"
        " VALUES (?, ?, ?) ON CONFLICT (orthanc_instance_id) DO UPDATE SET moved_at = NULL,"
        " quarantine_id = excluded.quarantine_id, reason = excluded.reason",
        [(quarantine_id, i, reasons.get(i, "")) for i in orthanc_instance_ids],
    )


def instance_checks(
    db: sqlite_utils.Database, orthanc_instance_ids: list[str]
) -> dict[str, tuple[str, str]]:
    """The file checks done of these instances: id -> (reception checked, reason or '')."""
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(orthanc_instance_ids), 500):
        chunk = orthanc_instance_ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in db.execute(
            "SELECT orthanc_instance_id, received_at, reason FROM instance_checks"
            f" WHERE orthanc_instance_id IN ({marks})",
            chunk,
        ):
            found[row[0]] = (row[1], row[2])
    return found


def record_checks(db: sqlite_utils.Database, checks: list[tuple[str, str, str]], at: str) -> None:
    """Remember file checks as (Orthanc instance id, its reception, reason or '')."""
    db.conn.executemany(
        "INSERT INTO instance_checks (orthanc_instance_id, received_at, reason, checked_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (orthanc_instance_id) DO UPDATE SET"
        " received_at = excluded.received_at, reason = excluded.reason,"
        " checked_at = excluded.checked_at",
        [(i, received, reason, at) for i, received, reason in checks],
    )


def pending_moves(db: sqlite_utils.Database, limit: int = 500) -> list[dict[str, Any]]:
    """Quarantined instances still in Orthanc, oldest first."""
    return [
        dict(r)
        for r in db.execute(
            "SELECT id, quarantine_id, orthanc_instance_id FROM quarantined_instances"
            " WHERE moved_at IS NULL ORDER BY id LIMIT ?",
            [limit],
        )
    ]


def moved_out(db: sqlite_utils.Database, moved: list[tuple[int, str]], at: str) -> None:
    """Record instances kept in the quarantine's files and deleted from Orthanc, and drop the
    viewer's shared layouts of their studies (they listed the instances now gone)."""
    db.conn.executemany(
        "UPDATE quarantined_instances SET file = ?, moved_at = ? WHERE id = ?",
        [(file, at, row_id) for row_id, file in moved],
    )
    db.conn.executemany(
        "DELETE FROM study_layouts WHERE orthanc_study_id IN (SELECT q.orthanc_study_id"
        " FROM quarantine q JOIN quarantined_instances i ON i.quarantine_id = q.id"
        " WHERE i.id = ?)",
        [(row_id,) for row_id, _ in moved],
    )


def quarantined_instances(db: sqlite_utils.Database, quarantine_id: int) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in db.execute(
            "SELECT * FROM quarantined_instances WHERE quarantine_id = ? ORDER BY id",
            [quarantine_id],
        )
    ]


def list_quarantine(
    db: sqlite_utils.Database, include_resolved: bool = False
) -> list[dict[str, Any]]:
    """Quarantine entries, newest first; ``moved_out``: how many of an entry's instances were
    moved out of Orthanc into the quarantine's files (``TELEREAD_DATA_DIR/quarantine/<id>/``)."""
    sql = (
        "SELECT q.*, (SELECT COUNT(*) FROM quarantined_instances i WHERE i.quarantine_id = q.id"
        " AND i.moved_at IS NOT NULL) AS moved_out FROM quarantine q"
    )
    if not include_resolved:
        sql += " WHERE q.resolved_at IS NULL"
    return [dict(r) for r in db.execute(sql + " ORDER BY q.last_seen_at DESC, q.id DESC")]


def study_by_orthanc_id(db: sqlite_utils.Database, orthanc_id: str) -> dict[str, Any]:
    """The ingested study with this Orthanc id (never another Orthanc study sharing its UID);
    empty if none."""
    row = db.execute("SELECT * FROM studies WHERE orthanc_id = ?", [orthanc_id]).fetchone()
    return dict(row) if row else {}
