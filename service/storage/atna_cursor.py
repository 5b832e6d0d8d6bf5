"""How far the audit trail has been forwarded to each ATNA audit repository.

The trail itself is the durable queue (append-only, ids in chain order): forwarding only keeps,
per destination, the id of the last record the repository is known to have received. It moves
forward only after a send is confirmed (service/audit/forwarding.py), so records written while
the repository is down wait in the trail and go out in order when it is back.
"""

from __future__ import annotations

import sqlite_utils


def forwarded_through(db: sqlite_utils.Database, destination: str) -> int:
    """The id of the last record confirmed sent to ``destination`` (0: none yet)."""
    row = db.execute(
        "SELECT last_audit_id FROM atna_forwarding WHERE destination = ?", [destination]
    ).fetchone()
    return int(row[0]) if row else 0


def mark_forwarded(db: sqlite_utils.Database, destination: str, audit_id: int, at: str) -> None:
    """Record that ``destination`` has every record up to ``audit_id`` (never moves back)."""
    db.execute(
        "INSERT INTO atna_forwarding (destination, last_audit_id, forwarded_at) VALUES (?, ?, ?)"
        " ON CONFLICT (destination) DO UPDATE SET"
        " last_audit_id = max(last_audit_id, excluded.last_audit_id),"
        " forwarded_at = excluded.forwarded_at",
        [destination, audit_id, at],
    )
