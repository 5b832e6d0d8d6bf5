"""The audit_log table: append with the hash chain, read back in order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import sqlite_utils

from ..audit.entry import GENESIS_HASH, AuditEntry, chain_hash


def append_audit(db: sqlite_utils.Database, entry: AuditEntry) -> int:
    """Append one record chained to the last (the writer thread serialises appends)."""
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
    return int(cursor.lastrowid)


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
