"""Turning what happened (a study ingested, a request filed) into live worklist changes.

Publishing is best effort and cheap: one indexed read of the consultations concerned, then an
in-memory fan-out. It must never break what triggered it, so every failure is logged and
swallowed. The read is :func:`service.storage.consultations.routing_fields`: routing fields,
never patient data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import sqlite_utils

from ..intake.intake import IngestOutcome
from ..storage import Database
from ..storage.consultations import routing_fields
from .effects import AfterCommit, Effects
from .live import WorklistChange

log = logging.getLogger(__name__)


def changes_of(
    db: sqlite_utils.Database, ids: list[int], created: frozenset[int] = frozenset()
) -> Effects:
    """ "new" for the created consultations and "updated" for the others."""
    rows = routing_fields(db, ids)
    kinds = ["new" if row["id"] in created else "updated" for row in rows]
    return Effects(changes=tuple(map(WorklistChange.of, rows, kinds)))


async def publish_changes(
    database: Database, effects: AfterCommit, ids: Iterable[int], created: Iterable[int] = ()
) -> None:
    """Publish the changes of consultations already committed (by ingest or a filed request,
    whose answers carry ids, not rows); never raises."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return
    try:
        await effects.apply(await database.read(changes_of, wanted, frozenset(created)))
    except Exception:
        log.exception("could not publish live changes for consultations %s", wanted)


def ingest_listener(database: Database, effects: AfterCommit) -> Callable[[IngestOutcome], None]:
    """A :class:`~service.intake.ingest.ChangeFollower` listener publishing each ingest outcome.

    Listeners are called synchronously inside the follower; the read and publish run as a
    separate task so ingest never waits for (or fails because of) live updates.
    """
    pending: set[asyncio.Task[None]] = set()

    def listen(outcome: IngestOutcome) -> None:
        try:
            if not outcome.consultation_ids:
                return
            task = asyncio.get_running_loop().create_task(
                publish_changes(database, effects, outcome.consultation_ids, outcome.created)
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
        except Exception:
            log.exception("could not schedule live changes for an ingest outcome")

    return listen
