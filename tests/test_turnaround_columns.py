"""The dashboard's figures from the packed columns, against figures worked out by hand.

Eight consultations of two clinics over two weeks of March 2026 (``HISTORY``); every expected
number below was computed by hand from their event times, not by the code under test. The
blocks themselves are checked against a rebuild on a random history of three blocks.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from service.clock import to_iso
from service.dashboard import turnaround
from service.dashboard import turnaround_columns as fast
from service.storage import consultations as store
from service.storage import facilities as facility_store
from service.storage import turnaround as facts
from service.storage import turnaround_columns as blocks
from service.storage import users as user_store
from service.storage.dialects import is_postgres
from service.storage.scope import EVERYTHING, NO_ACCESS, Scope
from worklists.turnaround import percentile

from .backends import database_at

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)  # a Monday
SLA = {"stat": 60, "urgent": 240, "routine": 1440}
PERIOD = facts.Period(to_iso(T0), to_iso(T0 + timedelta(days=14)))
LATER = T0 + timedelta(days=20)

# name: (clinic, modality, priority, received as T0 + minutes, [(event, minutes after received,
# reader, quality, reason)]); every consultation is requested at "received", and its images come
# then too unless an images_received event is listed.
HISTORY = {
    "c1": ("A", "CT", "stat", 0, [("claimed", 10, "one", None, None),
                                  ("signed", 30, "one", "good", ""),
                                  ("delivered", 32, None, None, None),
                                  ("acknowledged", 92, None, None, None)]),
    "c2": ("A", "CT", "stat", 1440, [("images_received", 5, None, None, None),
                                     ("claimed", 20, "one", None, None),
                                     ("signed", 90, "one", "poor", "motion"),
                                     ("delivered", 91, None, None, None)]),
    "c3": ("B", "MR", "routine", 2880, [("claimed", 60, "two", None, None),
                                        ("signed", 120, "two", "acceptable", "noise"),
                                        ("delivered", 125, None, None, None)]),
    "c4": ("B", "MR", "routine", 4320, [("claimed", 30, "two", None, None)]),
    "c5": ("B", "CR", "urgent", 10080, [("claimed", 15, "two", None, None),
                                        ("signed", 45, "two", "poor", "motion"),
                                        ("delivered", 50, None, None, None),
                                        ("signed", 60, "one", "good", "")]),  # a correction
    "c6": ("A", "CT", "stat", 1500, [("cancelled", 2, None, None, None)]),
    "c7": ("A", "CR", "routine", -2880, [("signed", 2940, "one", None, None)]),
    "c8": ("B", "CT", "urgent", 11640, [("claimed", -5, "one", None, None),  # a clock ahead
                                        ("signed", 25, "one", "acceptable", "positioning")]),
}  # fmt: skip


def _fill(db) -> dict[str, int]:
    ids = {
        "B": facility_store.add_facility(db, name="Clinic B", kind="township", aet="CB",
                                         timezone="UTC"),
        "A": facility_store.add_facility(db, name="Clinic A", kind="township", aet="CA",
                                         timezone="UTC"),
    }  # fmt: skip
    for name, display in (("one", "Dr One"), ("two", "Dr Two, Jr")):
        ids[name] = user_store.add_user(
            db, username=name, password_hash="x", role="specialist", facility_id=ids["B"],
            display_name=display,
        )  # fmt: skip
    ids["nurse"] = user_store.add_user(
        db, username="nurse", password_hash="x", role="radiographer", facility_id=ids["A"]
    )
    for name, (clinic, modality, priority, start, events) in HISTORY.items():
        received = T0 + timedelta(minutes=start)
        ids[name] = store.insert_consultation(
            db,
            {"facility_id": ids[clinic], "modality": modality, "priority": priority,
             "queue": "general", "status": "ready", "due_at": to_iso(received + timedelta(
                 minutes=SLA[priority])), "requested_by": ids["nurse"] if name == "c1" else None,
             "created_at": to_iso(received), "updated_at": to_iso(received)},
        )  # fmt: skip
        store.append_event(db, ids[name], "requested", to_iso(received))
        if not any(kind == "images_received" for kind, *_ in events):
            store.append_event(db, ids[name], "images_received", to_iso(received))
        for kind, after, reader, quality, reason in events:
            detail = {"quality": quality, "quality_reason": reason} if kind == "signed" else {}
            at = to_iso(received + timedelta(minutes=after))
            store.append_event(db, ids[name], kind, at, ids.get(reader), detail)
    return ids


@pytest.fixture
async def database(tmp_path):
    database = database_at(tmp_path / "columns.sqlite")
    database.ids = await database.write(_fill)
    yield database
    database.close()


def _stages(groups: list[dict], stage: str) -> list[tuple]:
    """Each group's (count, p50, p90, p95, mean) of one stage."""
    return [tuple(g["stages"][stage].values()) for g in groups]


async def test_turnaround_per_priority_is_the_nearest_rank_of_each_stage(database):
    """Cancelled c6 and c7 (received before the period) are left out; c8 was claimed 5 minutes
    before it was received (-300 s), and c5's correction does not move its signature."""
    groups = await turnaround.turnaround(database, EVERYTHING, PERIOD, ["priority"])
    assert [g["group"] for g in groups] == [
        {"priority": "routine"}, {"priority": "stat"}, {"priority": "urgent"},
    ]  # fmt: skip
    assert _stages(groups, "received_to_claimed") == [
        (2, 1800.0, 3600.0, 3600.0, 2700.0),  # c4 1800, c3 3600
        (2, 600.0, 1200.0, 1200.0, 900.0),  # c1 600, c2 1200
        (2, -300.0, 900.0, 900.0, 300.0),  # c8 -300, c5 900
    ]
    assert _stages(groups, "received_to_signed") == [
        (1, 7200.0, 7200.0, 7200.0, 7200.0),
        (2, 1800.0, 5400.0, 5400.0, 3600.0),
        (2, 1500.0, 2700.0, 2700.0, 2100.0),
    ]
    assert _stages(groups, "signed_to_delivered") == [
        (1, 300.0, 300.0, 300.0, 300.0),
        (2, 60.0, 120.0, 120.0, 90.0),  # c2 60, c1 120
        (1, 300.0, 300.0, 300.0, 300.0),
    ]
    assert _stages(groups, "delivered_to_acknowledged") == [
        (0, None, None, None, None),
        (1, 3600.0, 3600.0, 3600.0, 3600.0),
        (0, None, None, None, None),
    ]
    assert _stages(groups, "end_to_end")[1] == (2, 1920.0, 5460.0, 5460.0, 3690.0)


async def test_turnaround_per_facility_and_week_names_the_facility(database):
    ids = database.ids
    groups = await turnaround.turnaround(database, EVERYTHING, PERIOD, ["facility"])
    assert [g["group"] for g in groups] == [
        {"facility": ids["B"], "facility_name": "Clinic B"},
        {"facility": ids["A"], "facility_name": "Clinic A"},
    ]
    # Clinic B: c8 1500, c5 2700, c3 7200 -> p50 is the 2nd of 3, p90 and p95 the 3rd.
    assert _stages(groups, "received_to_signed") == [
        (3, 2700.0, 7200.0, 7200.0, 3800.0),
        (2, 1800.0, 5400.0, 5400.0, 3600.0),
    ]
    weeks = await turnaround.turnaround(database, EVERYTHING, PERIOD, ["week"])
    assert [g["group"] for g in weeks] == [{"week": "2026-03-02"}, {"week": "2026-03-09"}]
    # Week of 2 March: c1 600, c2 1200, c4 1800, c3 3600.
    assert _stages(weeks, "received_to_claimed")[0] == (4, 1200.0, 3600.0, 3600.0, 1800.0)


async def test_turnaround_counts_only_what_the_scope_allows(database):
    ids = database.ids
    clinic_a = await turnaround.turnaround(database, Scope((ids["A"],)), PERIOD, [])
    assert _stages(clinic_a, "received_to_signed") == [(2, 1800.0, 5400.0, 5400.0, 3600.0)]
    nurse = await turnaround.turnaround(
        database, Scope((ids["A"],), requested_by=ids["nurse"]), PERIOD, []
    )
    assert _stages(nurse, "received_to_signed") == [(1, 1800.0, 1800.0, 1800.0, 1800.0)]
    assert await turnaround.turnaround(database, NO_ACCESS, PERIOD, []) == []


async def test_sla_counts_decided_and_met_by_due_time(database):
    """Due in the period: c1 met, c2 late, c3 met, c4 overdue unsigned, c5 and c8 met; c6 is
    cancelled and c7 was due before the period."""
    groups = await turnaround.sla(database, EVERYTHING, PERIOD, ["priority"], LATER)
    assert [(g["group"]["priority"], g["decided"], g["met"], g["share_met"]) for g in groups] == [
        ("routine", 2, 1, 0.5), ("stat", 2, 1, 0.5), ("urgent", 2, 2, 1.0),
    ]  # fmt: skip
    before_c4_is_due = T0 + timedelta(days=3, hours=12)
    groups = await turnaround.sla(database, EVERYTHING, PERIOD, ["priority"], before_c4_is_due)
    assert (groups[0]["decided"], groups[0]["met"]) == (1, 1)


async def test_workload_counts_first_signatures_in_the_period(database):
    """c7 was received before the period but signed in it; c5's correction by Dr One is not a
    read of his."""
    ids = database.ids
    rows = await turnaround.workload(database, EVERYTHING, PERIOD)
    assert [(r["reader"], r["facility"], r["modality"], r["reads"]) for r in rows] == [
        ("Dr One", "Clinic A", "CR", 1),
        ("Dr One", "Clinic A", "CT", 2),
        ("Dr One", "Clinic B", "CT", 1),
        ("Dr Two, Jr", "Clinic B", "CR", 1),
        ("Dr Two, Jr", "Clinic B", "MR", 1),
    ]
    assert {r["month"] for r in rows} == {"2026-03"}
    text = await turnaround.workload_as_csv(database, EVERYTHING, PERIOD)
    assert text.split("\r\n") == [
        "month,reader_id,reader,facility_id,facility,modality,reads",
        f"2026-03,{ids['one']},Dr One,{ids['A']},Clinic A,CR,1",
        f"2026-03,{ids['one']},Dr One,{ids['A']},Clinic A,CT,2",
        f"2026-03,{ids['one']},Dr One,{ids['B']},Clinic B,CT,1",
        f'2026-03,{ids["two"]},"Dr Two, Jr",{ids["B"]},Clinic B,CR,1',
        f'2026-03,{ids["two"]},"Dr Two, Jr",{ids["B"]},Clinic B,MR,1',
        "",
    ]


async def test_quality_counts_ratings_and_reasons_per_facility_and_modality(database):
    entries = await turnaround.quality(database, EVERYTHING, PERIOD, "month")
    assert [
        (e["facility"], e["modality"], e["good"], e["acceptable"], e["poor"], e["unrated"],
         [(m["reason"], m["count"]) for m in e["main_reasons"]])
        for e in entries
    ] == [
        ("Clinic A", "CR", 0, 0, 0, 1, []),
        ("Clinic A", "CT", 1, 0, 1, 0, [("motion", 1)]),
        ("Clinic B", "CR", 0, 0, 1, 0, [("motion", 1)]),
        ("Clinic B", "CT", 0, 1, 0, 0, [("positioning", 1)]),
        ("Clinic B", "MR", 0, 1, 0, 0, [("noise", 1)]),
    ]  # fmt: skip
    assert {e["period"] for e in entries} == {"2026-03"}


async def test_an_event_after_a_question_is_in_the_next_answer(database):
    """The event's write leaves the blocks alone; the next question catches them up first, and
    readers, who cache decoded blocks by version, read the re-packed block again."""
    before = await turnaround.turnaround(database, EVERYTHING, PERIOD, ["priority"])
    assert _stages(before, "received_to_signed")[0][0] == 1
    assert not await database.read(blocks.behind)
    packed = await database.read(blocks.blocks_of)

    def sign_c4(db):
        at = to_iso(T0 + timedelta(minutes=4320 + 90))
        store.append_event(db, database.ids["c4"], "signed", at, database.ids["two"], {})

    await database.write(sign_c4)
    assert await database.read(blocks.blocks_of) == packed
    assert await database.read(blocks.behind)
    after = await turnaround.turnaround(database, EVERYTHING, PERIOD, ["priority"])
    assert _stages(after, "received_to_signed")[0] == (2, 5400.0, 7200.0, 7200.0, 6300.0)
    assert not await database.read(blocks.behind)


async def test_a_time_written_in_another_iso_form_counts_as_that_time(database):
    """An offset instead of Z, no fraction: the columns hold the true time, not the text."""

    def sign_c4(db):
        at = (T0 + timedelta(minutes=4320 + 90)).astimezone(UTC).isoformat(timespec="seconds")
        assert at.endswith("+00:00")
        store.append_event(db, database.ids["c4"], "signed", at, database.ids["two"], {})

    await database.write(sign_c4)
    after = await turnaround.turnaround(database, EVERYTHING, PERIOD, ["priority"])
    assert _stages(after, "received_to_signed")[0] == (2, 5400.0, 7200.0, 7200.0, 6300.0)
    rows = await turnaround.workload(database, Scope((database.ids["B"],)), PERIOD)
    assert ("Dr Two, Jr", "MR", 2) in [(r["reader"], r["modality"], r["reads"]) for r in rows]


async def test_a_block_whose_codes_overflow_is_read_from_its_facts(database):
    """Past 32,767 labels (free-text reasons over years) a code does not fit the packed int16:
    the block is stored irregular and readers decode it from turnaround_facts."""

    def many_labels_then_a_new_reason(db):
        db.conn.executemany(
            "INSERT INTO turnaround_labels (value) VALUES (?)",
            [(f"old reason {i}",) for i in range(2**15)],
        )
        at = to_iso(T0 + timedelta(minutes=4320 + 90))
        detail = {"quality": "poor", "quality_reason": "a brand new reason"}
        store.append_event(db, database.ids["c4"], "signed", at, database.ids["two"], detail)

    await database.write(many_labels_then_a_new_reason)
    entries = await turnaround.quality(database, Scope((database.ids["B"],)), PERIOD, "month")
    assert [row[1] for row in await database.read(blocks.blocks_of)] == [0]  # irregular
    mr = next(e for e in entries if e["modality"] == "MR")
    assert (mr["acceptable"], mr["poor"]) == (1, 1)
    assert [m["reason"] for m in mr["main_reasons"]] == ["noise", "a brand new reason"]
    groups = await turnaround.turnaround(database, EVERYTHING, PERIOD, ["priority"])
    assert _stages(groups, "received_to_signed")[0] == (2, 5400.0, 7200.0, 7200.0, 6300.0)


def _random_history(db, rng: random.Random, n: int) -> None:
    """Consultations with events in random order, corrections, cancellations, priority changes."""
    facility = facility_store.add_facility(
        db, name=f"Clinic {rng.random()}", kind="township", aet=f"C{rng.randrange(10**6)}",
        timezone="UTC",
    )  # fmt: skip
    for _ in range(n):
        received = T0 + timedelta(seconds=rng.uniform(-5 * 86400, 70 * 86400))
        priority = rng.choice(("stat", "urgent", "routine"))
        cid = store.insert_consultation(
            db,
            {"facility_id": facility, "modality": rng.choice(("CT", "MR", "")),
             "priority": priority, "queue": "general", "status": "ready",
             "due_at": to_iso(received + timedelta(minutes=SLA[priority])),
             "created_at": to_iso(received), "updated_at": to_iso(received)},
        )  # fmt: skip
        at, events = received, [("requested", received, {})]
        for kind in ("images_received", "claimed", "signed", "delivered", "acknowledged"):
            if rng.random() < 0.15:
                break
            at += timedelta(seconds=rng.expovariate(1 / 3600))
            detail = {"quality": rng.choice(("good", "poor", None)), "quality_reason": "x"}
            events.append((kind, at, detail if kind == "signed" else {}))
        if rng.random() < 0.1:
            events.append(("signed", at + timedelta(minutes=rng.choice((-30, 45))), {}))
        if rng.random() < 0.05:
            events.append(("cancelled", received + timedelta(minutes=1), {}))
        rng.shuffle(events)
        for kind, when, detail in events:
            store.append_event(db, cid, kind, to_iso(when), None, detail)
        if rng.random() < 0.05:  # priority changed later: the facts copy it on the next event
            store.update_consultation(db, cid, {"priority": "stat"})
            store.append_event(db, cid, "message", to_iso(received + timedelta(hours=1)))


def _late_events(db, rng: random.Random, earlier: int) -> None:
    """Ten earlier consultations signed, acknowledged or cancelled late."""
    for cid in rng.sample(range(1, earlier + 1), 10):
        kind = rng.choice(("signed", "acknowledged", "cancelled"))
        store.append_event(db, cid, kind, to_iso(T0 + timedelta(days=80)), None, {})


async def test_blocks_caught_up_in_steps_equal_a_rebuild(tmp_path):
    database = database_at(tmp_path / "random.sqlite")
    try:
        for seed in range(3):  # later steps also change consultations of earlier blocks
            await database.write(_random_history, random.Random(seed), 450)
            if seed:
                await database.write(_late_events, random.Random(seed), seed * 450)
            assert await database.write(blocks.catch_up) in (450, 460)
        incremental = await database.read(blocks.blocks_of)
        assert len(incremental) == 3
        await database.write(blocks.rebuild)
        assert await database.read(blocks.blocks_of) == incremental
        await database.write(facts.rebuild_facts)
        assert await database.read(blocks.blocks_of) == incremental
    finally:
        database.close()


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


def test_summaries_of_many_groups_are_the_nearest_rank_values_and_exact_means():
    """The histogram path of ``summaries`` (non-negative, NaN for null) against sorted()."""
    rng = np.random.default_rng(4)
    n, groups = 30_000, 50
    values = np.round(rng.exponential(5000, n), 3)
    values[rng.random(n) < 0.1] = np.nan
    group = rng.integers(0, groups + 1, n)  # ``groups`` itself: rows left out
    found = fast.summaries(values, group, groups)
    for g in range(groups):
        inside = sorted(v for v in values[group == g].tolist() if v == v)
        total = sum(round(v * 1000) for v in inside)
        assert found[g] == {
            "count": len(inside), "p50": percentile(inside, 50), "p90": percentile(inside, 90),
            "p95": percentile(inside, 95), "mean": total / (1000 * len(inside)),
        }  # fmt: skip


async def test_the_facts_keep_only_the_indexes_the_breach_list_and_review_stages_read(database):
    """Migration m022 drops the indexes only the removed SQL engine read (fewer writes per
    event); m046 adds the one the dashboard's review stages select by (received time)."""

    def indexes(db):
        if is_postgres(db):  # the same indexes, by the same names (tests/test_postgres_schema.py)
            return [r[0] for r in db.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                " AND tablename = 'turnaround_facts' AND indexname NOT LIKE '%_pkey'"
                " ORDER BY indexname"
            )]  # fmt: skip
        return [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'turnaround_facts'"
            " AND sql IS NOT NULL ORDER BY name"
        )]  # fmt: skip

    assert await database.read(indexes) == ["turnaround_facts_due", "turnaround_facts_received"]
