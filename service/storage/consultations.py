"""Consultations, their events, and the worklist query."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from worklists.ordering import WorklistKey
from worklists.routing import subspecialties

from .database import RecordNotFound
from .linked_priors import prior_counts
from .patients import LocalPatient, record_local_identity
from .scope import Scope
from .turnaround import record_event

OPEN_CONDITION = "c.status NOT IN ('signed', 'closed', 'cancelled')"
"""Open items (worklists.status.FINISHED_STATUSES excluded), spelled exactly as the WHERE of the
partial indexes of m009: SQLite uses a partial index only when the query's condition matches it."""

_ITEM_COLUMNS = (
    "c.*, f.name AS facility_name, f.aet AS facility_aet, f.timezone AS facility_timezone"
    ", (SELECT COALESCE(NULLIF(h.display_name, ''), h.username) FROM users h"
    " WHERE h.id = c.claimed_by) AS claimed_by_name"
    ", (SELECT json_extract(e.detail, '$.reason') FROM consultation_events e"
    " WHERE e.consultation_id = c.id AND e.type = 'escalated'"
    " ORDER BY e.id DESC LIMIT 1) AS escalation"
)


def find_for_study(
    db: sqlite_utils.Database, facility_id: int, study_instance_uid: str, accession_number: str
) -> dict[str, Any] | None:
    """The consultation a study belongs to: same study UID, or a request by accession.

    A request cancelled before any image came is not one: images arriving for it afterwards
    start a consultation of their own (awaiting a request) instead of reviving the withdrawn one.
    """
    row = db.execute(
        "SELECT * FROM consultations WHERE facility_id = ? AND study_instance_uid = ?"
        f" AND NOT ({_WITHDRAWN}) ORDER BY id LIMIT 1",
        [facility_id, study_instance_uid],
    ).fetchone()
    if row is None and accession_number:
        row = db.execute(
            "SELECT * FROM consultations WHERE facility_id = ? AND accession_number = ?"
            f" AND study_instance_uid IS NULL AND NOT ({_WITHDRAWN}) ORDER BY id LIMIT 1",
            [facility_id, accession_number],
        ).fetchone()
    return dict(row) if row else None


_WITHDRAWN = "status = 'cancelled' AND received_at IS NULL"


def consultation_row(db: sqlite_utils.Database, consultation_id: int) -> dict[str, Any]:
    """The consultation's own row, unscoped (for domain code inside a write transaction)."""
    row = db.execute("SELECT * FROM consultations WHERE id = ?", [consultation_id]).fetchone()
    if row is None:
        raise RecordNotFound(f"consultation {consultation_id}")
    return dict(row)


def consultations_of_studies(
    db: sqlite_utils.Database, facility_id: int, study_instance_uids: list[str]
) -> dict[str, int]:
    """The facility's consultation of each study that has one (its latest), by study UID."""
    if not study_instance_uids:
        return {}
    marks = ", ".join("?" for _ in study_instance_uids)
    rows = db.execute(
        f"SELECT study_instance_uid, MAX(id) AS id FROM consultations WHERE facility_id = ?"
        f" AND study_instance_uid IN ({marks}) GROUP BY study_instance_uid",
        [facility_id, *study_instance_uids],
    )
    return {row["study_instance_uid"]: row["id"] for row in rows}


def find_by_accession(
    db: sqlite_utils.Database, facility_id: int, accession_number: str
) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT * FROM consultations WHERE facility_id = ? AND accession_number = ?"
        " ORDER BY id LIMIT 1",
        [facility_id, accession_number],
    ).fetchone()
    return dict(row) if row else None


def open_by_placer_order(
    db: sqlite_utils.Database, facility_id: int, placer_order_number: str
) -> dict[str, Any] | None:
    """The facility's open consultation for an HIS order number (what a cancel names)."""
    return _open_by(db, facility_id, "placer_order_number", placer_order_number)


def open_by_accession(
    db: sqlite_utils.Database, facility_id: int, accession_number: str
) -> dict[str, Any] | None:
    """The facility's open consultation with this accession number, or None."""
    return _open_by(db, facility_id, "accession_number", accession_number)


def _open_by(
    db: sqlite_utils.Database, facility_id: int, column: str, value: str
) -> dict[str, Any] | None:
    if not value:
        return None
    row = db.execute(
        f"SELECT * FROM consultations c WHERE facility_id = ? AND {column} = ?"
        f" AND {OPEN_CONDITION} ORDER BY id DESC LIMIT 1",
        [facility_id, value],
    ).fetchone()
    return dict(row) if row else None


def insert_consultation(db: sqlite_utils.Database, values: dict[str, Any]) -> int:
    """Insert, and index its patient in the master patient index in the same transaction, so
    that every consultation's patient has a local identity whichever way it came in."""
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    cursor = db.execute(
        f"INSERT INTO consultations ({columns}) VALUES ({marks})", list(values.values())
    )
    consultation_id = int(cursor.lastrowid)
    _index_patient(db, consultation_id)
    return consultation_id


def update_consultation(
    db: sqlite_utils.Database, consultation_id: int, values: dict[str, Any]
) -> None:
    assignments = ", ".join(f"{column} = ?" for column in values)
    db.execute(
        f"UPDATE consultations SET {assignments} WHERE id = ?",
        [*values.values(), consultation_id],
    )
    if _PATIENT_COLUMNS & values.keys():
        _index_patient(db, consultation_id)


_PATIENT_COLUMNS = {"patient_id", "patient_name", "patient_birth_date", "patient_sex"}


def _index_patient(db: sqlite_utils.Database, consultation_id: int) -> None:
    """The consultation's patient as a local identity (service/storage/patients.py)."""
    row = db.execute(
        "SELECT facility_id, patient_id, patient_name, patient_birth_date, patient_sex"
        " FROM consultations WHERE id = ?",
        [consultation_id],
    ).fetchone()
    if row is not None and row[1].strip():
        record_local_identity(db, LocalPatient(*row))


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
    # The dashboard's derived facts, in the same transaction (rebuild_facts recomputes them).
    record_event(db, consultation_id, event_type, at, actor_user_id, detail or {})


def events_of(db: sqlite_utils.Database, consultation_id: int) -> list[dict[str, Any]]:
    """The timeline, oldest first, with each actor's name (display name, else username)."""
    return [
        dict(r) | {"detail": json.loads(r["detail"])}
        for r in db.execute(
            "SELECT e.*, COALESCE(NULLIF(u.display_name, ''), u.username) AS actor"
            " FROM consultation_events e LEFT JOIN users u ON u.id = e.actor_user_id"
            " WHERE e.consultation_id = ? ORDER BY e.at, e.id",
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
    """Empty: the open items only (finished ones are asked for by status)."""
    priorities: Sequence[str] = ()
    modalities: Sequence[str] = ()
    facility_ids: Sequence[int] = ()
    body_parts: Sequence[str] = ()
    queues: Sequence[str] = ()
    claimed_by: int | None = None
    """Only items this user holds with a lease still running at ``now`` (``assigned=me``)."""
    now: str | None = None

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = [] if self.statuses else [OPEN_CONDITION]
        params: list[object] = []
        if self.claimed_by is not None:
            clauses.append("c.claimed_by = ? AND c.claim_expires_at > ?")
            params.extend([self.claimed_by, self.now or ""])
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
    next_mine: int | None = None
    """With ``own_queues`` ordering: the last row's "not mine" flag, part of the cursor."""


def worklist(
    db: sqlite_utils.Database,
    scope: Scope,
    filters: WorklistFilter,
    limit: int,
    after: WorklistKey | None = None,
    *,
    own_queues_of: int | None = None,
    after_mine: int | None = None,
) -> WorklistPage:
    """One page of the worklist in (due_at, priority, arrival, id) order, plus counts.

    With ``own_queues_of`` (a user id) the items of that user's subspecialty queues come first:
    the order becomes (not-mine flag, due_at, priority, arrival, id), still total, so the keyset
    cursor (``after`` plus ``after_mine``) pages without gaps or repeats.
    """
    scope_sql, scope_params = scope.where()
    filter_sql, filter_params = filters.where()
    where = f"WHERE {scope_sql} AND {filter_sql}"
    base = f"FROM consultations c JOIN facilities f ON f.id = c.facility_id {where}"
    params: list[object] = [*scope_params, *filter_params]
    mine_sql, mine_params = "0", []
    if own_queues_of is not None:
        own = _own_queues(db, own_queues_of)
        if own:
            marks = ", ".join("?" for _ in own)
            mine_sql, mine_params = f"(CASE WHEN c.queue IN ({marks}) THEN 0 ELSE 1 END)", own
    page_sql = f"SELECT {_ITEM_COLUMNS}, {mine_sql} AS not_mine {base}"
    page_params: list[object] = [*mine_params, *params]
    key_sql = "c.due_at, c.priority_rank, c.created_at, c.id"
    if own_queues_of is not None:
        key_sql = f"{mine_sql}, {key_sql}"
    if after is not None:
        key = [after.due_at, after.priority_rank, after.created_at, after.id]
        if own_queues_of is not None:
            key = [after_mine if after_mine is not None else 0, *key]
            page_params += mine_params
        page_sql += f" AND ({key_sql}) > ({', '.join('?' for _ in key)})"
        page_params += key
    order_sql = "c.due_at, c.priority_rank, c.created_at, c.id"
    if own_queues_of is not None:
        order_sql = f"not_mine, {order_sql}"
    page_sql += f" ORDER BY {order_sql} LIMIT ?"
    rows = [dict(r) for r in db.execute(page_sql, [*page_params, limit + 1])]
    next_key, next_mine = None, None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_key = WorklistKey(
            last["due_at"], last["priority_rank"], last["created_at"], last["id"]
        )
        next_mine = last["not_mine"] if own_queues_of is not None else None
    priors = prior_counts(db, scope, [row["id"] for row in rows])
    for row in rows:
        row["prior_count"] = priors.get(row["id"], 0)
    counts: dict[str, Any] = {"total": 0, "status": {}, "priority": {}, "queue": {}}
    for row in db.execute(
        # No join here: counts need consultations only, and a covering index answers them.
        f"SELECT c.status, c.priority, c.queue, COUNT(*) AS n FROM consultations c {where}"
        " GROUP BY c.status, c.priority, c.queue",
        params,
    ):
        counts["total"] += row["n"]
        for name in ("status", "priority", "queue"):
            counts[name][row[name]] = counts[name].get(row[name], 0) + row["n"]
    return WorklistPage(rows, counts, next_key, next_mine)


def _own_queues(db: sqlite_utils.Database, user_id: int) -> list[str]:
    row = db.execute("SELECT subspecialties FROM users WHERE id = ?", [user_id]).fetchone()
    return subspecialties(row[0]) if row else []


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


def specialists_reading_for(
    db: sqlite_utils.Database, facility_id: int, now: str
) -> list[dict[str, Any]]:
    """Enabled specialists who read for a facility (the regional centre's and the facility's
    own, as ``consultation_scope`` says), with how many open items each holds a live claim on."""
    return [
        dict(row)
        for row in db.execute(
            "SELECT u.id, u.username, u.display_name, u.subspecialties, u.facility_id,"
            " (SELECT COUNT(*) FROM consultations c WHERE c.claimed_by = u.id"
            f" AND c.claim_expires_at > ? AND {OPEN_CONDITION}) AS claims"
            " FROM users u JOIN facilities f ON f.id = u.facility_id"
            " WHERE u.role = 'specialist' AND u.disabled = 0"
            " AND (f.kind = 'regional' OR u.facility_id = ?)"
            " ORDER BY COALESCE(NULLIF(u.display_name, ''), u.username), u.id",
            [now, facility_id],
        )
    ]


def has_event(db: sqlite_utils.Database, consultation_id: int, event_type: str) -> bool:
    """Whether the consultation's timeline holds an event of this type (a once-only step, such
    as the stat fan-out's ``notified``, checks it inside the write that would add it)."""
    return (
        db.execute(
            "SELECT 1 FROM consultation_events WHERE consultation_id = ? AND type = ?",
            [consultation_id, event_type],
        ).fetchone()
        is not None
    )


def was_opened(db: sqlite_utils.Database, consultation_id: int, version: int) -> bool:
    """Whether the clinic has already opened this signed version (its first opening is an
    ``opened`` event; later ones add nothing to the timeline)."""
    return (
        db.execute(
            "SELECT 1 FROM consultation_events WHERE consultation_id = ? AND type = 'opened'"
            " AND CAST(json_extract(detail, '$.version') AS INTEGER) = ?",
            [consultation_id, version],
        ).fetchone()
        is not None
    )


def received_by_accession(db: sqlite_utils.Database, accession_number: str) -> int | None:
    """The id of a consultation with this accession number whose images have arrived, in any
    facility (the demo seeder waits for its study this way)."""
    row = db.execute(
        "SELECT id FROM consultations WHERE accession_number = ? AND received_at IS NOT NULL",
        [accession_number],
    ).fetchone()
    return row["id"] if row else None


def stat_call_facts(db: sqlite_utils.Database, consultation_id: int) -> dict[str, Any] | None:
    """What a stat call says about a consultation: no patient data, only its routing, due time
    and the sending facility's name."""
    row = db.execute(
        "SELECT c.id, c.priority, c.queue, c.modality, c.due_at, c.facility_id,"
        " f.name AS facility_name FROM consultations c"
        " JOIN facilities f ON f.id = c.facility_id WHERE c.id = ?",
        [consultation_id],
    ).fetchone()
    return dict(row) if row else None


def with_facility(db: sqlite_utils.Database, consultation_id: int) -> dict[str, Any]:
    """The whole consultation row with its facility's name and time zone, unscoped: for
    background work (delivery) that acts for the service, not for a user."""
    row = db.execute(
        "SELECT c.*, f.name AS facility_name, f.timezone AS facility_timezone"
        " FROM consultations c JOIN facilities f ON f.id = c.facility_id WHERE c.id = ?",
        [consultation_id],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"consultation {consultation_id}")
    return dict(row)


def routing_fields(db: sqlite_utils.Database, ids: list[int]) -> list[dict[str, Any]]:
    """What a live subscriber's scope and the worklist page need to address a change to these
    consultations: routing fields only, never patient data. One indexed read (by primary key)."""
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    return [
        dict(row)
        for row in db.execute(
            "SELECT id, facility_id, requested_by, priority, queue FROM consultations"
            f" WHERE id IN ({marks})",
            list(ids),
        )
    ]


def escalation_candidates(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Open consultations not yet escalated as overdue, with their claim, clock start, due time
    and the details of their earlier ``escalated`` events (joined by U+001F), for the sweep to
    decide which need a manager now."""
    sql = (
        "SELECT c.id, c.facility_id, c.requested_by, c.priority, c.queue, c.modality, c.due_at,"
        " c.received_at, c.requested_at, c.created_at, c.claimed_by, c.claim_expires_at,"
        " f.name AS facility_name,"
        " (SELECT group_concat(e.detail, '\x1f') FROM consultation_events e"
        "  WHERE e.consultation_id = c.id AND e.type = 'escalated') AS escalations"
        " FROM consultations c JOIN facilities f ON f.id = c.facility_id"
        f" WHERE {OPEN_CONDITION}"
        " AND NOT EXISTS (SELECT 1 FROM consultation_events o WHERE o.consultation_id = c.id"
        "  AND o.type = 'escalated' AND o.detail LIKE '%\"overdue\"%')"
    )
    return [dict(row) for row in db.execute(sql)]


def open_of_patient(
    db: sqlite_utils.Database, facility_id: int, patient_id: str
) -> list[dict[str, Any]]:
    """The facility's open consultations of a patient (what an HIS patient update changes)."""
    if not patient_id:
        return []
    rows = db.execute(
        f"SELECT * FROM consultations c WHERE facility_id = ? AND patient_id = ?"
        f" AND {OPEN_CONDITION} ORDER BY id",
        [facility_id, patient_id],
    )
    return [dict(r) for r in rows]
