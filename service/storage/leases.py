"""A lease on once-only work among replicas: a PostgreSQL session-level advisory lock.

Why an advisory lock held by a connection, not a lease row with an expiry: PostgreSQL releases a
session's advisory locks the moment its connection ends, so a replica stopped, killed with
``SIGKILL`` or crashed frees the lease at once, with no clock, no expiry to tune and no row to
clean up; ``pg_try_advisory_lock`` never waits, so a replica that is not the leader just asks
again a second later. A host that vanishes without closing its connection (power, network) is
noticed by the server's TCP keepalive, which this connection sets short (``tcp_keepalives_*``
below: about 11 s). The lock belongs to the database the URL names, so two installations on
one server never contend.

Each taking raises the lease's epoch (``lease_epochs``, on the same connection, once the lock is
granted): the fence the leader's workers show when they claim work (service/storage/fencing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket

import psycopg

from ..clock import to_iso, utc_now
from .fencing import Fence

log = logging.getLogger(__name__)

#: Each query of the lease's connection, and its connecting, must answer within this.
TIMEOUT_SECONDS = 2.0
#: The server notices a vanished client after idle + interval x count seconds.
KEEPALIVE_SQL = (
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"
)


def lease_key(name: str) -> int:
    """The advisory lock's 64-bit key for a lease name (stable across versions and hosts)."""
    digest = hashlib.sha256(f"teleread lease {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLease:
    """One named lease, taken and held on a connection of its own (not the storage pool's:
    the lock must live exactly as long as this connection)."""

    def __init__(
        self, url: str, name: str, timeout: float = TIMEOUT_SECONDS, holder: str = ""
    ) -> None:
        self.url, self.name, self.key, self.timeout = url, name, lease_key(name), timeout
        self.holder = holder or f"{socket.gethostname()} pid {os.getpid()}"
        self._conn: psycopg.AsyncConnection | None = None
        self.epoch = 0
        """The epoch of this lease's last taking (0: never taken by this session)."""

    @property
    def fence(self) -> Fence:
        """What this holder's workers show when they claim work: refused once another holder
        has taken the lease since (service/storage/fencing.py)."""
        return Fence(self.name, self.epoch)

    async def try_take(self) -> bool:
        """Take the lease if nobody holds it; False when another session does or the database
        cannot be reached (asked again later)."""
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that arrives as the query ends, and the app's shutdown would wait forever
            async with asyncio.timeout(self.timeout):
                if self._conn is None or self._conn.closed:
                    self._conn = await self._connect()
                cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
                row = await cursor.fetchone()
                if not (row and row[0]):
                    return False
                self.epoch = await self._raise_epoch(self._conn)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.debug("lease %s: could not ask the database: %s", self.name, exc)
            await self.release()  # a lock taken but not fenced is given up with its session
            return False
        return True

    async def _raise_epoch(self, conn: psycopg.AsyncConnection) -> int:
        """The lease's next epoch, written while the lock is held: from its commit on, the
        previous holder's claims are refused."""
        cursor = await conn.execute(
            "INSERT INTO lease_epochs (name, epoch, holder, taken_at) VALUES (%s, 1, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET epoch = lease_epochs.epoch + 1,"
            " holder = excluded.holder, taken_at = excluded.taken_at RETURNING epoch",
            [self.name, self.holder, to_iso(utc_now())],
        )
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def still_held(self) -> bool:
        """True while the connection holding the lock answers; False (and the connection
        dropped, so the lock is surely given up) once it does not within the timeout."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            async with asyncio.timeout(self.timeout):
                await self._conn.execute("SELECT 1")
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("lease %s: lost the connection holding it: %s", self.name, exc)
            await self.release()
            return False
        return True

    async def release(self) -> None:
        """Give the lease up (closing its connection ends the session, and so the lock)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(1, round(self.timeout)),
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            application_name=f"teleread lease {self.name}",
        )
        await conn.execute(KEEPALIVE_SQL)
        return conn
