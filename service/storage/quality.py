"""QC scores (m036): the rows the monthly recomputation reads, and the stored figures.

The month's studies are the consultations received in it (index ``consultations_received``,
m036) with their ``turnaround_facts`` (first signature's rating, cancellation) and their report
(the technical-parameters flag). Scores are replaced a month at a time in one
transaction, so a reader sees the old month or the new one, never half of each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlite_utils

from worklists.quality import QcScore, StudyRow

from .dialects import is_postgres

SCORE_COLUMNS = (
    "facility_id", "modality", "body_part", "month", "studies", "rated", "good", "acceptable",
    "poor", "retakes", "flagged", "reasons", "peer_reviewed", "peer_agreement", "computed_at",
)  # fmt: skip


def facility_zones(db: sqlite_utils.Database) -> dict[str, list[int]]:
    """Facility ids by time zone: each facility's QC month is a month of its own zone."""
    zones: dict[str, list[int]] = {}
    for facility_id, zone in db.execute("SELECT id, timezone FROM facilities ORDER BY id"):
        zones.setdefault(zone or "UTC", []).append(facility_id)
    return zones


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def study_rows(
    db: sqlite_utils.Database, since: str, until: str, facility_ids: Sequence[int] | None = None
) -> list[StudyRow]:
    """Consultations received in [since, until) (UTC ISO 8601) and not cancelled (of
    ``facility_ids`` only, when given)."""
    only, ids = facility_clause(facility_ids, "c.facility_id")
    cursor = db.execute(
        "SELECT c.facility_id, c.patient_id, c.modality, c.body_part, c.received_at,"
        " f.quality, f.quality_reason, COALESCE(r.technical_flagged, 0)"
        " FROM consultations c JOIN turnaround_facts f ON f.consultation_id = c.id"
        " LEFT JOIN reports r ON r.consultation_id = c.id"
        " WHERE c.received_at >= ? AND c.received_at < ? AND f.cancelled_at IS NULL AND " + only,
        [since, until, *ids],
    )
    return [
        StudyRow(fid, pid, modality, body, _parse(at), quality, reason or "", bool(flag))
        for fid, pid, modality, body, at, quality, reason, flag in cursor
    ]


def replace_month(
    db: sqlite_utils.Database, month: str, scores: Iterable[QcScore], computed_at: str
) -> int:
    """Store ``month``'s scores in place of the ones stored before; the number stored."""
    db.execute("DELETE FROM qc_scores WHERE month = ?", [month])
    rows = [
        (s.facility_id, s.modality, s.body_part, month, s.studies, s.rated, s.good,
         s.acceptable, s.poor, s.retakes, s.flagged, json.dumps(s.reasons, ensure_ascii=False),
         s.peer_reviewed, s.peer_agreement, computed_at)
        for s in scores
    ]  # fmt: skip
    marks = ", ".join("?" for _ in SCORE_COLUMNS)
    db.conn.executemany(
        f"INSERT INTO qc_scores ({', '.join(SCORE_COLUMNS)}) VALUES ({marks})", rows
    )
    return len(rows)


def received_months(db: sqlite_utils.Database) -> list[str]:
    """Every month (``YYYY-MM``) in which some consultation was received."""
    first = db.execute("SELECT MIN(received_at), MAX(received_at) FROM consultations").fetchone()
    if first[0] is None:
        return []
    months, (year, month) = [], (int(first[0][:4]), int(first[0][5:7]))
    last = first[1][:7]
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


_SCORE_JSON = ", ".join(
    f"'{c}', s.{c}" if c != "reasons" else "'reasons', json(s.reasons)" for c in SCORE_COLUMNS
)


def facility_clause(
    facility_ids: Sequence[int] | None, column: str = "s.facility_id"
) -> tuple[str, list[object]]:
    """``column IN (...)`` and its values: the rows of ``facility_ids``, all of them for None."""
    if facility_ids is None:
        return "1 = 1", []
    return f"{column} IN ({', '.join('?' for _ in facility_ids) or 'NULL'})", [*facility_ids]


def read_scores_json(
    db: sqlite_utils.Database,
    facility_ids: Sequence[int] | None,
    first_month: str,
    last_month: str,
) -> str:
    """Stored scores of months [first, last], of the given facilities (None: all), with the
    facility's name, as a JSON array built by SQLite: a year of 50 facilities is ~9,000 rows,
    which Python would take ~10 times longer to turn into dicts and back into JSON (bench/
    quality.py). Scoping is in the query."""
    where, params = facility_clause(facility_ids)
    array, entry, close = (
        ("CAST(json_agg", "json_build_object", ") AS TEXT)")
        if is_postgres(db)
        else ("json_group_array", "json_object", ")")
    )
    row = db.execute(
        f"SELECT {array}({entry}({_SCORE_JSON}, 'facility', f.name){close} FROM"
        " (SELECT * FROM qc_scores s WHERE s.month BETWEEN ? AND ? AND"
        f" {where} ORDER BY s.month, s.facility_id, s.modality, s.body_part) s"
        " JOIN facilities f ON f.id = s.facility_id",
        [first_month, last_month, *params],
    ).fetchone()
    return row[0] or "[]"


def read_scores(
    db: sqlite_utils.Database,
    facility_ids: Sequence[int] | None,
    first_month: str,
    last_month: str,
) -> list[dict[str, Any]]:
    """:func:`read_scores_json`, parsed."""
    return json.loads(read_scores_json(db, facility_ids, first_month, last_month))


def trend_rows(
    db: sqlite_utils.Database,
    facility_ids: Sequence[int] | None,
    first_month: str,
    last_month: str,
    top: int,
) -> list[dict[str, Any]]:
    """The monthly scores of the ``top`` facility × exam items with the highest share of poor
    images over months [first, last] (the dashboard's QC trend): ranked in SQL, so the page
    reads a hundred rows, not a year's."""
    where, params = facility_clause(facility_ids)
    window = [first_month, last_month]
    rows = db.execute(
        "WITH worst AS (SELECT facility_id, modality, body_part FROM qc_scores s"
        f" WHERE s.month BETWEEN ? AND ? AND {where} GROUP BY 1, 2, 3 HAVING SUM(rated) > 0"
        " ORDER BY 1.0 * SUM(poor) / SUM(rated) DESC, 1, 2, 3 LIMIT ?)"
        " SELECT s.facility_id, f.name AS facility, s.modality, s.body_part, s.month, s.poor,"
        " s.rated FROM worst w JOIN qc_scores s USING (facility_id, modality, body_part)"
        " JOIN facilities f ON f.id = s.facility_id WHERE s.month BETWEEN ? AND ?"
        " ORDER BY s.month",
        [*window, *params, top, *window],
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, row, strict=True)) for row in rows]


def window_scores(db: sqlite_utils.Database, first_month: str, last_month: str) -> list[dict]:
    """The summable columns of every stored score in months [first, last]."""
    rows = db.execute(
        "SELECT facility_id, modality, body_part, studies, rated, poor, retakes, flagged"
        " FROM qc_scores WHERE month BETWEEN ? AND ?",
        [first_month, last_month],
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, row, strict=True)) for row in rows]


def closed_month(db: sqlite_utils.Database, key: str) -> str | None:
    """The last month whose closing the monthly task has done (``ingest_state``)."""
    row = db.execute("SELECT value FROM ingest_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_closed_month(db: sqlite_utils.Database, key: str, month: str) -> None:
    db.execute(
        "INSERT INTO ingest_state (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, month],
    )
