"""Failed logins: what the login limits (service/auth/login_limits.py) count, and the
administrators' view of who is being hammered.

Kept in SQLite, not in process memory, because several web processes serve one port and a
guesser's requests are spread over all of them by the kernel. Uses the ``login_failures`` table
and its indexes on ``(username, at)`` and ``(client_ip, at)``; addresses are compared with
``IS`` so that a failure with no known address (``NULL``) is counted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils


@dataclass(frozen=True)
class FailureFacts:
    """What the limits need to decide on one attempt (times are UTC ISO strings)."""

    by_address: list[str]
    """Most recent failures from the address (any account; attempts still being checked left
    out), newest first, at most the limit."""
    by_account_address: list[str]
    """Most recent failures of the account from the address, newest first, at most the limit."""
    account_failures: int
    account_last: str | None
    known_address: bool
    """The account logged in successfully from this address recently."""


def failure_facts(
    db: sqlite_utils.Database,
    username: str,
    client_ip: str | None,
    since: str,
    known_since: str,
    limits: tuple[int, int],
) -> FailureFacts:
    """Failures since ``since``; a session of the account from ``client_ip`` since
    ``known_since`` makes the address known. ``limits``: how many of the address's and of the
    account-and-address's failures to return at most."""
    per_address, per_pair = limits
    by_address = [
        row[0]
        for row in db.execute(
            "SELECT at FROM login_failures WHERE client_ip IS ? AND at > ? AND pending = 0"
            " ORDER BY at DESC LIMIT ?",
            [client_ip, since, per_address],
        )
    ]
    by_pair = [
        row[0]
        for row in db.execute(
            "SELECT at FROM login_failures WHERE username = ? AND client_ip IS ? AND at > ?"
            " ORDER BY at DESC LIMIT ?",
            [username, client_ip, since, per_pair],
        )
    ]
    count, last = db.execute(
        "SELECT COUNT(*), MAX(at) FROM login_failures WHERE username = ? AND at > ?",
        [username, since],
    ).fetchone()
    known = client_ip is not None and (
        db.execute(
            "SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE u.username = ? AND s.client_ip = ? AND s.created_at > ? LIMIT 1",
            [username, client_ip, known_since],
        ).fetchone()
        is not None
    )
    return FailureFacts(by_address, by_pair, int(count), last, known)


def record_attempt(
    db: sqlite_utils.Database, username: str, client_ip: str | None, at: str, forget_before: str
) -> int:
    """An attempt whose password is still being checked (``pending``), its id. Up to ten of the
    oldest rows, if from before ``forget_before``, go at the same time: each attempt clears more
    than it adds, so however many names and addresses an attack uses it leaves no lasting table
    (a walk from the start of the rowid order: no index needed, nothing scanned)."""
    cursor = db.execute(
        "INSERT INTO login_failures (username, client_ip, at, pending) VALUES (?, ?, ?, 1)",
        [username, client_ip, at],
    )
    db.execute(
        "DELETE FROM login_failures WHERE id IN"
        " (SELECT id FROM login_failures ORDER BY id LIMIT 10) AND at < ?",
        [forget_before],
    )
    return int(cursor.lastrowid)


def delete_attempt(db: sqlite_utils.Database, attempt_id: int) -> None:
    """The attempt had the right password: it was no failure."""
    db.execute("DELETE FROM login_failures WHERE id = ?", [attempt_id])


def mark_failed(db: sqlite_utils.Database, attempt_id: int) -> None:
    """The attempt had a wrong password: from now on it counts for its address too."""
    db.execute("UPDATE login_failures SET pending = 0 WHERE id = ?", [attempt_id])


def clear_failures_from(db: sqlite_utils.Database, username: str, client_ip: str | None) -> None:
    """A successful login from ``client_ip``: that address's failures on the account are
    forgiven; other addresses' stay (they still slow their sender, and administrators see
    them)."""
    db.execute(
        "DELETE FROM login_failures WHERE username = ? AND client_ip IS ?", [username, client_ip]
    )


def recent_failures(db: sqlite_utils.Database, since: str, limit: int) -> list[dict[str, Any]]:
    """Failures since ``since`` grouped by account and address, with whether the account
    exists: the rows of the administrators' view, the most failed accounts first."""
    rows = db.execute(
        "SELECT f.username, f.client_ip, COUNT(*) AS failures, MAX(f.at) AS last_failure_at,"
        " MIN(f.at) AS first_failure_at,"
        " EXISTS(SELECT 1 FROM users u WHERE u.username = f.username) AS account_exists,"
        " SUM(COUNT(*)) OVER (PARTITION BY f.username) AS account_failures"
        " FROM login_failures f WHERE f.at > ? AND f.pending = 0"
        " GROUP BY f.username, f.client_ip"
        " ORDER BY account_failures DESC, f.username, failures DESC LIMIT ?",
        [since, limit],
    ).fetchall()
    return [dict(row) for row in rows]
