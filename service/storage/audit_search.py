"""Searching the audit trail: filters and scope as SQL, newest first, paged by record id.

The search by patient goes through ``audit_patients`` (filled by ``append_audit``), so it finds
records whose ``patient_id`` is the patient *and* worklist queries that listed the patient.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from .audit import audit_patient_ids

#: Columns of a search answer, in order (the chain fields are left to the exports).
ITEM_COLUMNS = (
    "id",
    "at",
    "username",
    "role",
    "facility_id",
    "action",
    "resource_type",
    "resource_id",
    "patient_id",
    "study_instance_uid",
    "client_ip",
    "outcome",
    "detail",
)


@dataclass(frozen=True)
class Names:
    """Names the records refer to by id (display names, facility names, patients' names),
    looked up by :func:`names_for` for the ATNA export (service/audit/atna.py)."""

    users: Mapping[int, str] = field(default_factory=dict)
    facilities: Mapping[int, str] = field(default_factory=dict)
    patients: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditFilter:
    """What to look for. Times are stored-format UTC strings: ``since`` inclusive, ``until``
    exclusive, so consecutive windows neither overlap nor leave gaps."""

    patient_id: str | None = None
    username: str | None = None
    facility_id: int | None = None
    action: str | None = None
    outcome: str | None = None
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class AuditScope:
    """Whose records a caller may read: ``facility_ids`` None means every facility's."""

    facility_ids: tuple[int, ...] | None

    @classmethod
    def for_caller(cls, role: str, facility_kind: str, facility_id: int) -> AuditScope:
        """Admins and the regional centre's managers read everything; a county or township
        manager reads the records of their own facility's users; anyone else nothing."""
        if role == "admin" or (role == "manager" and facility_kind == "regional"):
            return EVERYONE
        if role == "manager":
            return cls((facility_id,))
        return cls(())


EVERYONE = AuditScope(None)


@dataclass(frozen=True)
class AuditPage:
    items: list[dict[str, Any]]
    next_before: int | None


def _conditions(flt: AuditFilter, scope: AuditScope) -> tuple[list[str], list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if scope.facility_ids is not None:
        marks = ", ".join("?" for _ in scope.facility_ids) or "NULL"
        clauses.append(f"a.facility_id IN ({marks})")
        params.extend(scope.facility_ids)
    for column, value in (
        ("a.username", flt.username),
        ("a.facility_id", flt.facility_id),
        ("a.action", flt.action),
        ("a.outcome", flt.outcome),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if flt.since is not None:
        clauses.append("a.at >= ?")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append("a.at < ?")
        params.append(flt.until)
    return clauses, params


def _select(
    flt: AuditFilter, scope: AuditScope, id_clause: str, id_value: int | None, order: str
) -> tuple[str, list[object]]:
    """The SELECT for one page; with a patient it walks the patient index in id order."""
    clauses, params = _conditions(flt, scope)
    if flt.patient_id is not None:
        source = "audit_patients p JOIN audit_log a ON a.id = p.audit_id"
        key = "p.audit_id"
        clauses.insert(0, "p.patient_id = ?")
        params.insert(0, flt.patient_id)
    else:
        source, key = "audit_log a", "a.id"
    if id_value is not None:
        clauses.append(f"{key} {id_clause} ?")
        params.append(id_value)
    where = " AND ".join(clauses) or "1 = 1"
    return f"SELECT a.* FROM {source} WHERE {where} ORDER BY {key} {order} LIMIT ?", params


def search_audit(
    db: sqlite_utils.Database,
    flt: AuditFilter,
    scope: AuditScope,
    limit: int,
    before_id: int | None = None,
) -> AuditPage:
    """Newest first; ``before_id`` continues after the last id of the previous page."""
    sql, params = _select(flt, scope, "<", before_id, "DESC")
    rows = db.execute(sql, [*params, limit + 1]).fetchall()
    items = [_item(dict(row)) for row in rows[:limit]]
    return AuditPage(items, items[-1]["id"] if len(rows) > limit else None)


def _item(row: dict[str, Any]) -> dict[str, Any]:
    item = {name: row[name] for name in ITEM_COLUMNS}
    item["detail"] = json.loads(row["detail"])
    return item


def audit_batch(
    db: sqlite_utils.Database,
    flt: AuditFilter,
    scope: AuditScope,
    after_id: int = 0,
    batch: int = 1000,
) -> list[dict[str, Any]]:
    """Stored rows (chain fields included) in chain order, for the exports."""
    sql, params = _select(flt, scope, ">", after_id, "ASC")
    return [dict(row) for row in db.execute(sql, [*params, batch]).fetchall()]


def names_for(
    db: sqlite_utils.Database, rows: Iterable[dict[str, Any]], scope: AuditScope
) -> Names:
    """Display names of users, names of facilities, and patients' names where unambiguous.

    Patient ids are only unique within a facility, so a name is given only when every study
    and consultation with that id agrees on it. A caller limited to some facilities gets
    patient names from those facilities' consultations only: a search term must never turn
    into another clinic's patient name.
    """
    rows = list(rows)
    user_ids = sorted({r["user_id"] for r in rows if r["user_id"] is not None})
    facility_ids = sorted({r["facility_id"] for r in rows if r["facility_id"] is not None})
    patient_ids: set[str] = set()
    for row in rows:
        detail = row["detail"]
        detail = json.loads(detail) if isinstance(detail, str) else detail
        patient_ids.update(audit_patient_ids(row["patient_id"], detail))
    users = _lookup(db, "SELECT id, display_name FROM users WHERE id IN ({})", user_ids)
    facilities = _lookup(db, "SELECT id, name FROM facilities WHERE id IN ({})", facility_ids)
    candidates: dict[str, set[str]] = {}
    queries = ["SELECT patient_id, patient_name FROM consultations WHERE patient_id IN ({})"]
    if scope.facility_ids is None:
        queries.append("SELECT patient_id, patient_name FROM studies WHERE patient_id IN ({})")
    else:
        marks = ", ".join(str(int(f)) for f in scope.facility_ids) or "NULL"
        queries[0] += f" AND facility_id IN ({marks})"
    for query in queries:
        for patient_id, name in _pairs(db, query, sorted(patient_ids)):
            candidates.setdefault(patient_id, set()).add(name)
    named = {pid: names - {""} for pid, names in candidates.items()}
    patients = {pid: names.pop() for pid, names in named.items() if len(names) == 1}
    return Names({k: v for k, v in users.items() if v}, facilities, patients)


def _pairs(db: sqlite_utils.Database, query: str, keys: list) -> list[tuple[Any, Any]]:
    found: list[tuple[Any, Any]] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        found.extend(tuple(row) for row in db.execute(query.format(marks), chunk).fetchall())
    return found


def _lookup(db: sqlite_utils.Database, query: str, keys: list) -> dict[Any, Any]:
    return dict(_pairs(db, query, keys))
