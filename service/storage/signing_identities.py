"""Signing identities (a certificate and a password-locked key per user) and trusted CAs."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from .database import RecordNotFound


def current_identity(db: sqlite_utils.Database, user_id: int, now: str) -> dict[str, Any] | None:
    """The user's newest identity that is neither revoked nor expired."""
    row = db.execute(
        "SELECT * FROM signing_identities WHERE user_id = ? AND revoked_at IS NULL"
        " AND not_before <= ? AND not_after > ? ORDER BY id DESC LIMIT 1",
        [user_id, now, now],
    ).fetchone()
    return dict(row) if row else None


def identities_of(db: sqlite_utils.Database, user_id: int) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT id, user_id, source, serial, issuer, subject, not_before, not_after, created_at,"
        " revoked_at, revocation_reason FROM signing_identities WHERE user_id = ? ORDER BY id",
        [user_id],
    )
    return [dict(r) for r in rows]


def add_identity(db: sqlite_utils.Database, values: dict[str, Any]) -> int:
    cursor = db.execute(
        f"INSERT INTO signing_identities ({', '.join(values)})"
        f" VALUES ({', '.join('?' for _ in values)})",
        list(values.values()),
    )
    return int(cursor.lastrowid)


def relock(db: sqlite_utils.Database, identity_id: int, locked_key: bytes) -> None:
    db.execute(
        "UPDATE signing_identities SET locked_key = ? WHERE id = ?", [locked_key, identity_id]
    )


def signer_of(db: sqlite_utils.Database, serial: str) -> dict[str, Any]:
    """Whose certificate ``serial`` (hex) is: the signer's user id and facility."""
    row = db.execute(
        "SELECT i.user_id, u.facility_id FROM signing_identities i JOIN users u ON u.id = i.user_id"
        " WHERE i.serial = ?",
        [serial],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"certificate {serial}")
    return dict(row)


def revoke(db: sqlite_utils.Database, *, serial: str, at: str, reason: str) -> dict[str, Any]:
    """Revoke by certificate serial (hex); revoking twice keeps the first date."""
    row = db.execute("SELECT * FROM signing_identities WHERE serial = ?", [serial]).fetchone()
    if row is None:
        raise RecordNotFound(f"certificate {serial}")
    if row["revoked_at"] is None:
        db.execute(
            "UPDATE signing_identities SET revoked_at = ?, revocation_reason = ? WHERE id = ?",
            [at, reason, row["id"]],
        )
    return dict(db.execute("SELECT * FROM signing_identities WHERE id = ?", [row["id"]]).fetchone())


def revoke_all_of_user(db: sqlite_utils.Database, user_id: int, at: str, reason: str) -> int:
    cursor = db.execute(
        "UPDATE signing_identities SET revoked_at = ?, revocation_reason = ?"
        " WHERE user_id = ? AND revoked_at IS NULL",
        [at, reason, user_id],
    )
    return cursor.rowcount


def revoked_consortium_serials(db: sqlite_utils.Database) -> list[tuple[str, str]]:
    """(serial hex, revoked_at) of every revoked certificate the consortium CA issued."""
    rows = db.execute(
        "SELECT serial, revoked_at FROM signing_identities"
        " WHERE source = 'consortium' AND revoked_at IS NOT NULL ORDER BY revoked_at"
    )
    return [(r["serial"], r["revoked_at"]) for r in rows]


def trusted_cas(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute("SELECT * FROM trusted_cas ORDER BY id")]


def add_trusted_ca(db: sqlite_utils.Database, name: str, certificate_pem: str, now: str) -> int:
    existing = db.execute(
        "SELECT id FROM trusted_cas WHERE certificate = ?", [certificate_pem]
    ).fetchone()
    if existing:
        return int(existing["id"])
    cursor = db.execute(
        "INSERT INTO trusted_cas (name, certificate, added_at) VALUES (?, ?, ?)",
        [name, certificate_pem, now],
    )
    return int(cursor.lastrowid)


def live_locked_keys(db: sqlite_utils.Database, user_id: int) -> list[tuple[int, bytes]]:
    """``(id, locked_key)`` of the user's keys not revoked: what a password change relocks."""
    rows = db.execute(
        "SELECT id, locked_key FROM signing_identities"
        " WHERE user_id = ? AND revoked_at IS NULL ORDER BY id",
        [user_id],
    )
    return [(row["id"], row["locked_key"]) for row in rows]


def revocation_of(db: sqlite_utils.Database, serial: str) -> dict[str, Any] | None:
    """When and why the local certificate with this serial (hex) was revoked: ``revoked_at`` and
    ``revocation_reason``, both None while it stands; None for a certificate not issued here."""
    row = db.execute(
        "SELECT revoked_at, revocation_reason FROM signing_identities WHERE serial = ?", [serial]
    ).fetchone()
    return dict(row) if row else None
