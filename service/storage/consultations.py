"""Consultations, their events, and the worklist query."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from worklists.ordering import WorklistKey

from .database import RecordNotFound
from .scope import Scope

_ITEM_COLUMNS = (
    "c.*, f.name AS facility_name, f.aet AS facility_aet, f.timezone AS facility_timezone"
    ", (SELECT COALESCE(NULLIF(h.display_name, ''), h.username) FROM users h"
    " WHERE h.id = c.claimed_by) AS claimed_by_name"
)


def find_for_study(
    db: sqlite_utils.Database, facility_id: int, study_instance_uid: str, accession_number: str
) -> dict[str, Any] | None:
    """The consultation a study belongs to: same study UID, or a request by accession."""
    row = db.execute(
        "SELECT * FROM consultations WHERE facility_id = ? AND study_instance_uid = ?",
        [facility_id, study_instance_uid],
    ).fetchone()
    if row is None and accession_number:
        row = db.execute(
            "SELECT * FROM consultations WHERE facility_id = ? AND accession_number = ?"
            " AND study_instance_uid IS NULL ORDER BY id LIMIT 1",
            [facility_id, accession_number],
        ).fetchone()
    return dict(row) if row else None


def facilities_with_study(db: sqlite_utils.Database, study_instance_uid: str) -> set[int]:
    """Facilities whose images of this study have arrived (a request alone claims nothing)."""
    return {
        row[0]
        for row in db.execute(
            "SELECT facility_id FROM consultations WHERE study_instance_uid = ?"
            " AND received_at IS NOT NULL",
            [study_instance_uid],
        )
    }


def find_by_accession(
    db: sqlite_utils.Database, facility_id: int, accession_number: str
) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT * FROM consultations WHERE facility_id = ? AND accession_number = ?"
        " ORDER BY id LIMIT 1",
        [facility_id, accession_number],
    ).fetchone()
    return dict(row) if row else None


def insert_consultation(db: sqlite_utils.Database, values: dict[str, Any]) -> int:
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    cursor = db.execute(
        f"INSERT INTO consultations ({columns}) VALUES ({marks})", list(values.values())
    )
    return int(cursor.lastrowid)


def update_consultation(
    db: sqlite_utils.Database, consultation_id: int, values: dict[str, Any]
) -> None:
    assignments = ", ".join(f"{column} = ?" for column in values)
    db.execute(
        f"UPDATE consultations SET {assignments} WHERE id = ?",
        [*values.values(), consultation_id],
    )


def append_event(
    db: sqlite_utils.Database,
    consultation_id: int,
    event_type: str,
    at: str,
    actor_user_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Events are append-only: the timeline and every turnaround figure come from them."""
    db.execute(
        "INSERT INTO consultation_events (consultation_id, type, at, actor_user_id, detail)"
        " VALUES (?, ?, ?, ?, ?)",
        [consultation_id, event_type, at, actor_user_id, json.dumps(detail or {})],
    )


def events_of(db: sqlite_utils.Database, consultation_id: int) -> list[dict[str, Any]]:
    return [
        dict(r) | {"detail": json.loads(r["detail"])}
        for r in db.execute(
            "SELECT * FROM consultation_events WHERE consultation_id = ? ORDER BY at, id",
            [consultation_id],
        )
    ]


def get_consultation(
    db: sqlite_utils.Database, scope: Scope, consultation_id: int
) -> dict[str, Any]:
    where, params = scope.where()
    row = db.execute(
        f"SELECT {_ITEM_COLUMNS} FROM consultations c JOIN facilities f ON f.id = c.facility_id"
        f" WHERE c.id = ? AND {where}",
        [consultation_id, *params],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"consultation {consultation_id}")
    return dict(row)


@dataclass(frozen=True)
class WorklistFilter:
    statuses: Sequence[str] = ()
    priorities: Sequence[str] = ()
    modalities: Sequence[str] = ()
    facility_ids: Sequence[int] = ()
    body_parts: Sequence[str] = ()
    queues: Sequence[str] = ()

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        for column, values in (
            ("c.status", self.statuses),
            ("c.priority", self.priorities),
            ("c.modality", self.modalities),
            ("c.facility_id", self.facility_ids),
            ("c.body_part", self.body_parts),
            ("c.queue", self.queues),
        ):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        return (" AND ".join(clauses) or "1 = 1"), params


@dataclass(frozen=True)
class WorklistPage:
    items: list[dict[str, Any]]
    counts: dict[str, Any]
    next: WorklistKey | None


def worklist(
    db: sqlite_utils.Database,
    scope: Scope,
    filters: WorklistFilter,
    limit: int,
    after: WorklistKey | None = None,
) -> WorklistPage:
    """One page of the worklist in (due_at, priority, arrival, id) order, plus counts."""
    scope_sql, scope_params = scope.where()
    filter_sql, filter_params = filters.where()
    base = (
        f"FROM consultations c JOIN facilities f ON f.id = c.facility_id WHERE {scope_sql}"
        f" AND {filter_sql}"
    )
    params: list[object] = [*scope_params, *filter_params]
    page_sql = f"SELECT {_ITEM_COLUMNS} {base}"
    page_params = list(params)
    if after is not None:
        page_sql += " AND (c.due_at, c.priority_rank, c.created_at, c.id) > (?, ?, ?, ?)"
        page_params += [after.due_at, after.priority_rank, after.created_at, after.id]
    page_sql += " ORDER BY c.due_at, c.priority_rank, c.created_at, c.id LIMIT ?"
    rows = [dict(r) for r in db.execute(page_sql, [*page_params, limit + 1])]
    next_key = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_key = WorklistKey(
            last["due_at"], last["priority_rank"], last["created_at"], last["id"]
        )
    counts: dict[str, Any] = {"total": 0, "status": {}, "priority": {}}
    for row in db.execute(
        f"SELECT c.status, c.priority, COUNT(*) AS n {base} GROUP BY c.status, c.priority", params
    ):
        counts["total"] += row["n"]
        counts["status"][row["status"]] = counts["status"].get(row["status"], 0) + row["n"]
        counts["priority"][row["priority"]] = counts["priority"].get(row["priority"], 0) + row["n"]
    return WorklistPage(rows, counts, next_key)


def count_consultations(db: sqlite_utils.Database, *, with_images: bool = False) -> int:
    sql = "SELECT COUNT(*) FROM consultations"
    if with_images:
        sql += " WHERE received_at IS NOT NULL"
    return int(db.execute(sql).fetchone()[0])


def set_claim(
    db: sqlite_utils.Database,
    consultation_id: int,
    user_id: int | None,
    claimed_at: str | None,
    expires_at: str | None,
) -> None:
    """Give the claim lease to a reader (or clear it with ``None``s)."""
    db.execute(
        "UPDATE consultations SET claimed_by = ?, claimed_at = ?, claim_expires_at = ?"
        " WHERE id = ?",
        [user_id, claimed_at, expires_at, consultation_id],
    )


def renew_claim(db: sqlite_utils.Database, consultation_id: int, expires_at: str) -> None:
    """Extend the holder's lease (a heartbeat: no event, only the new expiry)."""
    db.execute(
        "UPDATE consultations SET claim_expires_at = ? WHERE id = ?", [expires_at, consultation_id]
    )


def claim_account(db: sqlite_utils.Database, user_id: int) -> dict[str, Any]:
    """A user who may be handed a claim: role, facility kind and whether enabled."""
    row = db.execute(
        "SELECT u.id, u.username, u.display_name, u.role, u.facility_id, u.locale, u.disabled,"
        " f.name AS facility_name, f.kind AS facility_kind, f.timezone AS facility_timezone"
        " FROM users u JOIN facilities f ON f.id = u.facility_id WHERE u.id = ?",
        [user_id],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"user {user_id}")
    return dict(row)
