"""Keeping the worklist folder equal to the database, from one process.

Only the primary web process publishes (service/app.py), so two processes never race on the
folder. It does a round at start, one soon after every worklist change (in the primary the live
updates of every web process arrive: a request filed, images received, a cancellation), and one
every :data:`INTERVAL` seconds for changes made where no web process saw them (the CLI, another
tool on the database). A round reads the scheduled requests, builds their files and reconciles
the folder (service/mwl/folder.py), all off the event loop; it rewrites only what differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ..clock import utc_now
from ..runtime.periodic import running
from ..storage import Database
from ..storage.modality_worklist import scheduled_requests
from .folder import Reconciled, reconcile
from .items import UnfitItem, file_bytes, item_of

log = logging.getLogger(__name__)

INTERVAL = 30.0
#: Live changes that never add, change or remove a scheduled request (a claim, a message, an
#: escalation concern consultations that have their images); any other kind wakes a round.
#: Several changes before a round starts make one round.
UNRELATED_KINDS = frozenset({"claimed", "released", "message", "escalated"})


class Change(Protocol):
    """A live worklist change (service.worklist.live.WorklistChange), as far as rounds care."""

    @property
    def kind(self) -> str: ...


class Watchable(Protocol):
    """The live updates hub (service.worklist.live.LiveUpdates), as far as rounds care."""

    def watch(self, watcher: Callable[[Any], None]) -> None: ...

    def unwatch(self, watcher: Callable[[Any], None]) -> None: ...


class WorklistPublisher:
    """Writes the scheduled requests of ``database`` as worklist item files into ``folder``."""

    def __init__(self, database: Database, folder: Path) -> None:
        self.database = database
        self.folder = folder
        self.wake = asyncio.Event()
        self._unfit: set[int] = set()  # consultations already logged as unfit

    def changed(self, change: Change) -> None:
        """A worklist change somewhere: do a round soon (never blocks)."""
        if change.kind not in UNRELATED_KINDS:
            self.wake.set()

    async def publish(self) -> Reconciled:
        """One round: the folder made equal to the database."""
        rows = await self.database.read(scheduled_requests)
        return await asyncio.to_thread(self._publish, rows, utc_now())

    def _publish(self, rows: Iterable[Mapping[str, Any]], now: datetime) -> Reconciled:
        wanted: dict[str, bytes] = {}
        for row in rows:
            try:
                item = item_of(row, now)
            except UnfitItem as reason:
                if row["id"] not in self._unfit:
                    self._unfit.add(row["id"])
                    log.warning(
                        "consultation %s is not on the modality worklist: %s", row["id"], reason
                    )
                continue
            wanted[item.file_name] = file_bytes(item)
        result = reconcile(self.folder, wanted)
        if result:
            log.info(
                "modality worklist: %d item(s) written, %d removed, %d scheduled",
                len(result.written),
                len(result.removed),
                len(wanted),
            )
        return result


@contextlib.asynccontextmanager
async def publishing(
    database: Database, folder: Path, live: Watchable, interval: float = INTERVAL
) -> AsyncIterator[WorklistPublisher]:
    """The publisher's rounds while the block runs: woken by every live change of ``live``,
    which stops calling it when the block ends."""
    publisher = WorklistPublisher(database, folder)
    live.watch(publisher.changed)
    try:
        async with running(
            "modality worklist files", interval, publisher.publish, wake=publisher.wake
        ):
            yield publisher
    finally:  # a replica that stops leading and leads again starts a new publisher
        live.unwatch(publisher.changed)
