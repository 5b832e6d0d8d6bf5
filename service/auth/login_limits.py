"""Limits on password guessing that cannot be turned into a lock-out of the account's owner.

A hard lock of the account after a few failures (what teleread did) lets anyone who knows a
username lock out the on-duty stroke reader for as long as they keep typing. Instead (OWASP
Authentication Cheat Sheet, "account lockout" and its denial-of-service caveat):

1. **Per address**: at most :data:`MAX_FAILURES_PER_ADDRESS` failures from one address (over every
   account) within :data:`FAILURE_WINDOW`. Stops one machine spraying many accounts.
2. **Per account and address**: at most :data:`MAX_FAILURES_PER_ACCOUNT_ADDRESS` failures on one
   account from one address. Stops one machine guessing one password; the owner on another
   address is not affected.
3. **Per account, a growing delay instead of a lock**: once an account has more than
   :data:`FREE_ACCOUNT_FAILURES` failures (from anywhere) within the window, the next attempt on
   it must wait :data:`FIRST_DELAY` after the last failure, doubling with each further failure up
   to :data:`MAX_DELAY`. Guessing from many addresses at once is slowed to one guess per delay.
   An address the account logged in from successfully within :data:`KNOWN_ADDRESS_DAYS` is not
   delayed (the owner at their usual workstation gets straight in with the right password);
   any other address waits at most :data:`MAX_DELAY`, never minutes.

Every refusal says how long to wait (``Retry-After``). A successful login forgives only the
failures of its own address on the account. The decision is a pure function of the recorded
failures (:func:`refusal`), taken and recorded in one write before the password is verified
(:func:`begin_attempt`), so it holds across every web process and for guesses sent all at once.
An attempt still being verified counts for its account, not yet for its address (a clinic's
readers logging in together behind one address must not trip the address's limit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from ..clock import from_iso, to_iso
from ..storage import Database
from ..storage import login_failures as store

FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ADDRESS = 20
MAX_FAILURES_PER_ACCOUNT_ADDRESS = 5
FREE_ACCOUNT_FAILURES = 5
FIRST_DELAY = 1.0  # seconds
MAX_DELAY = 60.0  # seconds
KNOWN_ADDRESS_DAYS = 30
FORGET_AFTER = timedelta(days=1)


class LoginLocked(Exception):
    """Too many recent failures: try again in ``retry_after`` seconds (``reason`` says which
    limit: ``address``, ``account_address`` or ``account_delay``)."""

    def __init__(self, retry_after: int, reason: str = "account_address") -> None:
        super().__init__("too many failed logins")
        self.retry_after = retry_after
        self.reason = reason


def account_delay(failures: int) -> float:
    """Seconds an account with ``failures`` recent failures makes the next attempt wait."""
    over = failures - FREE_ACCOUNT_FAILURES
    if over <= 0:
        return 0.0
    return min(MAX_DELAY, FIRST_DELAY * 2 ** (over - 1))


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


@dataclass(frozen=True)
class Refusal:
    reason: str
    until: datetime


def refusal(facts: store.FailureFacts, now: datetime) -> Refusal | None:
    """Which limit refuses an attempt now, and until when (None: the attempt may go on)."""
    refusals = []
    if len(facts.by_address) >= MAX_FAILURES_PER_ADDRESS:
        oldest = from_iso(facts.by_address[MAX_FAILURES_PER_ADDRESS - 1])
        refusals.append(Refusal("address", oldest + FAILURE_WINDOW))
    if len(facts.by_account_address) >= MAX_FAILURES_PER_ACCOUNT_ADDRESS:
        oldest = from_iso(facts.by_account_address[MAX_FAILURES_PER_ACCOUNT_ADDRESS - 1])
        refusals.append(Refusal("account_address", oldest + FAILURE_WINDOW))
    delay = account_delay(facts.account_failures)
    if delay and facts.account_last and not facts.known_address:
        refusals.append(
            Refusal("account_delay", from_iso(facts.account_last) + timedelta(seconds=delay))
        )
    live = [r for r in refusals if r.until > now]
    return max(live, key=lambda r: r.until) if live else None


async def begin_attempt(
    database: Database, username: str, client_ip: str | None, now: datetime
) -> int:
    """Before a password is checked: refuse (:class:`LoginLocked`) when the limits say wait,
    else count the attempt (pending) against the account. One write does both, so concurrent
    guesses (in any web process) cannot all slip under a limit together; the password is then
    verified outside any transaction. Returns the attempt's id for :func:`failed` (a wrong
    password: the attempt now counts for the address too) or :func:`withdraw` (a right one; a
    login's forgiving its address covers it)."""
    return await database.write(_begin, username, client_ip, now)


def _begin(db: sqlite_utils.Database, username: str, client_ip: str | None, now: datetime) -> int:
    facts = store.failure_facts(
        db,
        username,
        client_ip,
        to_iso(now - FAILURE_WINDOW),
        to_iso(now - timedelta(days=KNOWN_ADDRESS_DAYS)),
        (MAX_FAILURES_PER_ADDRESS, MAX_FAILURES_PER_ACCOUNT_ADDRESS),
    )
    refused = refusal(facts, now)
    if refused is not None:
        raise LoginLocked(_seconds_until(refused.until, now), refused.reason)
    return store.record_attempt(db, username, client_ip, to_iso(now), to_iso(now - FORGET_AFTER))


def withdraw(db: sqlite_utils.Database, attempt_id: int) -> None:
    """Inside a write: the attempt begun with :func:`begin_attempt` had the right password."""
    store.delete_attempt(db, attempt_id)


def failed(db: sqlite_utils.Database, attempt_id: int) -> None:
    """Inside a write: the attempt begun with :func:`begin_attempt` had a wrong password."""
    store.mark_failed(db, attempt_id)


MAX_LISTED = 500


async def hammered(database: Database, now: datetime) -> dict[str, Any]:
    """The administrators' view: every account with failures in the window, each with the
    addresses they came from and which limit holds now; and the addresses, most failed first.
    Unknown usernames are listed too (``exists`` false): guessing names is an attack as well."""
    rows = await database.read(store.recent_failures, to_iso(now - FAILURE_WINDOW), MAX_LISTED)
    accounts: dict[str, dict[str, Any]] = {}
    addresses: dict[str | None, dict[str, Any]] = {}
    for row in rows:
        account = accounts.setdefault(
            row["username"],
            {
                "username": row["username"],
                "exists": bool(row["account_exists"]),
                "failures": 0,
                "last_failure_at": row["last_failure_at"],
                "addresses": [],
            },
        )
        account["failures"] += row["failures"]
        account["last_failure_at"] = max(account["last_failure_at"], row["last_failure_at"])
        account["addresses"].append(
            {
                "client_ip": row["client_ip"],
                "failures": row["failures"],
                "last_failure_at": row["last_failure_at"],
                "limited": row["failures"] >= MAX_FAILURES_PER_ACCOUNT_ADDRESS,
            }
        )
        address = addresses.setdefault(
            row["client_ip"],
            {"client_ip": row["client_ip"], "failures": 0, "accounts": 0, "last_failure_at": ""},
        )
        address["failures"] += row["failures"]
        address["accounts"] += 1
        address["last_failure_at"] = max(address["last_failure_at"], row["last_failure_at"])
    for account in accounts.values():
        delay = account_delay(account["failures"])
        until = from_iso(account["last_failure_at"]) + timedelta(seconds=delay)
        account["delayed_until"] = to_iso(until) if delay and until > now else None
    for address in addresses.values():
        address["limited"] = address["failures"] >= MAX_FAILURES_PER_ADDRESS
    return {
        "window_minutes": int(FAILURE_WINDOW.total_seconds() // 60),
        "accounts": sorted(accounts.values(), key=lambda a: (-a["failures"], a["username"])),
        "addresses": sorted(
            addresses.values(), key=lambda a: (-a["failures"], a["client_ip"] or "")
        ),
    }
