"""API tokens: only their SHA-256 is stored; revocation is a timestamp, never a deletion."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from .database import RecordNotFound
from .users import _USER_COLUMNS as USER_COLUMNS


def create_token(
    db: sqlite_utils.Database,
    *,
    user_id: int,
    name: str,
    token_hash: str,
    created_at: str,
    expires_at: str,
) -> int:
    cursor = db.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [user_id, name, token_hash, created_at, expires_at],
    )
    return int(cursor.lastrowid)


def tokens_of(db: sqlite_utils.Database, user_id: int) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in db.execute(
            "SELECT id, name, created_at, expires_at, last_used_at, revoked_at"
            " FROM api_tokens WHERE user_id = ? ORDER BY id",
            [user_id],
        )
    ]


def revoke_token(db: sqlite_utils.Database, user_id: int, token_id: int, now: str) -> None:
    """Revoke one of the user's own tokens (another user's token is 'not found')."""
    cursor = db.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
        [now, token_id, user_id],
    )
    if (
        cursor.rowcount == 0
        and not db.execute(
            "SELECT 1 FROM api_tokens WHERE id = ? AND user_id = ?", [token_id, user_id]
        ).fetchone()
    ):
        raise RecordNotFound(f"token {token_id}")


def revoke_user_tokens(db: sqlite_utils.Database, user_id: int, now: str) -> int:
    cursor = db.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        [now, user_id],
    )
    return cursor.rowcount


def token_user(db: sqlite_utils.Database, token_hash: str, now: str) -> dict[str, Any] | None:
    """The live token's user (not revoked, not expired, user enabled)."""
    row = db.execute(
        f"SELECT t.id AS api_token_id, 0 AS session_id, '' AS csrf_token, t.expires_at,"
        " t.last_used_at,"
        f" {USER_COLUMNS}"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " JOIN facilities f ON f.id = u.facility_id"
        " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND t.expires_at > ?"
        " AND u.disabled = 0",
        [token_hash, now],
    ).fetchone()
    return dict(row) if row else None


def touch_token(db: sqlite_utils.Database, token_id: int, now: str, unless_since: str) -> None:
    """Record a use at ``now``, unless one was recorded after ``unless_since`` (concurrent
    requests of one client all saw an old value: only the first writes)."""
    db.execute(
        "UPDATE api_tokens SET last_used_at = ?"
        " WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
        [now, token_id, unless_since],
    )
