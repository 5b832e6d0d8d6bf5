"""The message thread of a consultation (append-only: a trigger refuses UPDATE and DELETE)."""

from __future__ import annotations

from typing import Any

import sqlite_utils


def add_message(
    db: sqlite_utils.Database, consultation_id: int, author_id: int, body: str, created_at: str
) -> int:
    cursor = db.execute(
        "INSERT INTO consultation_messages (consultation_id, author_id, body, created_at)"
        " VALUES (?, ?, ?, ?)",
        [consultation_id, author_id, body, created_at],
    )
    return int(cursor.lastrowid)


def messages_of(db: sqlite_utils.Database, consultation_id: int) -> list[dict[str, Any]]:
    """The thread in posting order, with each author's name, role and facility."""
    return [
        dict(row)
        for row in db.execute(
            "SELECT m.id, m.body, m.created_at, m.author_id,"
            " COALESCE(NULLIF(u.display_name, ''), u.username) AS author, u.role AS author_role,"
            " f.name AS author_facility"
            " FROM consultation_messages m JOIN users u ON u.id = m.author_id"
            " JOIN facilities f ON f.id = u.facility_id"
            " WHERE m.consultation_id = ? ORDER BY m.id",
            [consultation_id],
        )
    ]
