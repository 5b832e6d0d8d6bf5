"""Logins and sessions: one opaque token serves as the bearer token and the session cookie.

Only a SHA-256 of the token is stored, so a copy of the database opens no session. Sessions expire
and can be revoked server-side (logout now; password change and disabled users with access control).
Repeated failures are limited per address and slowed per account (:mod:`.login_limits`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import to_iso
from ..storage import Database
from ..storage import login_failures as failure_store
from ..storage import tokens as token_store
from ..storage import users as user_store
from .login_limits import LoginLocked
from .password_check import WrongPassword, check_password

__all__ = ["LoginLocked", "LoginFailed", "CurrentUser", "login", "resolve"]

# An API token's "last used" is written at most this often: a script calling the API many times
# a second must not make a write (and a new database version, which empties every web process's
# session cache) of each call.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class CurrentUser:
    """The authenticated caller, as every handler and scope rule sees it."""

    id: int
    username: str
    display_name: str
    role: str
    facility_id: int
    facility_name: str
    facility_kind: str
    facility_timezone: str
    locale: str | None
    session_id: int
    csrf_token: str
    api_token_id: int | None = None
    expires_at: str | None = None
    """When the session or token ends (UTC ISO); caches must not outlive it."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CurrentUser:
        return cls(
            id=row["id"],
            username=row["username"],
            display_name=row["display_name"],
            role=row["role"],
            facility_id=row["facility_id"],
            facility_name=row["facility_name"],
            facility_kind=row["facility_kind"],
            facility_timezone=row["facility_timezone"],
            locale=row["locale"],
            session_id=row["session_id"],
            csrf_token=row["csrf_token"],
            api_token_id=row.get("api_token_id"),
            expires_at=row.get("expires_at"),
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "facility_id": self.facility_id,
            "facility_name": self.facility_name,
            "facility_kind": self.facility_kind,
            "facility_timezone": self.facility_timezone,
            "locale": self.locale,
        }


class LoginFailed(Exception):
    """Wrong username or password (never says which)."""


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime
    user: CurrentUser


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def login(
    database: Database,
    username: str,
    password: str,
    client_ip: str | None,
    *,
    now: datetime,
    lifetime: timedelta,
) -> NewSession:
    """Check the limits and count the attempt (one short write), verify the password on the
    hashing threads (and rehash one made with old parameters there too), then one short write:
    the attempt failed, or the session opens. No transaction is open while argon2 runs."""
    try:
        checked = await check_password(
            database,
            username,
            password,
            client_ip,
            now,
            enabled_only=True,
            rehash=True,
            settle=False,
        )
    except WrongPassword as exc:
        raise LoginFailed() from exc
    row, new_hash = checked.account, checked.new_hash
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    expires = now + lifetime

    def open_session(db: Any) -> dict[str, Any] | None:
        failure_store.clear_failures_from(db, username, client_ip)  # this attempt's too
        if new_hash is not None:
            user_store.set_password_hash(db, row["id"], new_hash)
        user_store.create_session(
            db,
            token_hash=token_hash(token),
            csrf_token=csrf,
            user_id=row["id"],
            client_ip=client_ip,
            expires_at=to_iso(expires),
        )
        return user_store.session_user(db, token_hash(token), to_iso(now))

    session_row = await database.write(open_session)
    assert session_row is not None
    return NewSession(token, csrf, expires, CurrentUser.from_row(session_row))


async def resolve(
    database: Database, token: str, now: datetime, *, bearer: bool = False
) -> CurrentUser | None:
    """The user behind a session token, or (bearer only) behind an API token."""
    digest = token_hash(token)
    row = await database.read(user_store.session_user, digest, to_iso(now))
    if row is None and bearer:
        row = await database.read(token_store.token_user, digest, to_iso(now))
        if row is not None and _touch_due(row["last_used_at"], now):
            await database.write(
                token_store.touch_token,
                row["api_token_id"],
                to_iso(now),
                to_iso(now - TOKEN_TOUCH_INTERVAL),
            )
    return CurrentUser.from_row(row) if row else None


def _touch_due(last_used_at: str | None, now: datetime) -> bool:
    return last_used_at is None or last_used_at <= to_iso(now - TOKEN_TOUCH_INTERVAL)


@dataclass(frozen=True)
class NewApiToken:
    id: int
    token: str
    expires_at: datetime


async def create_api_token(
    database: Database, user: CurrentUser, name: str, *, now: datetime, lifetime: timedelta
) -> NewApiToken:
    """A named bearer token for an API client; shown once, stored only as a hash."""
    token = "trt_" + secrets.token_urlsafe(32)
    expires = now + lifetime
    token_id = await database.write(
        token_store.create_token,
        user_id=user.id,
        name=name,
        token_hash=token_hash(token),
        created_at=to_iso(now),
        expires_at=to_iso(expires),
    )
    return NewApiToken(token_id, token, expires)


async def logout(database: Database, user: CurrentUser) -> None:
    await database.write(user_store.revoke_session, user.session_id)
