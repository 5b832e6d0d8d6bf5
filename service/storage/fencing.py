"""Fencing the background work of replicas: a leader's work stops counting once another leads.

Among replicas on one PostgreSQL database the leader is whoever holds the lease
(service/storage/leases.py). A leader cut off from the server, or stalled, learns that it lost
the lease only at its next check, a second or more later, and meanwhile its workers may go on.
So each taking of the lease raises the lease's *epoch* (``lease_epochs``, written on the lease's
own connection the moment the lock is granted), and the transaction in which a worker claims its
next piece of work (a report delivery, an HL7 result, the ATNA cursor) first checks that the
epoch is still the one its leader took (:func:`check_fence`): an old leader's claim is refused
(:class:`Superseded`) and rolled back whole. The claim itself is what keeps two workers off one
piece of work (a row claimed in a serializable transaction); the fence is what stops an old
leader taking a *next* piece.

One host (SQLite, or PostgreSQL without replicas taking a lease) has no fence: ``None``
passes every check.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils


@dataclass(frozen=True)
class Fence:
    """The lease a worker works under, and the epoch its leader took it at."""

    lease: str
    epoch: int


class Superseded(Exception):
    """Another replica took the lease since this one did: its background work must stop."""


def current_epoch(db: sqlite_utils.Database, lease: str) -> int:
    """The lease's epoch now (0: never taken)."""
    row = db.execute("SELECT epoch FROM lease_epochs WHERE name = ?", [lease]).fetchone()
    return int(row[0]) if row else 0


def check_fence(db: sqlite_utils.Database, fence: Fence | None) -> None:
    """Refuse (:class:`Superseded`) unless ``fence`` is the lease's epoch now; ``None`` (one
    host, no lease) always passes."""
    if fence is None:
        return
    now = current_epoch(db, fence.lease)
    if now != fence.epoch:
        raise Superseded(
            f"the lease {fence.lease!r} was taken again (epoch {now}, this worker's {fence.epoch})"
        )


#: The queues whose rows a worker claims before each attempt (m047 gave each ``claimed_at``).
CLAIMED_QUEUES = frozenset({"report_deliveries", "hl7_outbox"})


def claim_due_row(
    db: sqlite_utils.Database,
    queue: str,
    row_id: int,
    now: str,
    stale_before: str,
    fence: Fence | None,
) -> bool:
    """Take a due row of ``queue`` for one attempt: True when this worker has it, False when
    it is done, not due, or in another worker's hands (claimed since ``stale_before``);
    refused (:class:`Superseded`) when the worker's leader no longer holds the lease. Recording
    the attempt clears the claim."""
    if queue not in CLAIMED_QUEUES:
        raise ValueError(f"not a claimed queue: {queue}")
    check_fence(db, fence)
    cursor = db.execute(
        f"UPDATE {queue} SET claimed_at = ? WHERE id = ? AND status = 'pending'"
        " AND next_attempt_at <= ? AND (claimed_at IS NULL OR claimed_at < ?)",
        [now, row_id, now, stale_before],
    )
    return cursor.rowcount == 1


def release_claims(db: sqlite_utils.Database, queue: str) -> int:
    """Forget every claim on ``queue`` (one host, at the worker's start: the claims can only
    be its own, from attempts a stop cut short); how many."""
    if queue not in CLAIMED_QUEUES:
        raise ValueError(f"not a claimed queue: {queue}")
    return db.execute(f"UPDATE {queue} SET claimed_at = NULL WHERE claimed_at IS NOT NULL").rowcount
