"""QC scores (m036): the rows the monthly recomputation reads, and the stored figures.

The month's studies come from ``turnaround_facts`` (received time, first signature's rating,
cancellation; indexed on ``received_at``) joined to the consultation (patient id, body part) and
its report (the technical-parameters flag). Scores are replaced a month at a time in one
transaction, so a reader sees the old month or the new one, never half of each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlite_utils

from worklists.quality import QcScore, StudyRow

SCORE_COLUMNS = (
    "facility_id", "modality", "body_part", "month", "studies", "rated", "good", "acceptable",
    "poor", "retakes", "flagged", "reasons", "peer_reviewed", "peer_agreement", "computed_at",
)  # fmt: skip


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def study_rows(db: sqlite_utils.Database, since: str, until: str) -> list[StudyRow]:
    """Consultations received in [since, until) (UTC ISO 8601) and not cancelled."""
    cursor = db.execute(
        "SELECT f.facility_id, c.patient_id, c.modality, c.body_part, f.received_at,"
        " f.quality, f.quality_reason, COALESCE(r.technical_flagged, 0)"
        " FROM turnaround_facts f JOIN consultations c ON c.id = f.consultation_id"
        " LEFT JOIN reports r ON r.consultation_id = f.consultation_id"
        " WHERE f.received_at >= ? AND f.received_at < ? AND f.cancelled_at IS NULL",
        [since, until],
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
    first = db.execute("SELECT MIN(received_at), MAX(received_at) FROM turnaround_facts").fetchone()
    if first[0] is None:
        return []
    months, (year, month) = [], (int(first[0][:4]), int(first[0][5:7]))
    last = first[1][:7]
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def read_scores(
    db: sqlite_utils.Database,
    facility_ids: Sequence[int] | None,
    first_month: str,
    last_month: str,
) -> list[dict[str, Any]]:
    """Stored scores of months [first, last], of the given facilities (None: all), with the
    facility's name; scoping is in the query."""
    where, params = "s.month BETWEEN ? AND ?", [first_month, last_month]
    if facility_ids is not None:
        where += f" AND s.facility_id IN ({', '.join('?' for _ in facility_ids) or 'NULL'})"
        params.extend(facility_ids)
    rows = db.execute(
        "SELECT s.*, f.name AS facility FROM qc_scores s JOIN facilities f ON f.id = s.facility_id"
        f" WHERE {where} ORDER BY s.month, f.name, s.modality, s.body_part",
        params,
    )
    names = [d[0] for d in rows.description]
    items = [dict(zip(names, row, strict=True)) for row in rows]
    for item in items:
        item["reasons"] = json.loads(item["reasons"])
    return items


def window_scores(db: sqlite_utils.Database, first_month: str, last_month: str) -> list[dict]:
    """The summable columns of every stored score in months [first, last]."""
    rows = db.execute(
        "SELECT facility_id, modality, body_part, studies, rated, poor, retakes, flagged"
        " FROM qc_scores WHERE month BETWEEN ? AND ?",
        [first_month, last_month],
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, row, strict=True)) for row in rows]


def set_technical_flag(db: sqlite_utils.Database, consultation_id: int, flagged: bool) -> None:
    """A reader's mark that the study's technical parameters were wrong (its report's row)."""
    db.execute(
        "UPDATE reports SET technical_flagged = ? WHERE consultation_id = ?",
        [int(flagged), consultation_id],
    )
