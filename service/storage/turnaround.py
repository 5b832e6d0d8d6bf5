"""Turnaround facts (derived from events), the breach list and the queue now.

``turnaround_facts`` holds one row per consultation: the first time of each milestone, the
reader, the quality rating, and copies of facility / modality / priority / queue / due time:
what ``turnaround_columns`` packs for the dashboard's figures, and what the breach list reads.
It is kept by :func:`record_event` in the transaction of every event (~0.03 ms; the column
blocks are caught up later, by the dashboard's next question), and :func:`rebuild_facts`
recomputes it from the events alone (a test proves both agree). Times compare as ISO 8601 UTC
strings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from worklists.turnaround import MILESTONE_EVENTS, REVIEW_STAGES, STAGES, milestones

from . import turnaround_columns as blocks
from .scope import Scope

FACTS_DDL = """
CREATE TABLE turnaround_facts (
    consultation_id INTEGER PRIMARY KEY REFERENCES consultations(id),
    facility_id INTEGER NOT NULL,
    requested_by INTEGER,
    modality TEXT NOT NULL DEFAULT '',
    priority TEXT NOT NULL DEFAULT 'routine',
    queue TEXT NOT NULL DEFAULT 'general',
    due_at TEXT NOT NULL,
    requested_at TEXT, images_at TEXT, received_at TEXT, queued_at TEXT, claimed_at TEXT,
    signed_at TEXT, delivered_at TEXT, acknowledged_at TEXT, cancelled_at TEXT,
    escalated_at TEXT,
    reader_id INTEGER,
    written_at TEXT,
    reviewed_at TEXT,
    quality TEXT,
    quality_reason TEXT NOT NULL DEFAULT '',
    critical INTEGER NOT NULL DEFAULT 0,
    {stages}
);
CREATE INDEX turnaround_facts_received ON turnaround_facts(received_at);
CREATE INDEX turnaround_facts_facility ON turnaround_facts(facility_id, received_at);
CREATE INDEX turnaround_facts_signed ON turnaround_facts(signed_at, reader_id, facility_id,
    modality, quality, quality_reason);
CREATE INDEX turnaround_facts_due ON turnaround_facts(due_at, cancelled_at, signed_at, priority,
    facility_id);
""".replace(
    "{stages}",
    ",\n    ".join(
        f"{s.name} REAL GENERATED ALWAYS AS"
        f" (round((julianday({s.end}) - julianday({s.start})) * 86400.0, 3)) STORED"
        for s in STAGES
    ),
)
"""Stage durations in seconds are stored generated columns: computed once at write time, so
the dashboard's scan reads numbers instead of parsing 12 times per row (bench/dashboard.py)."""

_COPIES = ("facility_id", "requested_by", "modality", "priority", "queue", "due_at")
MILESTONE_COLUMNS = (
    "requested_at", "images_at", "received_at", "queued_at", "claimed_at", "signed_at",
    "delivered_at", "acknowledged_at", "cancelled_at", "escalated_at", "written_at",
    "reviewed_at",
)  # fmt: skip
FACT_COLUMNS = (*_COPIES, *MILESTONE_COLUMNS, "reader_id", "quality", "quality_reason", "critical")
_EVENT_COLUMN = {types[0]: column for column, types in MILESTONE_EVENTS.items()}


def _copy_consultation(db: sqlite_utils.Database, consultation_id: int) -> None:
    """Create the row if missing and refresh the copied columns (priority may have changed)."""
    copies = ", ".join(_COPIES)
    refresh = ", ".join(f"{c} = excluded.{c}" for c in _COPIES)
    db.execute(
        f"INSERT INTO turnaround_facts (consultation_id, {copies})"
        f" SELECT id, {copies} FROM consultations WHERE id = ? AND true"
        f" ON CONFLICT(consultation_id) DO UPDATE SET {refresh}",
        [consultation_id],
    )


def record_event(
    db: sqlite_utils.Database,
    consultation_id: int,
    event_type: str,
    at: str,
    actor_user_id: int | None,
    detail: dict[str, Any],
) -> None:
    """Fold one new event into the consultation's facts (called by ``append_event``)."""
    _copy_consultation(db, consultation_id)
    column = _EVENT_COLUMN.get(event_type)
    if column is not None:
        _fold_milestone(db, consultation_id, column, event_type, at, actor_user_id, detail)


def _fold_milestone(
    db: sqlite_utils.Database,
    consultation_id: int,
    column: str,
    event_type: str,
    at: str,
    actor_user_id: int | None,
    detail: dict[str, Any],
) -> None:
    earlier = f"({column} IS NULL OR {column} > :at)"
    sets = [f"{column} = CASE WHEN {earlier} THEN :at ELSE {column} END"]
    if event_type == "signed":
        for name in ("reader_id", "quality", "quality_reason", "critical"):
            sets.append(f"{name} = CASE WHEN {earlier} THEN :{name} ELSE {name} END")
    values = {
        "at": at,
        "id": consultation_id,
        "reader_id": actor_user_id,
        "quality": detail.get("quality"),
        "quality_reason": detail.get("quality_reason") or "",
        "critical": int(bool(detail.get("critical"))),
    }
    db.execute(f"UPDATE turnaround_facts SET {', '.join(sets)} WHERE consultation_id = :id", values)
    if event_type in ("requested", "images_received"):
        db.execute(
            "UPDATE turnaround_facts SET"
            " received_at = CASE WHEN requested_at IS NULL THEN images_at"
            "   WHEN images_at IS NULL OR requested_at <= images_at THEN requested_at"
            "   ELSE images_at END,"
            " queued_at = CASE WHEN requested_at IS NULL OR images_at IS NULL THEN NULL"
            "   WHEN requested_at >= images_at THEN requested_at ELSE images_at END"
            " WHERE consultation_id = ?",
            [consultation_id],
        )


def rebuild_facts(
    db: sqlite_utils.Database,
    consultation_ids: Sequence[int] | None = None,
    *,
    with_columns: bool = True,
) -> int:
    """Recompute facts from the events (all consultations, or the given ones), and their
    ``turnaround_columns`` blocks unless told not to (migration m010, before the blocks
    existed); returns rows."""
    only, params = "", []
    if consultation_ids is not None:
        only = f" AND c.id IN ({', '.join('?' for _ in consultation_ids) or 'NULL'})"
        params = list(consultation_ids)
    db.execute(
        f"DELETE FROM turnaround_facts WHERE consultation_id IN"
        f" (SELECT c.id FROM consultations c WHERE 1 = 1{only})",
        params,
    )
    columns = ("consultation_id", *FACT_COLUMNS)
    insert = (
        f"INSERT INTO turnaround_facts ({', '.join(columns)})"
        f" VALUES ({', '.join('?' for _ in columns)})"
    )
    rows = db.execute(
        f"SELECT c.id, {', '.join('c.' + c for c in _COPIES)} FROM consultations c"
        " WHERE EXISTS (SELECT 1 FROM consultation_events e WHERE e.consultation_id = c.id)"
        f"{only} ORDER BY c.id",
        params,
    ).fetchall()
    for row in rows:
        events = [
            {"type": e[0], "at": e[1], "actor_user_id": e[2], "detail": json.loads(e[3])}
            for e in db.execute(
                "SELECT type, at, actor_user_id, detail FROM consultation_events"
                " WHERE consultation_id = ? ORDER BY at, id",
                [row[0]],
            )
        ]
        facts = milestones(events).as_row()
        db.execute(insert, [*row, *(facts[c] for c in FACT_COLUMNS[len(_COPIES) :])])
    if with_columns and consultation_ids is None:
        blocks.rebuild(db)
        blocks.mark_caught_up(db)
    elif with_columns:
        blocks.refresh(db, consultation_ids)
    return len(rows)


def facts_of(
    db: sqlite_utils.Database, consultation_ids: Sequence[int] | None = None
) -> list[dict]:
    """The stored facts (for the rebuild-equals-incremental check and the CLI)."""
    sql = "SELECT * FROM turnaround_facts"
    params: list[object] = []
    if consultation_ids is not None:
        sql += f" WHERE consultation_id IN ({', '.join('?' for _ in consultation_ids) or 'NULL'})"
        params = list(consultation_ids)
    return [dict(r) for r in db.execute(sql + " ORDER BY consultation_id", params)]


@dataclass(frozen=True)
class Period:
    """Half-open interval [since, until) on a time column; None ends are open."""

    since: str | None = None
    until: str | None = None

    def where(self, column: str) -> tuple[str, list[object]]:
        clauses, params = [f"{column} IS NOT NULL"], []
        if self.since:
            clauses.append(f"{column} >= ?")
            params.append(self.since)
        if self.until:
            clauses.append(f"{column} < ?")
            params.append(self.until)
        return " AND ".join(clauses), params


def _scoped(scope: Scope, period: Period, column: str) -> tuple[str, list[object]]:
    scope_sql, scope_params = scope.where("t")
    period_sql, period_params = period.where(column)
    return f"{scope_sql} AND {period_sql}", [*scope_params, *period_params]


def breaches(
    db: sqlite_utils.Database, scope: Scope, period: Period, now: str, limit: int
) -> list[dict[str, Any]]:
    """Consultations due in the period whose first signature came late (or not yet, overdue)."""
    where, params = _scoped(scope, period, "t.due_at")
    sql = (
        "SELECT t.consultation_id, t.facility_id, f.name AS facility_name, t.modality,"
        " t.priority, t.queue, t.due_at, t.received_at, t.queued_at, t.claimed_at, t.signed_at"
        " FROM turnaround_facts t JOIN facilities f ON f.id = t.facility_id"
        f" WHERE {where} AND t.cancelled_at IS NULL AND ("
        " (t.signed_at IS NOT NULL AND t.signed_at > t.due_at)"
        " OR (t.signed_at IS NULL AND t.due_at < ?))"
        " ORDER BY t.due_at DESC, t.consultation_id DESC LIMIT ?"
    )
    return [dict(r) for r in db.execute(sql, [*params, now, limit])]


def review_stage_seconds(
    db: sqlite_utils.Database, scope: Scope, period: Period
) -> dict[str, list[float]]:
    """Durations (seconds) of the review stages of consultations received in the period."""
    where, params = _scoped(scope, period, "t.received_at")
    found: dict[str, list[float]] = {}
    for stage in REVIEW_STAGES:
        sql = (
            f"SELECT (julianday(t.{stage.end}) - julianday(t.{stage.start})) * 86400.0"
            f" FROM turnaround_facts t WHERE {where}"
            f" AND t.{stage.start} IS NOT NULL AND t.{stage.end} IS NOT NULL"
        )
        found[stage.name] = [round(row[0], 3) for row in db.execute(sql, params)]
    return found


def open_queue(db: sqlite_utils.Database, scope: Scope) -> list[dict[str, Any]]:
    """Open consultations now (from the worklist's own table and partial index), by priority,
    with the time each became readable (NULL while images or request are missing)."""
    scope_sql, params = scope.where("c")
    sql = (
        "SELECT c.priority, t.queued_at, t.received_at FROM consultations c"
        " LEFT JOIN turnaround_facts t ON t.consultation_id = c.id"
        f" WHERE c.status NOT IN ('signed', 'closed', 'cancelled') AND {scope_sql}"
    )
    return [dict(r) for r in db.execute(sql, params)]


def names(db: sqlite_utils.Database, table: str, ids: Sequence[int]) -> dict[int, str]:
    """Display names of facilities or users (readers) for group labels."""
    if not ids or table not in ("facilities", "users"):
        return {}
    label = "name" if table == "facilities" else "COALESCE(NULLIF(display_name, ''), username)"
    marks = ", ".join("?" for _ in ids)
    sql = f"SELECT id, {label} FROM {table} WHERE id IN ({marks})"
    return {row[0]: row[1] for row in db.execute(sql, list(ids))}
