"""HL7 v2 messages already applied, by sending facility and control ID (MSH-10), with the ACK
each was answered with (migration m029): what makes a retried message harmless."""

from __future__ import annotations

import sqlite_utils


def ack_of(db: sqlite_utils.Database, facility_id: int, control_id: str) -> str | None:
    """The ACK a message with this control ID from this facility was answered with, or None."""
    row = db.execute(
        "SELECT ack FROM hl7_received WHERE facility_id = ? AND control_id = ?",
        [facility_id, control_id],
    ).fetchone()
    return row[0] if row else None


def remember(
    db: sqlite_utils.Database,
    facility_id: int,
    control_id: str,
    message_type: str,
    ack: str,
    received_at: str,
) -> None:
    """Record an applied message and its ACK (in the transaction that applied it)."""
    db.execute(
        "INSERT INTO hl7_received (facility_id, control_id, message_type, ack, received_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [facility_id, control_id, message_type, ack, received_at],
    )


def forget_before(db: sqlite_utils.Database, cutoff: str) -> int:
    """Drop control IDs received before ``cutoff`` (ISO UTC); how many went. The ACK of an
    applied message stays in the audit trail; only the duplicate check forgets it."""
    return db.execute("DELETE FROM hl7_received WHERE received_at < ?", [cutoff]).rowcount
