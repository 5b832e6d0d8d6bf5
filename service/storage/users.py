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
    dicom_name: str = "",
    grade: str = "attending",
) -> int:
    if db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
        raise Conflict("username_taken", f"user {username!r} already exists")
    if not db.execute("SELECT 1 FROM facilities WHERE id = ?", [facility_id]).fetchone():
        raise RecordNotFound(f"facility {facility_id}")
    cursor = db.execute(
        "INSERT INTO users (username, display_name, password_hash, role, facility_id, locale,"
        " created_at, dicom_name, grade) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            username,
            display_name,
            password_hash,
            role,
            facility_id,
            locale,
            to_iso(utc_now()),
            dicom_name,
            grade,
        ],
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


def clear_login_failures(db: sqlite_utils.Database, username: str) -> None:
    db.execute("DELETE FROM login_failures WHERE username = ?", [username])


# ---- administration -----------------------------------------------------------------

_ADMIN_COLUMNS = (
    "u.id, u.username, u.display_name, u.role, u.facility_id, f.name AS facility_name,"
    " u.disabled, u.created_at, u.subspecialties, u.dicom_name, u.grade"
)

_EDITABLE = (
    "display_name",
    "role",
    "facility_id",
    "disabled",
    "subspecialties",
    "dicom_name",
    "grade",
)


def _admin_row(row: Any) -> dict[str, Any]:
    values = dict(row)
    values["disabled"] = bool(values["disabled"])
    return values


def list_users(db: sqlite_utils.Database, now: str) -> list[dict[str, Any]]:
    """Every account with its facility and number of live sessions (never the password hash)."""
    rows = db.execute(
        f"SELECT {_ADMIN_COLUMNS}, (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id"
        " AND s.revoked_at IS NULL AND s.expires_at > ?) AS active_sessions"
        " FROM users u JOIN facilities f ON f.id = u.facility_id ORDER BY u.username",
        [now],
    )
    return [_admin_row(r) for r in rows]


def get_user(db: sqlite_utils.Database, user_id: int) -> dict[str, Any]:
    """One account as administrators see it (no password hash); RecordNotFound otherwise."""
    row = db.execute(
        f"SELECT {_ADMIN_COLUMNS} FROM users u JOIN facilities f ON f.id = u.facility_id"
        " WHERE u.id = ?",
        [user_id],
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"user {user_id}")
    return _admin_row(row)


def update_user(db: sqlite_utils.Database, user_id: int, **changes: Any) -> None:
    """Set some of display_name, role, facility_id, disabled, subspecialties, dicom_name, grade
    (the caller checked the rules and the name)."""
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if not changes:
        return
    if (
        "facility_id" in changes
        and not db.execute(
            "SELECT 1 FROM facilities WHERE id = ?", [changes["facility_id"]]
        ).fetchone()
    ):
        raise RecordNotFound(f"facility {changes['facility_id']}")
    values = {k: int(v) if k == "disabled" else v for k, v in changes.items()}
    assignments = ", ".join(f"{column} = ?" for column in values)
    cursor = db.execute(f"UPDATE users SET {assignments} WHERE id = ?", [*values.values(), user_id])
    if cursor.rowcount == 0:
        raise RecordNotFound(f"user {user_id}")


def count_enabled_admins(db: sqlite_utils.Database) -> int:
    return int(
        db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0").fetchone()[0]
    )


def revoke_user_sessions(
    db: sqlite_utils.Database, user_id: int, *, keep_session_id: int | None = None
) -> int:
    """Revoke every open session of a user (but ``keep_session_id``); how many were revoked."""
    cursor = db.execute(
        "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"
        " AND id IS NOT ?",
        [to_iso(utc_now()), user_id, keep_session_id],
    )
    return int(cursor.rowcount)


def regional_managers(db: sqlite_utils.Database) -> list[int]:
    """Every enabled manager of the regional centre, by id: who is told when the roster names
    no manager on duty."""
    return [
        row[0]
        for row in db.execute(
            "SELECT u.id FROM users u JOIN facilities f ON f.id = u.facility_id"
            " WHERE u.role = 'manager' AND u.disabled = 0 AND f.kind = 'regional' ORDER BY u.id"
        )
    ]


def set_dicom_name(db: sqlite_utils.Database, username: str, dicom_name: str) -> None:
    """Set (or clear, with "") the DICOM person name a user signs reports with."""
    cursor = db.execute(
        "UPDATE users SET dicom_name = ? WHERE username = ?", [dicom_name, username]
    )
    if cursor.rowcount == 0:
        raise RecordNotFound(f"user {username!r}")


def set_grade(db: sqlite_utils.Database, username: str, grade: str) -> None:
    """Set a reader's professional grade (worklists.review.Grade)."""
    cursor = db.execute("UPDATE users SET grade = ? WHERE username = ?", [grade, username])
    if cursor.rowcount == 0:
        raise RecordNotFound(f"user {username!r}")


def signer_names(db: sqlite_utils.Database, user_id: int) -> dict[str, Any]:
    """How a report's signer is printed: names, locale and facility name; empty if unknown."""
    row = db.execute(
        "SELECT u.display_name, u.username, u.locale, u.dicom_name, u.grade,"
        " f.name AS facility_name"
        " FROM users u"
        " JOIN facilities f ON f.id = u.facility_id WHERE u.id = ?",
        [user_id],
    ).fetchone()
    return dict(row) if row else {}
