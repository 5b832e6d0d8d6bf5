"""The list moves both ways over real SQLite, with its history; a month's scores computed from
stored consultations (the SQL of service/storage/quality.py) and replaced, not added to."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import sqlite_utils

from service.quality.recompute import _evaluate_and_apply, compute_month, window_months
from service.storage import quality as scores_store
from service.storage import recognition as list_store
from worklists.recognition import RecognitionRules, was_recognised

from .backends import connection_at, database_at, database_url_at

RULES = RecognitionRules(months=3, min_studies=20, max_poor_percent=10.0)
NOW = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def db(tmp_path: Path, migrated_database: Path) -> Iterator[sqlite_utils.Database]:
    database = connection_at(tmp_path / "t.db", migrated_database)
    for fid, name, zone in ((1, "Township A", "Asia/Shanghai"), (2, "County B", "Asia/Urumqi")):
        database.execute(
            "INSERT INTO facilities (id, name, kind, aet, timezone, created_at)"
            " VALUES (?, ?, 'township', ?, ?, ?)",
            [fid, name, f"AE{fid}", zone, NOW],
        )
    yield database
    database.close()


def store_month(db, month: str, facility_id: int, studies: int, poor: int) -> None:
    db.execute(
        "INSERT INTO qc_scores (facility_id, modality, body_part, month, studies,"
        " rated, good, acceptable, poor, retakes, flagged, computed_at)"
        " VALUES (?, 'CT', 'HEAD', ?, ?, ?, ?, 0, ?, 0, 0, ?)",
        [facility_id, month, studies, studies, studies - poor, poor, NOW],
    )


def judge(db, when: str) -> list:
    now = datetime.fromisoformat(when).replace(tzinfo=UTC)
    return _evaluate_and_apply(db, RULES, window_months(RULES, now), now.isoformat(), None)


def test_the_window_is_the_complete_months_before_now():
    assert window_months(RULES, datetime(2026, 4, 15, tzinfo=UTC)) == [
        "2026-01", "2026-02", "2026-03",
    ]  # fmt: skip


def test_the_list_adds_suspends_and_restores_and_keeps_why(db):
    """Good quarter: added; a quarter of poor images: suspended with the share and its limit;
    good again: restored. The history holds the three, latest first, with the totals behind."""
    for month in ("2026-01", "2026-02", "2026-03"):
        store_month(db, month, 1, studies=10, poor=0)
    assert [c.change for c in judge(db, "2026-04-02")] == ["added"]
    assert list_store.statuses(db) == {(1, "CT", "HEAD"): "listed"}
    assert judge(db, "2026-04-03") == []  # nothing changed: nothing recorded

    for month in ("2026-04", "2026-05", "2026-06"):
        store_month(db, month, 1, studies=10, poor=3)
    [suspended] = judge(db, "2026-07-01")
    assert suspended.change == "suspended"
    assert [(r.code, r.figure, r.limit) for r in suspended.reasons] == [
        ("poor_share_above", 30.0, 10.0)
    ]

    for month in ("2026-07", "2026-08", "2026-09"):
        store_month(db, month, 1, studies=10, poor=1)
    assert [c.change for c in judge(db, "2026-10-01")] == ["restored"]

    history = list_store.history(db, None)
    assert [h["change"] for h in history] == ["restored", "suspended", "added"]
    assert history[1]["reasons"] == [{"code": "poor_share_above", "figure": 30.0, "limit": 10.0}]
    assert history[1]["totals"]["poor_percent"] == 30.0
    assert history[1]["months"] == ["2026-04", "2026-05", "2026-06"]
    assert history[1]["rules"]["max_poor_percent"] == 10.0
    entries = list_store.history_of(db, (1, "CT", "HEAD"))
    assert was_recognised(entries, (1, "CT", "HEAD"), "2026-05-01T00:00:00")
    assert not was_recognised(entries, (1, "CT", "HEAD"), "2026-08-01T00:00:00")


def test_history_is_scoped_to_the_facilities_asked_in_the_query(db):
    for month in ("2026-01", "2026-02", "2026-03"):
        store_month(db, month, 1, studies=10, poor=0)
        store_month(db, month, 2, studies=10, poor=0)
    judge(db, "2026-04-02")
    assert {h["facility_id"] for h in list_store.history(db, (2,))} == {2}
    assert {h["facility_id"] for h in list_store.history(db, None)} == {1, 2}
    assert list_store.history(db, ()) == []


def test_history_is_append_only(db):
    for month in ("2026-01", "2026-02", "2026-03"):
        store_month(db, month, 1, studies=10, poor=0)
    judge(db, "2026-04-02")
    with pytest.raises((sqlite3.IntegrityError, psycopg.Error), match="append-only"):
        db.execute("UPDATE recognition_changes SET change = 'suspended'")


def consultation(db, cid: int, patient: str, received: str, **facts) -> None:
    db.execute(
        "INSERT INTO consultations (id, facility_id, patient_id, modality, body_part, status,"
        " received_at, due_at, created_at, updated_at)"
        " VALUES (?, ?, ?, 'CT', 'head', 'signed', ?, ?, ?, ?)",
        [cid, facts.get("facility", 1), patient, received, received, received, received],
    )
    db.execute(
        "INSERT INTO turnaround_facts (consultation_id, facility_id, modality, due_at,"
        " received_at, quality, quality_reason, cancelled_at) VALUES (?, ?, 'CT', ?, ?, ?, ?, ?)",
        [cid, facts.get("facility", 1), received, received, facts.get("quality"),
         facts.get("reason", ""), facts.get("cancelled")],
    )  # fmt: skip
    if "flagged" in facts:
        db.execute(
            "INSERT INTO reports (consultation_id, state, technical_flagged, created_at,"
            " updated_at) VALUES (?, 'signed', ?, ?, ?)",
            [cid, int(facts["flagged"]), received, received],
        )


def test_a_month_is_computed_from_stored_studies_and_replaced(db):
    """The previous month's study is looked back on for the retake, a cancelled one is left
    out, and recomputing the month replaces its rows."""
    consultation(db, 1, "P1", "2026-02-27T08:00:00.000000Z", quality="good")
    consultation(db, 2, "P1", "2026-03-02T08:00:00.000000Z", quality="poor", reason="motion")
    consultation(db, 3, "P2", "2026-03-03T08:00:00.000000Z", quality="good", flagged=True)
    consultation(db, 4, "P3", "2026-03-04T08:00:00.000000Z", cancelled="2026-03-04T09:00:00Z")
    [score] = compute_month(db, "2026-03", RULES)
    assert (score.modality, score.body_part) == ("CT", "HEAD")
    assert (score.studies, score.rated, score.poor, score.retakes, score.flagged) == (2, 2, 1, 1, 1)
    assert score.reasons == {"motion": 1}
    for _ in range(2):
        assert scores_store.replace_month(db, "2026-03", [score], NOW) == 1
    assert db.execute("SELECT COUNT(*) FROM qc_scores").fetchone()[0] == 1
    assert scores_store.received_months(db) == ["2026-02", "2026-03"]


def test_a_facilitys_month_is_a_month_of_its_own_zone(db):
    """17:00 UTC on 31 March is 01:00 on 1 April in Beijing (facility 1) but still 31 March
    (23:00) in Urumqi (facility 2, UTC+6): each study counts in its facility's own month."""
    consultation(db, 1, "P1", "2026-03-31T17:00:00.000000Z", quality="good")
    consultation(db, 2, "P2", "2026-03-31T17:00:00.000000Z", quality="good", facility=2)
    consultation(db, 3, "P3", "2026-03-31T15:59:00.000000Z", quality="good")  # 23:59 Beijing
    march = {s.facility_id: s.studies for s in compute_month(db, "2026-03", RULES)}
    april = {s.facility_id: s.studies for s in compute_month(db, "2026-04", RULES)}
    assert march == {1: 1, 2: 1}
    assert april == {1: 1}


def test_the_cli_recomputes_every_month_and_prints_the_list(db, tmp_path, monkeypatch, capsys):
    """``teleread quality recompute --all`` (the manager's on-demand run, from a shell)."""
    import json

    from service.cli.main import main

    consultation(db, 1, "P1", "2026-02-27T08:00:00.000000Z", quality="good")
    consultation(db, 2, "P1", "2026-03-02T08:00:00.000000Z", quality="poor", reason="motion")
    db.close()
    (tmp_path / "var").mkdir()
    url = database_url_at(tmp_path / "t.db")
    if url:  # the command's PostgreSQL database: the one the test wrote
        monkeypatch.setenv("TELEREAD_DATABASE_URL", url)
    else:
        shutil.move(tmp_path / "t.db", tmp_path / "var" / "teleread.db")
    monkeypatch.setenv("TELEREAD_DATA_DIR", str(tmp_path / "var"))
    assert main(["quality", "recompute", "--all"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["months"] == {"2026-02": 1, "2026-03": 1}
    assert main(["quality", "list"]) == 0
    assert capsys.readouterr().out == ""  # two studies: nobody qualifies yet


async def test_the_monthly_round_runs_once_per_closed_month(db, tmp_path):
    """The background task's round: the first after a month closes recomputes the month just
    closed and the current one (then the list); later rounds that month do nothing."""
    from service.quality.recompute import monthly_round

    consultation(db, 1, "P1", "2026-03-02T08:00:00.000000Z", quality="good")
    db.close()
    database = database_at(tmp_path / "t.db")
    try:
        april = datetime(2026, 4, 2, tzinfo=UTC)
        first = await monthly_round(database, RULES, april)
        assert first is not None and first.months == {"2026-03": 1, "2026-04": 0}
        assert await monthly_round(database, RULES, april.replace(day=20)) is None
        may = await monthly_round(database, RULES, datetime(2026, 5, 1, 1, tzinfo=UTC))
        assert may is not None and sorted(may.months) == ["2026-04", "2026-05"]
    finally:
        database.close()


async def test_the_background_task_closes_the_month_and_stops_cleanly(db, tmp_path, monkeypatch):
    """Started and stopped with the app (its first wait set to nothing here): its first round
    records the month just closed; leaving the block cancels it without an error."""
    import asyncio

    from service.quality import background

    db.close()
    monkeypatch.setattr(background, "FIRST_CHECK_AFTER_SECONDS", 0.0)
    database = database_at(tmp_path / "t.db")
    try:
        async with background.monthly_task(database, RULES):
            for _ in range(100):
                if await database.read(scores_store.closed_month, "qc.closed_month"):
                    break
                await asyncio.sleep(0.02)
        assert await database.read(scores_store.closed_month, "qc.closed_month") is not None
    finally:
        database.close()
