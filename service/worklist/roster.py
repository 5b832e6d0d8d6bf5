"""The duty roster and the stat fan-out: who is on duty, and calling them for stat work.

Managers (of the regional centre) and admins keep the roster. When a stat consultation appears
or changes on the worklist, every on-duty reader whose subspecialties include its queue is
notified at once; when none matches, the whole on-duty reading team is. A ``notified`` event
(detail: the user ids) records it once per consultation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime

import sqlite_utils

from worklists.roster import (
    MANAGER,
    READER,
    RosterEntry,
    duty_managers,
    on_duty,
    readers_for_queue,
)
from worklists.routing import subspecialties

from ..auth.sessions import CurrentUser
from ..clock import from_iso, to_iso, utc_now
from ..storage import Database
from ..storage import roster as store
from ..storage import users as user_store
from ..storage.consultations import append_event, has_event, stat_call_facts
from .effects import AfterCommit, Effects
from .live import QUEUE_SIZE, LiveUpdates, WorklistChange
from .notifications import Notice, notice_facts

log = logging.getLogger(__name__)

DUTY_ACCOUNT_ROLES = {READER: {"specialist"}, MANAGER: {"manager"}}


class InvalidRosterEntry(ValueError):
    """The entry cannot go on the roster (the message says why)."""


def add_to_roster(
    db: sqlite_utils.Database,
    creator: CurrentUser,
    user_id: int,
    starts_at: datetime,
    ends_at: datetime,
    role_on_duty: str,
) -> int:
    """Validate and add one shift: end after start; a regional specialist (or manager)."""
    if ends_at <= starts_at:
        raise InvalidRosterEntry("the shift must end after it starts")
    if role_on_duty not in DUTY_ACCOUNT_ROLES:
        raise InvalidRosterEntry(f"role_on_duty must be one of {sorted(DUTY_ACCOUNT_ROLES)}")
    candidate = store.duty_candidate(db, user_id)
    if candidate["disabled"] or candidate["facility_kind"] != "regional":
        raise InvalidRosterEntry(f"user {user_id} is not an enabled user of the regional centre")
    if candidate["role"] not in DUTY_ACCOUNT_ROLES[role_on_duty]:
        wanted = " or ".join(sorted(DUTY_ACCOUNT_ROLES[role_on_duty]))
        raise InvalidRosterEntry(f"a {role_on_duty} on duty must be a {wanted}")
    return store.add_entry(
        db,
        user_id=user_id,
        starts_at=to_iso(starts_at),
        ends_at=to_iso(ends_at),
        role_on_duty=role_on_duty,
        created_by=creator.id,
        created_at=to_iso(utc_now()),
    )


def duty_now(db: sqlite_utils.Database, now: datetime) -> list[RosterEntry]:
    """The roster entries covering ``now`` (enabled users only)."""
    entries = [
        RosterEntry(
            user_id=row["user_id"],
            starts_at=from_iso(row["starts_at"]),
            ends_at=from_iso(row["ends_at"]),
            role_on_duty=row["role_on_duty"],
            subspecialties=tuple(subspecialties(row["subspecialties"])),
        )
        for row in store.covering(db, to_iso(now))
    ]
    return on_duty(entries, now)


def fallback_managers(db: sqlite_utils.Database) -> list[int]:
    """Every enabled manager of the regional centre, when no manager is on duty."""
    return user_store.regional_managers(db)


def managers_to_tell(db: sqlite_utils.Database, now: datetime) -> list[int]:
    return duty_managers(duty_now(db, now)) or fallback_managers(db)


def record_stat_fanout(db: sqlite_utils.Database, consultation_id: int, now: datetime) -> Effects:
    """Once per stat consultation: pick the on-duty readers and record a ``notified`` event;
    they are called once it is committed."""
    row = stat_call_facts(db, consultation_id)
    if row is None or row["priority"] != "stat":
        return Effects()
    if has_event(db, consultation_id, "notified"):
        return Effects()
    queue = row["queue"] or "general"
    user_ids = readers_for_queue(duty_now(db, now), queue)
    if not user_ids:
        return Effects()
    append_event(
        db, consultation_id, "notified", to_iso(now), None, {"user_ids": user_ids, "why": "stat"}
    )
    notice = Notice(
        kind="stat",
        user_ids=tuple(user_ids),
        consultation_id=consultation_id,
        title=f"STAT #{consultation_id} {row['modality'] or ''} from {row['facility_name']}",
        body=f"queue {queue}, due {row['due_at']}",
        facts=notice_facts(row),
        message="stat",
        params={"facility": row["facility_name"], "queue": queue, "due_at": row["due_at"]},
    )
    return Effects(notices=(notice,))


class StatCallingLiveUpdates(LiveUpdates):
    """The live-updates hub, also queueing stat "new"/"updated" changes for the duty team.

    ``publish`` stays non-blocking: the stat fan-out reads the queue in its own task. (A
    subscription would do too, but subscribers are the open worklist pages.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.stat_changes: asyncio.Queue[int] = asyncio.Queue(QUEUE_SIZE)

    def deliver(self, change: WorklistChange) -> None:
        super().deliver(change)  # changes from every web process arrive here (in the primary)
        if change.priority == "stat" and change.kind in ("new", "updated"):
            with contextlib.suppress(asyncio.QueueFull):
                self.stat_changes.put_nowait(change.consultation_id)


async def stat_fanout(
    database: Database, live: StatCallingLiveUpdates, effects: AfterCommit
) -> None:
    """Call the duty team for each stat consultation that appears or changes."""
    while True:
        consultation_id = await live.stat_changes.get()
        try:
            await effects.write(database, record_stat_fanout, consultation_id, utc_now())
        except Exception:
            log.exception("stat fan-out failed for consultation %s", consultation_id)


@contextlib.asynccontextmanager
async def running_stat_fanout(
    database: Database, live: LiveUpdates, effects: AfterCommit
) -> AsyncIterator[None]:
    """The fan-out task while the app runs (nothing to do with a plain hub)."""
    if not isinstance(live, StatCallingLiveUpdates):
        yield
        return
    task = asyncio.create_task(stat_fanout(database, live, effects), name="stat-fanout")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
