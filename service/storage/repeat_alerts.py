"""Repeat-exam alerts (m044): recorded when a request or a study repeats an exam item within its
window, with the requester's decision; the dashboard's repeat figures are counted from them."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from .database import Conflict, RecordNotFound
from .scope import Scope

DECIDED = ("proceeded", "withdrawn", "recorded")
REPEATS = ("proceeded", "recorded")
"""Decisions after which the exam was (or will be) done again."""


def insert_alert(db: sqlite_utils.Database, values: dict[str, Any]) -> int:
    """A new alert; ``values["matches"]`` is a list of the prior exams (stored as JSON)."""
    row = values | {"matches": json.dumps(values["matches"], ensure_ascii=False)}
    columns, marks = ", ".join(row), ", ".join("?" for _ in row)
    cursor = db.execute(
        f"INSERT INTO repeat_alerts ({columns}) VALUES ({marks})", list(row.values())
    )
    return int(cursor.lastrowid)


def _decoded(row: Any) -> dict[str, Any]:
    alert = dict(row)
    alert["matches"] = json.loads(alert["matches"])
    return alert


def get_alert(db: sqlite_utils.Database, alert_id: int) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM repeat_alerts WHERE id = ?", [alert_id]))
    if not rows:
        raise RecordNotFound(f"repeat alert {alert_id}")
    return _decoded(rows[0])


def decide(
    db: sqlite_utils.Database,
    alert_id: int,
    decision: str,
    *,
    reason: str,
    user_id: int | None,
    now: str,
    consultation_id: int | None = None,
) -> None:
    """Record the answer to a pending alert (once: a second answer is a Conflict)."""
    cursor = db.execute(
        """
        UPDATE repeat_alerts SET decision = ?, reason = ?, user_id = COALESCE(?, user_id),
            decided_at = ?, consultation_id = ?
        WHERE id = ? AND decision = 'pending'
        """,
        [decision, reason, user_id, now, consultation_id, alert_id],
    )
    if cursor.rowcount != 1:
        raise Conflict("alert_decided", f"repeat alert {alert_id} was already answered")


def has_alert(db: sqlite_utils.Database, consultation_id: int) -> bool:
    row = db.execute(
        "SELECT 1 FROM repeat_alerts WHERE consultation_id = ? LIMIT 1", [consultation_id]
    ).fetchone()
    return row is not None


def of_consultation(
    db: sqlite_utils.Database, scope: Scope, consultation_id: int
) -> list[dict[str, Any]]:
    """The alerts of a consultation the caller may see (none outside the scope), oldest first,
    with the requesting facility's time zone and the deciding user's name."""
    where, params = scope.where("c")
    rows = db.query(
        f"""
        SELECT a.*, f.timezone, COALESCE(NULLIF(u.display_name, ''), u.username, '') AS decided_by
        FROM repeat_alerts a
        JOIN consultations c ON c.id = a.consultation_id
        JOIN facilities f ON f.id = a.facility_id
        LEFT JOIN users u ON u.id = a.user_id
        WHERE a.consultation_id = ? AND {where}
        ORDER BY a.id
        """,
        [consultation_id, *params],
    )
    return [_decoded(row) for row in rows]


def figures(
    db: sqlite_utils.Database, facility_ids: tuple[int, ...] | None, since: str, until: str
) -> list[dict[str, Any]]:
    """Per facility and exam item, between ``since`` and ``until`` (ISO UTC): requests filed
    (consultations), repeats (alerts proceeded or recorded) and repeats avoided (withdrawn).
    ``facility_ids`` None means every facility."""
    marks = ", ".join("?" for _ in facility_ids or ()) or "NULL"
    only = "" if facility_ids is None else f"AND facility_id IN ({marks})"
    scoped = list(facility_ids or ())
    rows = db.query(
        f"""
        WITH filed AS (
            SELECT facility_id, modality, body_part, COUNT(*) AS requests, 0 AS repeats,
                   0 AS avoided
            FROM consultations
            WHERE modality != '' AND body_part != '' AND status != 'cancelled'
              AND COALESCE(requested_at, received_at, created_at) >= ?
              AND COALESCE(requested_at, received_at, created_at) < ? {only}
            GROUP BY facility_id, modality, body_part
        ), alerted AS (
            SELECT facility_id, modality, body_part, 0 AS requests,
                   SUM(decision IN ('proceeded', 'recorded')) AS repeats,
                   SUM(decision = 'withdrawn') AS avoided
            FROM repeat_alerts
            WHERE created_at >= ? AND created_at < ? {only}
            GROUP BY facility_id, modality, body_part
        )
        SELECT t.facility_id, f.name AS facility_name, t.modality, t.body_part,
               SUM(t.requests) AS requests, SUM(t.repeats) AS repeats,
               SUM(t.avoided) AS avoided
        FROM (SELECT * FROM filed UNION ALL SELECT * FROM alerted) t
        JOIN facilities f ON f.id = t.facility_id
        GROUP BY t.facility_id, f.name, t.modality, t.body_part
        HAVING SUM(t.repeats) > 0 OR SUM(t.avoided) > 0
        ORDER BY f.name, t.modality, t.body_part
        """,
        [since, until, *scoped, since, until, *scoped],
    )
    return [dict(row) for row in rows]
