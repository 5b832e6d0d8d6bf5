"""Duty roster entries (who is on duty when), with the on-duty people's subspecialties."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from .database import RecordNotFound

_COLUMNS = (
    "r.id, r.user_id, r.starts_at, r.ends_at, r.role_on_duty, r.created_by, r.created_at,"
    " u.username, u.display_name, u.subspecialties"
)


def add_entry(
    db: sqlite_utils.Database,
    *,
    user_id: int,
    starts_at: str,
    ends_at: str,
    role_on_duty: str,
    created_by: int | None,
    created_at: str,
) -> int:
    cursor = db.execute(
        "INSERT INTO roster_entries (user_id, starts_at, ends_at, role_on_duty, created_by,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [user_id, starts_at, ends_at, role_on_duty, created_by, created_at],
    )
    return int(cursor.lastrowid)


def delete_entry(db: sqlite_utils.Database, entry_id: int) -> None:
    if db.execute("DELETE FROM roster_entries WHERE id = ?", [entry_id]).rowcount == 0:
        raise RecordNotFound(f"roster entry {entry_id}")


def entries(db: sqlite_utils.Database, *, ending_after: str | None = None) -> list[dict[str, Any]]:
    """Entries (still running or to come, when ``ending_after`` is given) in start order."""
    sql = f"SELECT {_COLUMNS} FROM roster_entries r JOIN users u ON u.id = r.user_id"
    params: list[object] = []
    if ending_after is not None:
        sql += " WHERE r.ends_at > ?"
        params.append(ending_after)
    return [dict(row) for row in db.execute(sql + " ORDER BY r.starts_at, r.id", params)]


def covering(db: sqlite_utils.Database, now: str) -> list[dict[str, Any]]:
    """Entries of enabled users covering ``now``."""
    return [
        dict(row)
        for row in db.execute(
            f"SELECT {_COLUMNS} FROM roster_entries r JOIN users u ON u.id = r.user_id"
            " WHERE r.starts_at <= ? AND r.ends_at > ? AND u.disabled = 0"
            " ORDER BY r.starts_at, r.id",
            [now, now],
        )
    ]


def duty_candidate(db: sqlite_utils.Database, user_id: int) -> dict[str, Any]:
    """A user who might go on the roster: role, facility kind, enabled."""
    row = db.execute(
        "SELECT u.id, u.role, u.disabled, f.kind AS facility_kind FROM users u"
        " JOIN facilities f ON f.id = u.facility_id WHERE u.id = ?",
        [user_id],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"user {user_id}")
    return dict(row)


def duty_people(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Who may go on the roster: enabled specialists and managers of the regional centre."""
    return [
        dict(row)
        for row in db.execute(
            "SELECT u.id, u.username, u.display_name, u.role, u.subspecialties FROM users u"
            " JOIN facilities f ON f.id = u.facility_id"
            " WHERE f.kind = 'regional' AND u.disabled = 0 AND u.role IN ('specialist', 'manager')"
            " ORDER BY u.role DESC, COALESCE(NULLIF(u.display_name, ''), u.username), u.id"
        )
    ]
