"""The replicas' message channel: PostgreSQL ``LISTEN``/``NOTIFY`` on one channel.

The database every replica already shares carries their small "look again" messages (live
worklist changes, delivery kicks, prefetch hints), so a deployment needs no broker of its own.
A notification is sent at its transaction's commit (autocommit here: at once), reaches every
session listening on the channel in the same database, in send order per sender, and carries
at most 8000 bytes of text. Nothing is kept for a listener that is not connected: the database
rows stay the truth and a message only says "now".

The listener and the sender use one connection each: a connection waiting for notifications is
busy, and a send must never queue behind it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import psycopg

CHANNEL = "teleread_replicas"
#: PostgreSQL refuses a payload of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7999
CONNECT_TIMEOUT_SECONDS = 5


class ReplicaChannel:
    """``LISTEN`` on one connection, ``pg_notify`` on another, both opened when first used."""

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self.url, self.channel = url, channel
        self._sender: psycopg.AsyncConnection | None = None

    async def _connect(self, purpose: str) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            application_name=f"teleread replicas {purpose}",
        )

    async def listen(self, listening: Callable[[], None]) -> AsyncIterator[str]:
        """The payloads of the channel's notifications as they come; ``listening()`` is
        called once ``LISTEN`` is in effect. Raises ``psycopg.Error`` when the connection is
        lost (the caller listens again)."""
        conn = await self._connect("listener")
        try:
            await conn.execute(f"LISTEN {self.channel}")
            listening()
            async for notice in conn.notifies():
                yield notice.payload
        finally:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    async def notify(self, payload: str) -> None:
        """Send one payload; a lost sender connection is opened again at the next send."""
        if self._sender is None or self._sender.closed:
            self._sender = await self._connect("sender")
        try:
            await self._sender.execute("SELECT pg_notify(%s, %s)", [self.channel, payload])
        except (psycopg.Error, OSError):
            await self.close()
            raise

    async def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await sender.close()
