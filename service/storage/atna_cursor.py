"""How far the audit trail has been forwarded to each ATNA audit repository.

The trail itself is the durable queue (append-only, ids in chain order): forwarding only keeps,
per destination, the id of the last record the repository is known to have received. It moves
forward only after a send is confirmed (service/audit/forwarding.py), so records written while
the repository is down wait in the trail and go out in order when it is back.

Among replicas the cursor is moved only by a worker that read it where it is (``expected``) and
whose leader still holds the lease (``fence``, service/storage/fencing.py): an old leader still
forwarding when a new one starts stops at its next record instead of sending the trail twice.
"""

from __future__ import annotations

import sqlite_utils

from .fencing import Fence, check_fence


class ForwardingMoved(Exception):
    """The cursor is not where this worker read it: another worker forwards to this
    destination."""


def forwarded_through(db: sqlite_utils.Database, destination: str) -> int:
    """The id of the last record confirmed sent to ``destination`` (0: none yet)."""
    row = db.execute(
        "SELECT last_audit_id FROM atna_forwarding WHERE destination = ?", [destination]
    ).fetchone()
    return int(row[0]) if row else 0


def mark_forwarded(
    db: sqlite_utils.Database,
    destination: str,
    audit_id: int,
    at: str,
    expected: int | None = None,
    fence: Fence | None = None,
) -> None:
    """Record that ``destination`` has every record up to ``audit_id`` (never moves back).

    ``expected``: the cursor as the worker read it, refused (:class:`ForwardingMoved`) when it
    moved since; ``fence``: refused (``Superseded``) when another replica leads now."""
    check_fence(db, fence)
    if expected is not None and (found := forwarded_through(db, destination)) != expected:
        raise ForwardingMoved(
            f"the ATNA cursor of {destination} is at {found}, not {expected} as read"
        )
    db.execute(
        "INSERT INTO atna_forwarding (destination, last_audit_id, forwarded_at) VALUES (?, ?, ?)"
        " ON CONFLICT (destination) DO UPDATE SET"
        " last_audit_id = max(atna_forwarding.last_audit_id, excluded.last_audit_id),"
        " forwarded_at = excluded.forwarded_at",
        [destination, audit_id, at],
    )
