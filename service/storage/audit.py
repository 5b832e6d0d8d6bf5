"""The audit_log table: append with the hash chain, read back in order.

Each record's patients also go into ``audit_patients`` (one row per patient the record touched or
listed), written in the same transaction, so "who looked at this patient's data" is an indexed
lookup rather than a scan of every record's JSON detail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, fields, replace
from typing import Any

import sqlite_utils

from .audit_chain import GENESIS_HASH, AuditEntry, chain_hash
from .dialects import is_postgres, lock_audit_chain


def audit_patient_ids(patient_id: str, detail: Mapping[str, Any]) -> list[str]:
    """Every patient a record concerns: its ``patient_id`` (also split on commas, as uploads
    join several) and the ids a query listed in ``detail["patients"]``; sorted, no repeats."""
    found: set[str] = set()
    if patient_id:
        found.add(patient_id)
        found.update(part.strip() for part in patient_id.split(","))
    listed = detail.get("patients")
    if isinstance(listed, list):
        found.update(p for p in listed if isinstance(p, str))
    found.discard("")
    return sorted(found)


def _storable(value: Any) -> Any:
    """Text with lone surrogates (possible in JSON input) replaced, so it encodes as UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def _storable_entry(entry: AuditEntry) -> AuditEntry:
    changes = {f.name: _storable(getattr(entry, f.name)) for f in fields(entry)}
    return replace(entry, **changes)


def append_audit(db: sqlite_utils.Database, entry: AuditEntry) -> int:
    """Append one record chained to the last (the writer thread serialises appends; across
    PostgreSQL replicas, the chain's lock)."""
    entry = _storable_entry(entry)
    lock_audit_chain(db)
    last = db.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev_hash = last[0] if last else GENESIS_HASH
    values = asdict(entry) | {
        "detail": json.dumps(entry.detail, sort_keys=True, ensure_ascii=False),
        "prev_hash": prev_hash,
        "hash": chain_hash(prev_hash, entry),
    }
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    cursor = db.execute(
        f"INSERT INTO audit_log ({columns}) VALUES ({marks})", list(values.values())
    )
    audit_id = int(cursor.lastrowid)
    index_patients(db, audit_id, audit_patient_ids(entry.patient_id, entry.detail))
    return audit_id


def append_audits(db: sqlite_utils.Database, entries: list[AuditEntry]) -> list[int]:
    """Append several records, in order, in the caller's one transaction (a group commit)."""
    return [append_audit(db, entry) for entry in entries]


def audit_head(db: sqlite_utils.Database) -> tuple[int, str] | None:
    """The newest record's id and hash (what the anchor keeps), None for an empty trail."""
    row = db.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    return (int(row[0]), row[1]) if row else None


def record_hash(db: sqlite_utils.Database, record_id: int) -> str | None:
    """The stored hash of one record, None when there is no record with that id."""
    row = db.execute("SELECT hash FROM audit_log WHERE id = ?", [record_id]).fetchone()
    return row[0] if row else None


def index_patients(db: sqlite_utils.Database, audit_id: int, patient_ids: list[str]) -> None:
    """Record which patients an audit record concerns (for the search by patient)."""
    db.conn.executemany(
        "INSERT INTO audit_patients (audit_id, patient_id) VALUES (?, ?)",
        [(audit_id, patient_id) for patient_id in patient_ids],
    )


def audit_rows(db: sqlite_utils.Database, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every record in chain order, read in batches (for verification and export)."""
    after = 0
    while True:
        rows = db.execute(
            "SELECT * FROM audit_log WHERE id > ? ORDER BY id LIMIT ?", [after, batch]
        ).fetchall()
        if not rows:
            return
        for row in rows:
            yield dict(row)
        after = rows[-1]["id"]


def audit_patient_rows(db: sqlite_utils.Database, batch: int = 5000) -> Iterator[tuple[int, str]]:
    """The patient index as written, in insertion order: ``(audit_id, patient_id)``."""
    after = 0
    while True:
        rows = db.execute(
            "SELECT rowid, audit_id, patient_id FROM audit_patients WHERE rowid > ?"
            " ORDER BY rowid LIMIT ?",
            [after, batch],
        ).fetchall()
        if not rows:
            return
        for row in rows:
            yield row[1], row[2]
        after = rows[-1][0]


def append_only_triggers_present(db: sqlite_utils.Database) -> bool:
    """True while the triggers refusing UPDATE and DELETE on audit_log are in place."""
    catalogue = (
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND tgenabled <> 'D'"
        if is_postgres(db)
        else "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
    )
    names = {row[0] for row in db.execute(catalogue)}
    return {"audit_log_no_update", "audit_log_no_delete"} <= names
