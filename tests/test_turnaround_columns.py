"""The numpy path over packed blocks answers exactly as the SQL + Python path, on random data."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from service.clock import to_iso
from service.dashboard import turnaround
from service.dashboard import turnaround_columns as fast
from service.storage import Database
from service.storage import consultations as store
from service.storage import facilities as facility_store
from service.storage import turnaround as facts
from service.storage import turnaround_columns as blocks
from service.storage import users as user_store
from service.storage.scope import EVERYTHING, NO_ACCESS, Scope
from worklists.turnaround import percentile

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SPAN_DAYS = 70
MODALITIES = ("CT", "MR", "CR", "")
QUEUES = ("general", "neuro", "chest")
QUALITY = ("good", "acceptable", "poor", None)
REASONS = ("motion", "noise", "positioning")


def _later(rng: random.Random, at: datetime, negative: bool) -> datetime:
    """Some durations repeat (whole minutes, ties), some are long, a few are negative."""
    kind = rng.random()
    if kind < 0.3:
        return at + timedelta(minutes=rng.choice((5, 10, 30, 60)))
    if kind < 0.35 and negative:
        return at - timedelta(seconds=rng.uniform(0, 300))
    if kind < 0.45:
        return at + timedelta(days=rng.uniform(1, 40))
    return at + timedelta(seconds=rng.expovariate(1 / 3600), microseconds=rng.randrange(10**6))


def _history(
    db, rng: random.Random, ids: dict[str, list[int]], n: int, negative: bool = True
) -> None:
    for _ in range(n):
        received = T0 + timedelta(seconds=rng.uniform(-5 * 86400, SPAN_DAYS * 86400))
        priority = rng.choice(("stat", "urgent", "routine"))
        due = received + timedelta(minutes={"stat": 60, "urgent": 240, "routine": 1440}[priority])
        cid = store.insert_consultation(
            db,
            {"facility_id": rng.choice(ids["facilities"]), "modality": rng.choice(MODALITIES),
             "priority": priority, "queue": rng.choice(QUEUES), "status": "ready",
             "requested_by": rng.choice([*ids["requesters"], None]), "due_at": to_iso(due),
             "created_at": to_iso(received), "updated_at": to_iso(received)},
        )  # fmt: skip
        events = [("requested", received, None, {})]
        if rng.random() < 0.9:
            images = received + timedelta(seconds=rng.uniform(-600 if negative else 0, 1800))
            events.append(("images_received", images, None, {}))
        reader = rng.choice([*ids["readers"], None])
        at = received
        for kind in ("claimed", "signed", "delivered", "acknowledged"):
            if rng.random() < 0.15:
                break
            at = _later(rng, at, negative)
            detail: dict = {}
            if kind == "signed":
                rating = rng.choice(QUALITY)
                reason = rng.choice(REASONS) if rating != "good" else ""
                detail = {"version": 1, "quality": rating, "quality_reason": reason}
                correction = at + timedelta(minutes=rng.choice((-30 if negative else 30, 45)))
                events.append(("signed", correction, rng.choice(ids["readers"]),
                               {"version": 2, "quality": "good"}))  # fmt: skip
            events.append((kind, at, reader if kind in ("claimed", "signed") else None, detail))
        if rng.random() < 0.05:
            events.append(("cancelled", received + timedelta(minutes=1), None, {}))
        if rng.random() < 0.05:
            events.append(("escalated", received + timedelta(minutes=2), None, {}))
        rng.shuffle(events)  # events may arrive out of time order
        for kind, when, actor, detail in events:
            store.append_event(db, cid, kind, to_iso(when), actor, detail)
        if rng.random() < 0.05:  # priority changed later: the facts copy it on the next event
            store.update_consultation(db, cid, {"priority": "stat"})
            store.append_event(db, cid, "message", to_iso(received + timedelta(hours=1)))


def _people(db) -> dict[str, list[int]]:
    facilities = [
        facility_store.add_facility(db, name=name, kind="township", aet=f"C{i}", timezone="UTC")
        for i, name in enumerate(("Clinic B", "Clinic A", "Clinic C", "Clinic A2"))
    ]
    add = user_store.add_user
    readers = [add(db, username=f"reader{i}", password_hash="x", role="specialist",
                   facility_id=facilities[0], display_name=name)
               for i, name in enumerate(("Dr Same", "Dr Same", "", 'Dr "Q", Other'))]  # fmt: skip
    requesters = [add(db, username=f"nurse{i}", password_hash="x", role="radiographer",
                      facility_id=facilities[i]) for i in range(2)]  # fmt: skip
    return {"facilities": facilities, "readers": readers, "requesters": requesters}


@pytest.fixture(params=[True, False], ids=["some-negative", "none-negative"])
async def database(tmp_path, request):
    """~1,300 consultations over 75 days (three blocks), events appended one by one; with a
    few negative durations (events out of the usual order; the general path), or none."""
    database = Database(tmp_path / "columns.sqlite")

    def fill(db):
        rng = random.Random(7)
        ids = _people(db)
        _history(db, rng, ids, 1300, negative=request.param)
        return ids

    database.ids = await database.write(fill)
    yield database
    database.close()


def _periods(rng: random.Random) -> list[facts.Period]:
    def moment() -> str:
        return to_iso(T0 + timedelta(seconds=rng.uniform(-10 * 86400, 80 * 86400)))

    periods = [facts.Period(), facts.Period(to_iso(T0), to_iso(T0 + timedelta(days=30)))]
    for _ in range(6):
        since, until = sorted((moment(), moment()))
        periods.append(facts.Period(since, until))
    return periods


def _scopes(ids: dict[str, list[int]]) -> list[Scope]:
    f, r = ids["facilities"], ids["requesters"]
    return [EVERYTHING, Scope((f[0],)), Scope((f[1], f[2]), requested_by=r[1]), NO_ACCESS]


def _group_bys(rng: random.Random) -> list[list[str]]:
    found = [[], ["priority"], ["facility", "month"], ["week", "priority"], ["reader"]]
    for _ in range(6):
        found.append(rng.sample(turnaround.GROUPS, rng.randint(1, 3)))
    return found


async def test_turnaround_percentiles_and_means_equal_the_exact_path(database):
    rng = random.Random(1)
    compared = 0
    for period in _periods(rng):
        assert await database.read(blocks.load, "received", period.since, period.until)
        for scope in _scopes(database.ids):
            for group_by in _group_bys(rng):
                quick = await turnaround.turnaround(database, scope, period, group_by)
                exact = await turnaround.turnaround(database, scope, period, group_by, exact=True)
                assert quick == exact, (period, scope, group_by)
                compared += sum(g["stages"]["received_to_signed"]["count"] for g in exact)
    assert compared > 10_000


async def test_sla_workload_and_quality_equal_the_exact_path(database):
    rng = random.Random(2)
    for period in _periods(rng):
        now = T0 + timedelta(seconds=rng.uniform(0, 80 * 86400))
        for scope in _scopes(database.ids):
            for group_by in _group_bys(rng):
                quick = await turnaround.sla(database, scope, period, group_by, now)
                exact = await turnaround.sla(database, scope, period, group_by, now, exact=True)
                assert quick == exact, (period, scope, group_by)
            quick = await turnaround.workload(database, scope, period)
            assert quick == await turnaround.workload(database, scope, period, exact=True)
            csv_text = await turnaround.workload_as_csv(database, scope, period)
            assert csv_text == turnaround.workload_csv(quick)
            assert csv_text == await turnaround.workload_as_csv(database, scope, period, exact=True)
            for time_period in ("day", "week", "month"):
                quick = await turnaround.quality(database, scope, period, time_period)
                exact = await turnaround.quality(database, scope, period, time_period, exact=True)
                assert quick == exact, (period, scope, time_period)


async def test_blocks_kept_event_by_event_equal_a_rebuild(database):
    incremental = await database.read(blocks.blocks_of)
    assert len(incremental) == 3
    await database.write(blocks.rebuild)
    assert await database.read(blocks.blocks_of) == incremental
    await database.write(facts.rebuild_facts)
    assert await database.read(blocks.blocks_of) == incremental


async def test_a_time_not_in_canonical_form_falls_back_to_the_exact_path(database):
    """Text order is time order only for one format: such a block is answered by SQL."""
    period = facts.Period(to_iso(T0), to_iso(T0 + timedelta(days=30)))

    def odd_event(db):
        cid = db.execute(
            "SELECT consultation_id FROM turnaround_facts WHERE received_at >= ? LIMIT 1",
            [period.since],
        ).fetchone()[0]
        store.append_event(db, cid, "signed", "2026-02-01T00:00:00+00:00", None, {})

    await database.write(odd_event)
    loaded = await database.read(blocks.load, "received", period.since, period.until)
    assert loaded is None
    after = await turnaround.turnaround(database, EVERYTHING, period, ["priority"])
    assert after == await turnaround.turnaround(
        database, EVERYTHING, period, ["priority"], exact=True
    )


@pytest.mark.parametrize("cell_limit", [fast.CELL_LIMIT, 1])
def test_order_statistics_are_the_nearest_rank_values(monkeypatch, cell_limit):
    """Radix select (and its sort fallback) against sorted(): ties, zeros, negatives, spread."""
    monkeypatch.setattr(fast, "CELL_LIMIT", cell_limit)
    rng = np.random.default_rng(3)
    n, groups = 20_000, 37
    values = np.round(rng.exponential(3000, n) * rng.choice([-1, 1, 1, 1], n), 3)
    values[rng.random(n) < 0.2] = 600.0
    values[rng.random(n) < 0.05] = 0.0
    group = rng.integers(0, groups, n)
    group[group == 5] = 6  # an empty group
    count = np.bincount(group, minlength=groups)
    ranks = [np.maximum(1, np.ceil(p / 100 * count)).astype(np.int64) for p in (1, 50, 90, 100)]
    picked = fast.order_statistics(values, group, count, ranks)
    with_values = np.flatnonzero(count > 0)
    for p_index, p in enumerate((1, 50, 90, 100)):
        for i, g in enumerate(with_values):
            ordered = sorted(values[group == g].tolist())
            assert picked[p_index][i] == percentile(ordered, p)


async def test_an_event_after_a_question_is_in_the_next_answer(database):
    """Readers cache decoded blocks by version: a block written since is read again."""
    period = facts.Period(to_iso(T0), to_iso(T0 + timedelta(days=30)))
    before = await turnaround.turnaround(database, EVERYTHING, period, ["priority"])

    def sign_one(db):
        cid = db.execute(
            "SELECT consultation_id FROM turnaround_facts WHERE received_at >= ?"
            " AND signed_at IS NULL AND cancelled_at IS NULL LIMIT 1",
            [period.since],
        ).fetchone()[0]
        received = db.execute(
            "SELECT received_at FROM turnaround_facts WHERE consultation_id = ?", [cid]
        ).fetchone()[0]
        store.append_event(db, cid, "signed", received[:-1] + "Z", None, {"quality": "poor"})

    await database.write(sign_one)
    after = await turnaround.turnaround(database, EVERYTHING, period, ["priority"])
    assert after != before
    assert after == await turnaround.turnaround(
        database, EVERYTHING, period, ["priority"], exact=True
    )
