"""In-app notifications: one row per recipient, read or not."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlite_utils

from .database import RecordNotFound


def add_notifications(db: sqlite_utils.Database, rows: Iterable[dict[str, Any]]) -> list[int]:
    ids = []
    for row in rows:
        cursor = db.execute(
            "INSERT INTO notifications (user_id, kind, consultation_id, title, body, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                row["user_id"],
                row["kind"],
                row.get("consultation_id"),
                row["title"],
                row.get("body", ""),
                row["created_at"],
            ],
        )
        ids.append(int(cursor.lastrowid))
    return ids


def notifications_of(db: sqlite_utils.Database, user_id: int, limit: int = 100) -> list[dict]:
    """The user's notifications, unread first, newest first within each group."""
    return [
        dict(row)
        for row in db.execute(
            "SELECT id, kind, consultation_id, title, body, created_at, read_at"
            " FROM notifications WHERE user_id = ?"
            " ORDER BY read_at IS NOT NULL, created_at DESC, id DESC LIMIT ?",
            [user_id, limit],
        )
    ]


def mark_read(db: sqlite_utils.Database, user_id: int, notification_id: int, at: str) -> None:
    """Only one's own: another user's notification is not found."""
    row = db.execute(
        "SELECT read_at FROM notifications WHERE id = ? AND user_id = ?",
        [notification_id, user_id],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"notification {notification_id}")
    if row["read_at"] is None:
        db.execute("UPDATE notifications SET read_at = ? WHERE id = ?", [at, notification_id])
