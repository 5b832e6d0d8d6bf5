"""In-app notifications: one row per recipient, read or not."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from .database import RecordNotFound


def add_notifications(db: sqlite_utils.Database, rows: Iterable[dict[str, Any]]) -> list[int]:
    """Store notices; ``message`` and ``params`` (a code and its values) let each reader see
    the notice in their own language, ``title`` and ``body`` are the English fallback."""
    ids = []
    for row in rows:
        cursor = db.execute(
            "INSERT INTO notifications (user_id, kind, consultation_id, title, body, created_at,"
            " message, params) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                row["user_id"],
                row["kind"],
                row.get("consultation_id"),
                row["title"],
                row.get("body", ""),
                row["created_at"],
                row.get("message", ""),
                json.dumps(row.get("params") or {}, ensure_ascii=False, sort_keys=True),
            ],
        )
        ids.append(int(cursor.lastrowid))
    return ids


def notifications_of(db: sqlite_utils.Database, user_id: int, limit: int = 100) -> list[dict]:
    """The user's notifications, unread first, newest first within each group, with the
    patient and study of their consultation (named when the notice is shown, never stored in
    it: the same notice goes out to webhook gateways, outside the trust boundary)."""
    rows = db.execute(
        "SELECT n.id, n.kind, n.consultation_id, n.title, n.body, n.created_at, n.read_at,"
        " n.message, n.params, c.patient_name, c.patient_id, c.modality, c.body_part,"
        " c.study_instance_uid, (SELECT s.study_description FROM studies s"
        "   WHERE s.study_instance_uid = c.study_instance_uid AND s.study_description != ''"
        "   LIMIT 1) AS study_description"
        " FROM notifications n LEFT JOIN consultations c ON c.id = n.consultation_id"
        " WHERE n.user_id = ?"
        " ORDER BY n.read_at IS NOT NULL, n.created_at DESC, n.id DESC LIMIT ?",
        [user_id, limit],
    )
    return [dict(row) | {"params": json.loads(row["params"] or "{}")} for row in rows]


def unread_count(db: sqlite_utils.Database, user_id: int) -> int:
    """How many of the user's notifications are unread (the bell's badge)."""
    row = db.execute(
        "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND read_at IS NULL", [user_id]
    ).fetchone()
    return int(row[0])


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
