"""User accounts, sessions and failed-login records."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ..clock import to_iso, utc_now
from .database import Conflict, RecordNotFound

ROLES = ("radiographer", "clinician", "requester", "specialist", "manager", "admin")


def add_user(
    db: sqlite_utils.Database,
    *,
    username: str,
    password_hash: str,
    role: str,
    facility_id: int,
    display_name: str = "",
    locale: str | None = None,
) -> int:
    if db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
        raise Conflict("username_taken", f"user {username!r} already exists")
    if not db.execute("SELECT 1 FROM facilities WHERE id = ?", [facility_id]).fetchone():
        raise RecordNotFound(f"facility {facility_id}")
    cursor = db.execute(
        "INSERT INTO users (username, display_name, password_hash, role, facility_id, locale,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [username, display_name, password_hash, role, facility_id, locale, to_iso(utc_now())],
    )
    return int(cursor.lastrowid)


_USER_COLUMNS = (
    "u.id, u.username, u.display_name, u.password_hash, u.role, u.facility_id, u.locale,"
    " u.disabled, f.name AS facility_name, f.kind AS facility_kind,"
    " f.timezone AS facility_timezone, f.aet AS facility_aet"
)


def user_by_username(db: sqlite_utils.Database, username: str) -> dict[str, Any] | None:
    row = db.execute(
        f"SELECT {_USER_COLUMNS} FROM users u JOIN facilities f ON f.id = u.facility_id"
        " WHERE u.username = ?",
        [username],
    ).fetchone()
    return dict(row) if row else None


def set_password_hash(db: sqlite_utils.Database, user_id: int, password_hash: str) -> None:
    db.execute("UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user_id])


def count_users(db: sqlite_utils.Database) -> int:
    return int(db.execute("SELECT COUNT(*) FROM users").fetchone()[0])


def create_session(
    db: sqlite_utils.Database,
    *,
    token_hash: str,
    csrf_token: str,
    user_id: int,
    client_ip: str | None,
    expires_at: str,
) -> None:
    db.execute(
        "INSERT INTO sessions (token_hash, csrf_token, user_id, client_ip, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [token_hash, csrf_token, user_id, client_ip, to_iso(utc_now()), expires_at],
    )


def session_user(db: sqlite_utils.Database, token_hash: str, now: str) -> dict[str, Any] | None:
    """The live session's user, or None when unknown, expired, revoked or the user is disabled."""
    row = db.execute(
        f"SELECT s.id AS session_id, s.csrf_token, s.expires_at, {_USER_COLUMNS}"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " JOIN facilities f ON f.id = u.facility_id"
        " WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ?"
        " AND u.disabled = 0",
        [token_hash, now],
    ).fetchone()
    return dict(row) if row else None


def revoke_session(db: sqlite_utils.Database, session_id: int) -> None:
    db.execute(
        "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        [to_iso(utc_now()), session_id],
    )


def record_login_failure(db: sqlite_utils.Database, username: str, client_ip: str | None) -> None:
    db.execute(
        "INSERT INTO login_failures (username, client_ip, at) VALUES (?, ?, ?)",
        [username, client_ip, to_iso(utc_now())],
    )


def recent_login_failures(
    db: sqlite_utils.Database, username: str, client_ip: str | None, since: str
) -> tuple[int, int]:
    """Failures since ``since`` for this username, and for this client address."""
    by_user = db.execute(
        "SELECT COUNT(*) FROM login_failures WHERE username = ? AND at > ?", [username, since]
    ).fetchone()[0]
    by_ip = db.execute(
        "SELECT COUNT(*) FROM login_failures WHERE client_ip = ? AND at > ?", [client_ip, since]
    ).fetchone()[0]
    return int(by_user), int(by_ip)


def clear_login_failures(db: sqlite_utils.Database, username: str) -> None:
    db.execute("DELETE FROM login_failures WHERE username = ?", [username])
