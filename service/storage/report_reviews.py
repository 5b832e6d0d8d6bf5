"""Texts signed for review (two-level sign-off, issue 19): one row per writer's signature that a
reviewer must approve, edit or return. The writer's signed PDF, canonical form and detached
signature stay here whatever the reviewer decides, so the writer's own text is never lost."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from .database import Conflict

_LIST_COLUMNS = (
    "id, report_id, consultation_id, version, supersedes_version, state, findings, impression,"
    " recommendation, critical, refer, quality, quality_reason, writer_id, writer_name,"
    " writer_certificate_serial, written_at, verification_code, preliminary_version,"
    " reviewer_id, reviewer_name, decided_at, comment"
)


def insert_submission(db: sqlite_utils.Database, values: dict[str, Any]) -> int:
    """Record a text signed for review; a report has at most one awaiting review."""
    if awaiting(db, values["report_id"]) is not None:
        raise Conflict("awaiting_review", "the report already awaits review")
    row = values | {"state": "awaiting"}
    cursor = db.execute(
        f"INSERT INTO report_reviews ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
        list(row.values()),
    )
    return int(cursor.lastrowid)


def awaiting(db: sqlite_utils.Database, report_id: int) -> dict[str, Any] | None:
    """The report's text awaiting review, with its signed bytes; None when none awaits."""
    row = db.execute(
        "SELECT * FROM report_reviews WHERE report_id = ? AND state = 'awaiting'", [report_id]
    ).fetchone()
    return dict(row) if row else None


def awaiting_writer(db: sqlite_utils.Database, consultation_id: int) -> int | None:
    """Who wrote the consultation's report awaiting review (None when none awaits)."""
    row = db.execute(
        "SELECT writer_id FROM report_reviews WHERE consultation_id = ? AND state = 'awaiting'",
        [consultation_id],
    ).fetchone()
    return int(row[0]) if row else None


def decide(
    db: sqlite_utils.Database,
    review_id: int,
    state: str,
    reviewer_id: int,
    reviewer_name: str,
    now: str,
    comment: str = "",
) -> None:
    """Close a review as approved, edited or returned (``review_changed`` if it was decided)."""
    cursor = db.execute(
        "UPDATE report_reviews SET state = ?, reviewer_id = ?, reviewer_name = ?,"
        " decided_at = ?, comment = ? WHERE id = ? AND state = 'awaiting'",
        [state, reviewer_id, reviewer_name, now, comment, review_id],
    )
    if cursor.rowcount == 0:
        raise Conflict("review_changed", "the report was reviewed meanwhile")


def history(db: sqlite_utils.Database, report_id: int) -> list[dict[str, Any]]:
    """Every text signed for review of the report and what became of it, oldest first."""
    rows = db.execute(
        f"SELECT {_LIST_COLUMNS} FROM report_reviews WHERE report_id = ? ORDER BY id",
        [report_id],
    )
    return [dict(r) for r in rows]


def adopt_issued_text(
    db: sqlite_utils.Database, report_id: int, text: dict[str, Any], now: str
) -> None:
    """The working copy takes the issued text (the reviewer's, when edited): a later correction
    starts from what the clinic has."""
    assignments = ", ".join(f"{k} = ?" for k in text)
    db.execute(
        f"UPDATE reports SET {assignments}, updated_at = ? WHERE id = ?",
        [*text.values(), now, report_id],
    )
