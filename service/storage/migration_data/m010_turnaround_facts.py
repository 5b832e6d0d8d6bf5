# ruff: noqa: E501  (the DDL is kept verbatim as SQLite stored it: one generated column a line)
"""Migration m010's table, ``turnaround_facts``, and its first filling, frozen as of m010.

One row per consultation with the first time of each milestone, derived from
``consultation_events`` (the truth). The live code that keeps it since (``append_event`` and
service/storage/turnaround.py) may change; this copy keeps what m010 created and wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

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
    quality TEXT,
    quality_reason TEXT NOT NULL DEFAULT '',
    critical INTEGER NOT NULL DEFAULT 0,
    received_to_claimed REAL GENERATED ALWAYS AS (round((julianday(claimed_at) - julianday(received_at)) * 86400.0, 3)) STORED,
    claimed_to_signed REAL GENERATED ALWAYS AS (round((julianday(signed_at) - julianday(claimed_at)) * 86400.0, 3)) STORED,
    received_to_signed REAL GENERATED ALWAYS AS (round((julianday(signed_at) - julianday(received_at)) * 86400.0, 3)) STORED,
    signed_to_delivered REAL GENERATED ALWAYS AS (round((julianday(delivered_at) - julianday(signed_at)) * 86400.0, 3)) STORED,
    delivered_to_acknowledged REAL GENERATED ALWAYS AS (round((julianday(acknowledged_at) - julianday(delivered_at)) * 86400.0, 3)) STORED,
    end_to_end REAL GENERATED ALWAYS AS (round((julianday(delivered_at) - julianday(received_at)) * 86400.0, 3)) STORED
);
CREATE INDEX turnaround_facts_received ON turnaround_facts(received_at);
CREATE INDEX turnaround_facts_facility ON turnaround_facts(facility_id, received_at);
CREATE INDEX turnaround_facts_signed ON turnaround_facts(signed_at, reader_id, facility_id,
    modality, quality, quality_reason);
CREATE INDEX turnaround_facts_due ON turnaround_facts(due_at, cancelled_at, signed_at, priority,
    facility_id);
"""

COPIES = ("facility_id", "requested_by", "modality", "priority", "queue", "due_at")
MILESTONE_EVENTS = {
    "requested_at": "requested",
    "images_at": "images_received",
    "claimed_at": "claimed",
    "signed_at": "signed",
    "delivered_at": "delivered",
    "acknowledged_at": "acknowledged",
    "cancelled_at": "cancelled",
    "escalated_at": "escalated",
}
"""Milestone column -> the event type whose FIRST occurrence sets it."""
FACT_COLUMNS = (
    *COPIES,
    "requested_at", "images_at", "received_at", "queued_at", "claimed_at", "signed_at",
    "delivered_at", "acknowledged_at", "cancelled_at", "escalated_at",
    "reader_id", "quality", "quality_reason", "critical",
)  # fmt: skip


def _parse(at: str) -> datetime:
    value = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def milestones(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The facts of one consultation from its events (ordered by time, then id): the first of
    each type counts; ``received`` is the earlier of request and images, ``queued`` the later."""
    first: dict[str, Mapping[str, Any]] = {}
    for event in sorted(events, key=lambda e: _parse(e["at"])):
        first.setdefault(event["type"], event)
    row: dict[str, Any] = {
        column: first[kind]["at"] if kind in first else None
        for column, kind in MILESTONE_EVENTS.items()
    }
    present = [t for t in (row["requested_at"], row["images_at"]) if t]
    signed = first.get("signed")
    detail = dict(signed.get("detail") or {}) if signed else {}
    return row | {
        "received_at": min(present, key=_parse) if present else None,
        "queued_at": max(present, key=_parse) if len(present) == 2 else None,
        "reader_id": signed.get("actor_user_id") if signed else None,
        "quality": detail.get("quality"),
        "quality_reason": detail.get("quality_reason") or "",
        "critical": int(bool(detail.get("critical"))),
    }


def fill_facts(db: sqlite_utils.Database) -> int:
    """A facts row for every consultation that has events; returns the number of rows."""
    columns = ("consultation_id", *FACT_COLUMNS)
    insert = (
        f"INSERT INTO turnaround_facts ({', '.join(columns)})"
        f" VALUES ({', '.join('?' for _ in columns)})"
    )
    rows = db.execute(
        f"SELECT c.id, {', '.join('c.' + c for c in COPIES)} FROM consultations c"
        " WHERE EXISTS (SELECT 1 FROM consultation_events e WHERE e.consultation_id = c.id)"
        " ORDER BY c.id"
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
        facts = milestones(events)
        db.execute(insert, [*row, *(facts[c] for c in FACT_COLUMNS[len(COPIES) :])])
    return len(rows)
