"""Ingest bookkeeping: the change-feed cursor, studies seen, upload attributions, quarantine."""

from __future__ import annotations

from typing import Any

import sqlite_utils

CURSOR_KEY = "orthanc_changes_seq"


def get_cursor(db: sqlite_utils.Database) -> int:
    row = db.execute("SELECT value FROM ingest_state WHERE key = ?", [CURSOR_KEY]).fetchone()
    return int(row[0]) if row else 0


def set_cursor(db: sqlite_utils.Database, seq: int) -> None:
    """Advance (never rewind) the cursor; called in the same transaction as the work it covers."""
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
    """Orthanc study ids already handled: ingested, or held in quarantine."""
    ids = {r[0] for r in db.execute("SELECT orthanc_id FROM studies")}
    ids |= {r[0] for r in db.execute("SELECT orthanc_study_id FROM quarantine")}
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


def attributions_for(db: sqlite_utils.Database, study_instance_uid: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in db.execute(
            "SELECT * FROM upload_attributions WHERE study_instance_uid = ? ORDER BY id",
            [study_instance_uid],
        )
    ]


def quarantine_study(db: sqlite_utils.Database, entry: dict[str, Any]) -> None:
    """Keep a study nobody can be credited with; repeated sightings update, never duplicate."""
    db.execute(
        "INSERT INTO quarantine (orthanc_study_id, study_instance_uid, patient_id, patient_name,"
        " origin, remote_aet, remote_ip, instances, reason, first_seen_at, last_seen_at)"
        " VALUES (:orthanc_study_id, :study_instance_uid, :patient_id, :patient_name, :origin,"
        " :remote_aet, :remote_ip, :instances, :reason, :seen_at, :seen_at)"
        " ON CONFLICT (orthanc_study_id, origin, remote_aet) DO UPDATE SET"
        " instances = excluded.instances, last_seen_at = excluded.last_seen_at,"
        " remote_ip = excluded.remote_ip",
        entry,
    )


def list_quarantine(
    db: sqlite_utils.Database, include_resolved: bool = False
) -> list[dict[str, Any]]:
    sql = "SELECT * FROM quarantine"
    if not include_resolved:
        sql += " WHERE resolved_at IS NULL"
    return [dict(r) for r in db.execute(sql + " ORDER BY last_seen_at DESC, id DESC")]
