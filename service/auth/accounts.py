"""User accounts: what administrators may do to them, and what each user may do to their own.

The rules live here, so the admin API, the pages and any later caller (CLI, import) share them:

- the last enabled administrator can be neither disabled nor demoted (``last_admin``), and an
  administrator cannot disable or demote themselves (``self_lockout``): somebody must always be
  able to administer the consortium;
- disabling an account or resetting its password revokes every open session of the account in the
  same transaction, so a stolen or departed login stops working at once (a changed role or
  facility needs no revocation: sessions resolve the account afresh on every request);
- changing one's own password needs the current one, counts wrong guesses like failed logins
  (same lockout), and logs out every *other* session.

Password hashing (argon2, deliberately slow) and relocking signing keys run off the event loop
and outside any write transaction: the CPU work first, then one short write.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from ..clock import to_iso, utc_now
from ..storage import Conflict, Database
from ..storage import tokens as token_store
from ..storage import users as user_store
from . import login_limits
from .identities import relocked_keys, revoke_after_reset, store_relocked
from .password_check import check_password
from .passwords import hash_password_async
from .sessions import CurrentUser


@dataclass(frozen=True)
class NewAccount:
    username: str
    role: str
    facility_id: int
    password: str
    display_name: str = ""
    dicom_name: str = ""
    """DICOM person name the reports' SR carries, already checked; "" derives it."""
    grade: str = "attending"
    """Professional grade (worklists.review.Grade): decides whether the reports need review."""


@dataclass(frozen=True)
class AccountChange:
    """Fields an administrator sets on an account; None leaves a field as it is."""

    display_name: str | None = None
    role: str | None = None
    facility_id: int | None = None
    disabled: bool | None = None
    subspecialties: str | None = None
    """Comma-separated queue names a specialist reads first (e.g. "neuro,chest")."""
    dicom_name: str | None = None
    """DICOM person name for the reports' SR, already checked; "" clears it (derived again)."""
    grade: str | None = None
    """Professional grade (worklists.review.Grade): resident, attending, associate_chief, chief."""

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class AccountChanged:
    changes: dict[str, Any]
    sessions_revoked: int


async def create_account(database: Database, account: NewAccount) -> int:
    """A new enabled account; ``username_taken`` (409) or an unknown facility (404) otherwise."""
    password_hash = await hash_password_async(account.password)
    return await database.write(
        user_store.add_user,
        username=account.username,
        password_hash=password_hash,
        role=account.role,
        facility_id=account.facility_id,
        display_name=account.display_name,
        dicom_name=account.dicom_name,
        grade=account.grade,
    )


def _check_admin_remains(
    db: sqlite_utils.Database, actor: CurrentUser, target: dict[str, Any], change: dict[str, Any]
) -> None:
    """Refuse a change that would leave nobody, or not the actor, able to administer."""
    if target["role"] != "admin" or target["disabled"]:
        return
    demoted = "role" in change and change["role"] != "admin"
    if not (change.get("disabled") or demoted):
        return
    if user_store.count_enabled_admins(db) <= 1:
        raise Conflict("last_admin", "the last enabled administrator must stay an administrator")
    if target["id"] == actor.id:
        raise Conflict(
            "self_lockout", "you cannot disable your own account or remove your own admin role"
        )


async def change_account(
    database: Database, actor: CurrentUser, user_id: int, change: AccountChange
) -> AccountChanged:
    """Apply an administrator's change; disabling revokes the account's sessions at once."""

    def apply(db: sqlite_utils.Database) -> AccountChanged:
        target = user_store.get_user(db, user_id)
        changes = {k: v for k, v in change.given().items() if target[k] != v}
        _check_admin_remains(db, actor, target, changes)
        user_store.update_user(db, user_id, **changes)
        revoked = user_store.revoke_user_sessions(db, user_id) if changes.get("disabled") else 0
        return AccountChanged(changes, revoked)

    return await database.write(apply)


async def reset_password(
    database: Database, actor: CurrentUser, user_id: int, password: str
) -> int:
    """Set a new password chosen by an administrator; revokes the account's sessions.

    Resetting one's own password this way keeps the session doing it (like a self-service
    change). A reset also lifts a login lockout of the account. Returns the sessions revoked.
    """
    password_hash = await hash_password_async(password)
    keep = actor.session_id if actor.id == user_id else None

    def apply(db: sqlite_utils.Database) -> int:
        target = user_store.get_user(db, user_id)
        user_store.set_password_hash(db, user_id, password_hash)
        user_store.clear_login_failures(db, target["username"])
        if actor.id != user_id:  # a reset by someone else answers a compromise: tokens go too
            token_store.revoke_user_tokens(db, user_id, to_iso(utc_now()))
        # The signing key was locked with the old password, which nobody has any more.
        revoke_after_reset(db, user_id, to_iso(utc_now()))
        return user_store.revoke_user_sessions(db, user_id, keep_session_id=keep)

    return await database.write(apply)


async def change_own_password(
    database: Database,
    user: CurrentUser,
    current_password: str,
    new_password: str,
    client_ip: str | None,
    *,
    now: datetime,
) -> int:
    """The user's own change: the current password first; other sessions are revoked.

    Wrong current passwords are recorded as failed logins, so a stolen session cannot be used
    to guess the password faster than the login form allows (:class:`LoginLocked` then).
    Returns the number of other sessions revoked.
    """
    checked = await check_password(
        database, user.username, current_password, client_ip, now, settle=False
    )
    attempt = checked.attempt
    password_hash = await hash_password_async(new_password)
    relocked = await relocked_keys(database, user.id, current_password, new_password)

    def apply(db: sqlite_utils.Database) -> int:
        login_limits.withdraw(db, attempt)
        user_store.set_password_hash(db, user.id, password_hash)
        store_relocked(db, user.id, relocked)
        keep = user.session_id or None  # API-token callers (session 0) keep no session
        return user_store.revoke_user_sessions(db, user.id, keep_session_id=keep)

    return await database.write(apply)
