"""Checking an account's password, the one way: under the login limits, off the event loop.

A password is checked at login, and re-entered to change it, to sign a report and to import a
signing key. Every one of these is a way to guess it, so every one counts against the same
limits (:mod:`.login_limits`): a stolen session must not guess faster through the signing form
than the login form allows. argon2 takes tens of milliseconds of CPU by design, so it runs on
the hashing threads (:mod:`.passwords`), never on the event loop, and no transaction is open
while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..storage import Database
from ..storage import users as user_store
from . import login_limits
from .passwords import verify_and_rehash, verify_password_async


class WrongPassword(Exception):
    """The password given is wrong (or, for a login, the account cannot log in)."""


@dataclass(frozen=True)
class CheckedPassword:
    """A right password: the account's row, the pending attempt (when the caller settles it in
    its own write) and, when asked for, a new hash replacing one made with old parameters."""

    account: dict[str, Any]
    attempt: int | None
    new_hash: str | None = None


async def check_password(
    database: Database,
    username: str,
    password: str,
    client_ip: str | None,
    now: datetime,
    *,
    enabled_only: bool = False,
    rehash: bool = False,
    settle: bool = True,
) -> CheckedPassword:
    """Check ``password`` for ``username`` under the login limits.

    :class:`~.login_limits.LoginLocked` when the limits say wait; :class:`WrongPassword` when it
    does not match (or, with ``enabled_only``, the account is disabled), counted as a failure.
    A right password's attempt is withdrawn here when ``settle`` (a short write of its own);
    otherwise the caller withdraws ``attempt`` in the write that acts on the password (a login
    forgives its address's failures, a password change stores the new hash), so the two
    happen together.
    """
    attempt = await login_limits.begin_attempt(database, username, client_ip, now)
    row = await database.read(user_store.user_by_username, username)
    stored = row["password_hash"] if row else None
    if rehash:
        valid, new_hash = await verify_and_rehash(stored, password)
    else:
        valid, new_hash = await verify_password_async(stored, password), None
    if not valid or row is None or (enabled_only and row["disabled"]):
        await database.write(login_limits.failed, attempt)
        raise WrongPassword()
    if settle:
        await database.write(login_limits.withdraw, attempt)
        return CheckedPassword(row, None, new_hash)
    return CheckedPassword(row, attempt, new_hash)
