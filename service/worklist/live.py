"""Live worklist updates: a publish/subscribe hub per web process feeding browsers (SSE).

Publishers (ingest, request filing, claims, reports) call :meth:`LiveUpdates.publish` with what
changed; each subscriber (one open worklist page) gets only the changes its user's scope allows,
through a bounded queue so a slow browser never blocks a publisher. When several web processes
serve the port, a browser's stream may be held by any of them: each hub relays what is published
in its process over the process bus, and delivers what the others relay (``service.app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..storage.scope import Scope

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


@dataclass(frozen=True)
class WorklistChange:
    """Something a worklist shows changed. ``kind``: new, updated, claimed, released, signed,
    escalated, message."""

    kind: str
    consultation_id: int
    facility_id: int
    requested_by: int | None = None
    priority: str = "routine"
    queue: str = "general"
    detail: dict[str, Any] | None = None

    @classmethod
    def of(
        cls, row: Mapping[str, Any], kind: str, detail: dict[str, Any] | None = None
    ) -> WorklistChange:
        """The change of ``kind`` to the consultation ``row`` (its ``id``, ``facility_id``,
        ``requested_by``, ``priority`` and ``queue``: routing fields only, never patient data,
        because a change is relayed between web processes and shown to every page in scope)."""
        return cls(
            kind=kind,
            consultation_id=row["id"],
            facility_id=row["facility_id"],
            requested_by=row["requested_by"],
            priority=row["priority"] or "routine",
            queue=row.get("queue") or "general",
            detail=detail,
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class LiveUpdates:
    """Fan-out of worklist changes to scoped subscribers."""

    def __init__(self) -> None:
        self._subscribers: dict[asyncio.Queue[WorklistChange | None], Scope] = {}
        self._relays: list[Callable[[WorklistChange], None]] = []
        self._watchers: list[Callable[[WorklistChange], None]] = []

    def publish(self, change: WorklistChange) -> None:
        """A change made in this process: to its subscribers, and to the other web processes
        (``relay_to``), whose hubs :meth:`deliver` it to theirs. Never blocks."""
        self.deliver(change)
        for relay in self._relays:
            try:
                relay(change)
            except Exception:
                log.exception("could not relay a live change to the other web processes")

    def relay_to(self, relay: Callable[[WorklistChange], None]) -> None:
        """Also hand every change published here to ``relay`` (the process bus)."""
        self._relays.append(relay)

    def watch(self, watcher: Callable[[WorklistChange], None]) -> None:
        """Also call ``watcher`` (quick, never blocking) with every change delivered here: in
        the primary, the changes of every web process (the modality worklist files follow them)."""
        self._watchers.append(watcher)

    def unwatch(self, watcher: Callable[[WorklistChange], None]) -> None:
        """Stop calling ``watcher`` (a task that stops: a replica that no longer leads)."""
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def deliver(self, change: WorklistChange) -> None:
        """Deliver to every subscriber whose scope covers the change; never blocks."""
        for watcher in self._watchers:
            try:
                watcher(change)
            except Exception:
                log.exception("a live change watcher failed")
        for queue, scope in list(self._subscribers.items()):
            if not scope.allows(change.facility_id, change.requested_by):
                continue
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(change)

    @contextlib.asynccontextmanager
    async def subscribe(self, scope: Scope) -> AsyncIterator[asyncio.Queue[WorklistChange | None]]:
        """A queue of changes for one listener; ``None`` in it means the service is stopping."""
        queue: asyncio.Queue[WorklistChange | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers[queue] = scope
        try:
            yield queue
        finally:
            self._subscribers.pop(queue, None)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """Tell every listener to end (open streams would otherwise delay shutdown)."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
