"""After-commit effects (service/effects.py): applied once the write has committed, never for a
write that failed, and one failing effect does not stop the others."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlite_utils

from service.storage import Conflict, Database
from service.storage.scope import Scope
from service.worklist.effects import AfterCommit, Effects
from service.worklist.live import LiveUpdates, WorklistChange
from service.worklist.notifications import Notice, Notifications

from .backends import database_at

ROW = {"id": 7, "facility_id": 3, "requested_by": None, "priority": "stat", "queue": None}


class CommittedRows:
    """A notifier that records, for each notice, how many probe rows a reader saw committed."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.seen: list[tuple[str, int]] = []

    async def deliver(self, notice: Notice) -> None:
        self.seen.append((notice.kind, await self.database.read(_probe_count)))

    async def close(self) -> None:
        return None


class Kicks:
    def __init__(self) -> None:
        self.count = 0

    def kick(self) -> None:
        self.count += 1


def _probe_count(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT count(*) FROM effect_probe").fetchone()[0]


def _record(db: sqlite_utils.Database, queue: asyncio.Queue | None, queued: list[int]) -> Effects:
    """A domain function: one row written, what happened returned, nothing done outside."""
    db.execute("INSERT INTO effect_probe (x) VALUES (1)")
    if queue is not None:
        queued.append(queue.qsize())
    return Effects(
        changes=(WorklistChange.of(ROW, "signed"),),
        notices=(Notice(kind="critical_finding", user_ids=(1,), title="t"),),
        deliver=True,
    )


def _record_then_fail(db: sqlite_utils.Database) -> Effects:
    db.execute("INSERT INTO effect_probe (x) VALUES (1)")
    raise Conflict("draft_changed", "the draft changed while signing")


@pytest.fixture
async def database(tmp_path: Path):
    database = database_at(tmp_path / "effects.db")
    await database.write(lambda db: db.execute("CREATE TABLE effect_probe (x INTEGER)"))
    yield database
    database.close()


@pytest.fixture
def parts(database):
    live = LiveUpdates()
    notifier = CommittedRows(database)
    kicks = Kicks()
    return live, notifier, kicks, AfterCommit(live, Notifications([notifier]), kicks)


class TestWorklistChangeOf:
    def test_takes_the_routing_fields_of_a_consultation_row(self):
        """Defaults fill an unset priority or queue, as the worklist shows them."""
        change = WorklistChange.of(ROW | {"priority": None}, "claimed", {"claimed_by": "Li"})
        assert change == WorklistChange(
            kind="claimed",
            consultation_id=7,
            facility_id=3,
            requested_by=None,
            priority="routine",
            queue="general",
            detail={"claimed_by": "Li"},
        )


class TestEffectsValue:
    def test_adding_keeps_order_and_any_delivery(self):
        first = Effects(changes=(WorklistChange.of(ROW, "new"),))
        second = Effects(changes=(WorklistChange.of(ROW, "updated"),), deliver=True)
        total = Effects.merged([first, second, Effects()])
        assert [c.kind for c in total.changes] == ["new", "updated"]
        assert total.deliver
        assert not Effects()


class TestAfterCommit:
    async def test_effects_are_applied_after_the_transaction_commits(self, database, parts):
        """During the write nothing is published; afterwards the change reaches the page, the
        delivery worker is woken, and the notice is sent when the row is already visible to
        another connection."""
        live, notifier, kicks, effects = parts
        queued_during: list[int] = []
        async with live.subscribe(Scope(facility_ids=None)) as queue:
            await effects.write(database, _record, queue, queued_during)
            assert queue.get_nowait().kind == "signed"
            assert queue.empty()
        assert queued_during == [0]
        assert kicks.count == 1
        assert notifier.seen == [("critical_finding", 1)]

    async def test_a_failed_transaction_applies_nothing(self, database, parts):
        """The write raises, its row is rolled back, and no effect happens."""
        live, notifier, kicks, effects = parts
        async with live.subscribe(Scope(facility_ids=None)) as queue:
            with pytest.raises(Conflict):
                await effects.write(database, _record_then_fail)
            assert queue.empty()
        assert kicks.count == 0
        assert notifier.seen == []
        assert await database.read(_probe_count) == 0

    async def test_a_failing_effect_does_not_stop_the_others(self, database, parts):
        """The change is committed already: a broken relay is logged, the notice still goes."""
        live, notifier, kicks, effects = parts

        def broken_relay(change: WorklistChange) -> None:
            raise RuntimeError("bus gone")

        live.relay_to(broken_relay)
        await effects.write(database, _record, None, [])
        assert kicks.count == 1
        assert notifier.seen == [("critical_finding", 1)]

    async def test_no_delivery_worker_yet_skips_the_kick(self, database, parts):
        """Before the report feature starts, a delivery kick waits for the worker's own round."""
        live, notifier, _, _ = parts
        effects = AfterCommit(live, Notifications([notifier]))
        await effects.apply(Effects(deliver=True))
        assert notifier.seen == []
