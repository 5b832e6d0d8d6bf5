"""The mutual-recognition list (m037) and its append-only history of changes.

A change and the list row it moves are written in the same transaction. The list is published
to every signed-in user; the history carries the QC totals behind each change, so reading it is
scoped to facilities in the query like the scores themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

import sqlite_utils

from worklists.recognition import Change, ExamKey, HistoryEntry, status_after


def statuses(db: sqlite_utils.Database) -> dict[ExamKey, str]:
    rows = db.execute("SELECT facility_id, modality, body_part, status FROM recognition")
    return {(f, m, b): status for f, m, b, status in rows}


def apply_changes(
    db: sqlite_utils.Database,
    changes: Iterable[Change],
    at: str,
    by_user: int | None,
    rules: dict[str, Any],
    months: Sequence[str],
) -> int:
    """Record each change and move the list row it concerns; the number recorded."""
    count = 0
    for change in changes:
        facility_id, modality, body_part = change.key
        db.execute(
            "INSERT INTO recognition_changes (facility_id, modality, body_part, change, at,"
            " by_user, reasons, totals, rules, months) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [facility_id, modality, body_part, change.change, at, by_user,
             json.dumps([asdict(r) for r in change.reasons]),
             json.dumps(change.totals.as_dict()), json.dumps(rules), json.dumps(list(months))],
        )  # fmt: skip
        db.execute(
            "INSERT INTO recognition (facility_id, modality, body_part, status, since)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (facility_id, modality, body_part)"
            " DO UPDATE SET status = excluded.status, since = excluded.since",
            [facility_id, modality, body_part, status_after(change.change), at],
        )
        count += 1
    return count


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def listing(db: sqlite_utils.Database, include_suspended: bool = False) -> list[dict[str, Any]]:
    """The list: facility × exam item, status and since when, with the facility's zone."""
    where = "" if include_suspended else "WHERE r.status = 'listed'"
    return _dicts(
        db.execute(
            "SELECT r.facility_id, f.name AS facility, f.aet, f.timezone, r.modality,"
            " r.body_part, r.status, r.since FROM recognition r"
            f" JOIN facilities f ON f.id = r.facility_id {where}"
            " ORDER BY f.name, r.modality, r.body_part"
        )
    )


def history(
    db: sqlite_utils.Database, facility_ids: Sequence[int] | None, limit: int = 500
) -> list[dict[str, Any]]:
    """Changes, latest first, of the given facilities (None: all), with reasons and totals."""
    where, params = "1 = 1", []
    if facility_ids is not None:
        where = f"c.facility_id IN ({', '.join('?' for _ in facility_ids) or 'NULL'})"
        params = list(facility_ids)
    items = _dicts(
        db.execute(
            "SELECT c.id, c.facility_id, f.name AS facility, f.timezone, c.modality,"
            " c.body_part, c.change, c.at, c.by_user, c.reasons, c.totals, c.rules, c.months"
            " FROM recognition_changes c JOIN facilities f ON f.id = c.facility_id"
            f" WHERE {where} ORDER BY c.at DESC, c.id DESC LIMIT ?",
            [*params, limit],
        )
    )
    for item in items:
        for name in ("reasons", "totals", "rules", "months"):
            item[name] = json.loads(item[name])
    return items


def history_of(db: sqlite_utils.Database, key: ExamKey) -> list[HistoryEntry]:
    """One facility × exam item's changes, for :func:`worklists.recognition.was_recognised`."""
    rows = db.execute(
        "SELECT change, at FROM recognition_changes WHERE facility_id = ? AND modality = ?"
        " AND body_part = ? ORDER BY at, id",
        list(key),
    )
    return [HistoryEntry(key, change, at) for change, at in rows]
