"""Messages between replicas on several hosts, over PostgreSQL ``LISTEN``/``NOTIFY``.

The process bus (:mod:`service.runtime.process_bus`) carries live worklist changes, delivery
kicks and prefetch hints between the web processes of one replica, over a Unix socket that
cannot leave its host. With replicas on several hosts sharing one PostgreSQL database, the same
topics also travel here, on the channel of :mod:`service.storage.replica_channel`: every web
process of every replica listens, and hears what the *other replicas* sent (a message carries
its replica's origin id, and a process ignores its own replica's, which the Unix-socket bus
already brought it). The interface is the process bus's (``on``, ``send``), so whoever talks on
one can talk on both (:class:`BothBuses`).

Sending never waits: messages are queued and a task sends them in order; a full queue (the
database unreachable for long) drops the message, as the process bus drops a stuck peer. A lost
listening connection is opened again after :data:`RETRY_SECONDS`; what was sent meanwhile is
not heard (the database is the truth, a message only says "look again, now").
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from typing import Any, Protocol

import psycopg

from ..storage.replica_channel import MAX_PAYLOAD_BYTES, ReplicaChannel
from .process_bus import Handler

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
QUEUE_SIZE = 1000
START_TIMEOUT_SECONDS = 10.0


class MessageBus(Protocol):
    """What a sender or listener needs of a bus: the process bus, this one, or both."""

    def on(self, topic: str, handler: Handler) -> None: ...

    def send(self, topic: str, payload: dict[str, Any]) -> None: ...


class ReplicaBus:
    """The topics of the process bus, between replicas (see the module docstring)."""

    def __init__(self, channel: ReplicaChannel, origin: str) -> None:
        self.channel, self.origin = channel, origin
        self._handlers: dict[str, list[Handler]] = {}
        self._outbox: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Listen and send from now on; returns once the first ``LISTEN`` is in effect, so
        that nothing sent after start-up is missed."""
        self._tasks = [
            asyncio.create_task(self._listen(), name="replica-bus-listener"),
            asyncio.create_task(self._send_queued(), name="replica-bus-sender"),
        ]
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            await self._listening.wait()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.channel.close()

    def on(self, topic: str, handler: Handler) -> None:
        """Call ``handler(payload)`` (synchronous, quick) for each ``topic`` message of
        another replica."""
        if inspect.iscoroutinefunction(handler):
            raise TypeError("replica bus handlers are synchronous; schedule a task from one")
        self._handlers.setdefault(topic, []).append(handler)

    def send(self, topic: str, payload: dict[str, Any]) -> None:
        """Queue a message for every other replica; raises ValueError for one too large."""
        text = encode(self.origin, topic, payload)
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("replica bus: %d messages unsent; dropped one on %r", QUEUE_SIZE, topic)

    async def _send_queued(self) -> None:
        while True:
            text = await self._outbox.get()
            try:
                await self.channel.notify(text)
            except (psycopg.Error, OSError) as exc:
                log.warning("replica bus: could not send a message: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)

    async def _listen(self) -> None:
        while True:
            try:
                async for text in self.channel.listen(self._listening.set):
                    self._dispatch(text)
            except (psycopg.Error, OSError) as exc:
                log.warning("replica bus: lost the channel (%s); listening again", exc)
            await asyncio.sleep(RETRY_SECONDS)

    def _dispatch(self, text: str) -> None:
        message = decode(text)
        if message is None:
            log.warning("replica bus: malformed message ignored")
            return
        origin, topic, payload = message
        if origin == self.origin:
            return
        for handler in self._handlers.get(topic, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("replica bus handler for %r failed", topic)


class BothBuses:
    """Send on, and listen to, several buses at once (the process bus and the replica bus:
    every other process of this replica, and every process of the others)."""

    def __init__(self, *buses: MessageBus) -> None:
        self.buses = buses

    def on(self, topic: str, handler: Handler) -> None:
        for bus in self.buses:
            bus.on(topic, handler)

    def send(self, topic: str, payload: dict[str, Any]) -> None:
        for bus in self.buses:
            bus.send(topic, payload)


def either(*buses: MessageBus | None) -> MessageBus | None:
    """The buses that exist, as one (None when there is none)."""
    present = [bus for bus in buses if bus is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else BothBuses(*present)


def encode(origin: str, topic: str, payload: dict[str, Any]) -> str:
    text = json.dumps({"o": origin, "t": topic, "p": payload}, separators=(",", ":"))
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"replica bus message on {topic!r} is over {MAX_PAYLOAD_BYTES} bytes")
    return text


def decode(text: str) -> tuple[str, str, dict[str, Any]] | None:
    """``(origin, topic, payload)``, or None when the text is not a well-formed message."""
    with contextlib.suppress(ValueError):
        message = json.loads(text)
        if isinstance(message, dict):
            origin, topic, payload = message.get("o"), message.get("t"), message.get("p")
            if isinstance(origin, str) and isinstance(topic, str) and isinstance(payload, dict):
                return origin, topic, payload
    return None
