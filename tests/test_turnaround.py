"""Turnaround figures from events with known times: every number checked against a hand answer."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from service.storage import consultations as store
from service.storage import turnaround as facts
from worklists.turnaround import breach_stage, milestones, percentile, period_of, summarize

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday
WINDOW = {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TestPureRules:
    def test_queued_is_the_later_of_request_and_images_and_received_the_earlier(self):
        """Readable once both are there; the clock starts at whichever came first."""
        m = milestones(
            [
                {"type": "images_received", "at": iso(10), "actor_user_id": None, "detail": {}},
                {"type": "requested", "at": iso(0), "actor_user_id": None, "detail": {}},
            ]
        )
        assert (m.received_at, m.queued_at) == (iso(0), iso(10))

    def test_a_correction_does_not_move_the_first_signature(self):
        """version 2 signed later: signed_at, reader and quality stay those of version 1."""
        m = milestones(
            [
                {"type": "signed", "at": iso(90), "actor_user_id": 8,
                 "detail": {"version": 2, "quality": "good"}},
                {"type": "signed", "at": iso(60), "actor_user_id": 7,
                 "detail": {"version": 1, "quality": "poor", "quality_reason": "motion"}},
            ]
        )  # fmt: skip
        assert (m.signed_at, m.reader_id, m.quality, m.quality_reason) == (
            iso(60), 7, "poor", "motion",
        )  # fmt: skip

    def test_percentiles_are_nearest_rank(self):
        """1..20: p50 = 10, p90 = 18, p95 = 19 (values that occurred)."""
        values = [float(v) for v in range(1, 21)]
        assert [percentile(values, p) for p in (50, 90, 95)] == [10.0, 18.0, 19.0]
        assert summarize([]).p50 is None

    def test_periods_are_utc_day_iso_week_monday_and_month(self):
        assert period_of("2026-03-08T23:59:00Z", "week") == "2026-03-02"
        assert period_of("2026-03-08T23:59:00Z", "day") == "2026-03-08"
        assert period_of("2026-03-08T23:59:00Z", "month") == "2026-03"

    def test_breach_is_blamed_on_the_longest_stage(self):
        m = {"received_at": iso(0), "queued_at": iso(5), "claimed_at": iso(200),
             "signed_at": iso(230)}  # fmt: skip
        assert breach_stage(m, T0 + timedelta(days=1)) == "waiting_in_queue"
        unsigned = {"received_at": iso(0), "queued_at": None, "claimed_at": None}
        assert breach_stage(unsigned, T0 + timedelta(days=1)) == "awaiting_images_or_request"


def seed(db, facility_id: int, reader: int, priority: str, start: float, *, due: float,
         claim: float | None = None, sign: float | None = None, deliver: float | None = None,
         ack: float | None = None, quality: str | None = None, reason: str = "",
         modality: str = "CT", cancelled: bool = False) -> int:  # fmt: skip
    """A consultation with events at known minutes after T0 (requested = images = start)."""
    cid = store.insert_consultation(
        db,
        {"facility_id": facility_id, "modality": modality, "priority": priority,
         "status": "signed" if sign is not None else "ready", "due_at": iso(due),
         "created_at": iso(start), "updated_at": iso(start)},
    )  # fmt: skip
    store.append_event(db, cid, "requested", iso(start))
    store.append_event(db, cid, "images_received", iso(start))
    if claim is not None:
        store.append_event(db, cid, "claimed", iso(claim), reader, {"expires_at": iso(claim + 30)})
    if sign is not None:
        detail = {"report_id": cid, "version": 1, "critical": False, "refer": False,
                  "quality": quality, "quality_reason": reason}  # fmt: skip
        store.append_event(db, cid, "signed", iso(sign), reader, detail)
        store.append_event(db, cid, "signed", iso(sign + 500), reader, detail | {"version": 2})
    if deliver is not None:
        store.append_event(db, cid, "delivered", iso(deliver), None, {"channel": "portal"})
    if ack is not None:
        store.append_event(db, cid, "acknowledged", iso(ack), None)
    if cancelled:
        store.append_event(db, cid, "cancelled", iso(start + 1), None, {"reason": "duplicate"})
    return cid


@pytest.fixture
async def history(service):
    """Clinic A: 4 stat (signed after 30/60/90/120 min, due at 60), 1 routine never signed
    (overdue), 1 cancelled; clinic B: 1 urgent signed after 10 min. Readers r1 and r2."""
    centre = await service.add_facility("Centre", "regional", "CENTRE")
    a = await service.add_facility("Clinic A", "township", "CLINIC_A")
    b = await service.add_facility("Clinic B", "township", "CLINIC_B")
    r1 = await service.add_user("reader_one", "specialist", centre)
    r2 = await service.add_user("reader_two", "specialist", centre)
    await service.add_user("boss", "manager", centre)
    await service.add_user("nurse_a", "radiographer", a)

    def fill(db):
        ids = []
        for i, minutes in enumerate((30, 60, 90, 120)):
            ids.append(seed(db, a, r1 if i < 3 else r2, "stat", 0, due=60, claim=minutes / 3,
                            sign=minutes, deliver=minutes + 5, ack=minutes + 65,
                            quality="poor" if i == 0 else "good",
                            reason="motion" if i == 0 else ""))  # fmt: skip
        ids.append(seed(db, a, r1, "routine", 0, due=240, claim=None))
        ids.append(seed(db, a, r1, "stat", 0, due=60, cancelled=True))
        ids.append(seed(db, b, r2, "urgent", 0, due=240, claim=2, sign=10, modality="MR",
                        quality="acceptable", reason="noise"))  # fmt: skip
        return ids

    ids = await service.database.write(fill)
    return {"a": a, "b": b, "r1": r1, "r2": r2, "ids": ids}


async def get(service, user, path, **params):
    headers = await service.login(user)
    response = await service.client.get(path, headers=headers, params=params | WINDOW)
    assert response.status == 200, await response.text()
    return response


async def test_percentiles_per_priority_match_the_known_event_times(service, history):
    """stat received->signed 30/60/90/120 min: p50 60, p90 = p95 = 120; counts exclude cancelled."""
    body = await (await get(service, "boss", "/api/turnaround", group_by="priority")).json()
    groups = {g["group"]["priority"]: g["stages"] for g in body["groups"]}
    stat = groups["stat"]
    assert stat["received_to_signed"] | {"mean": None} == {
        "count": 4, "p50": 3600.0, "p90": 7200.0, "p95": 7200.0, "mean": None,
    }  # fmt: skip
    assert stat["received_to_signed"]["mean"] == 4500.0
    assert (stat["received_to_claimed"]["count"], stat["received_to_claimed"]["p50"]) == (4, 1200.0)
    assert stat["claimed_to_signed"]["p95"] == 4800.0
    assert stat["signed_to_delivered"] == {"count": 4, "p50": 300.0, "p90": 300.0,
                                           "p95": 300.0, "mean": 300.0}  # fmt: skip
    assert stat["delivered_to_acknowledged"]["p50"] == 3600.0
    assert stat["end_to_end"]["p90"] == 7500.0
    assert groups["routine"]["received_to_signed"]["count"] == 0
    assert groups["urgent"]["received_to_signed"]["p50"] == 600.0
    assert body["time_zone"] == "UTC"


async def test_grouping_by_facility_reader_modality_and_week(service, history):
    body = await (
        await get(service, "boss", "/api/turnaround", group_by="facility,reader,week")
    ).json()
    signed = {
        (g["group"]["facility_name"], g["group"]["reader_name"], g["group"]["week"]):
        g["stages"]["received_to_signed"]["count"]
        for g in body["groups"]
    }  # fmt: skip
    assert signed == {
        ("Clinic A", "reader_one", "2026-03-02"): 3,
        ("Clinic A", "reader_two", "2026-03-02"): 1,
        ("Clinic A", "", "2026-03-02"): 0,
        ("Clinic B", "reader_two", "2026-03-02"): 1,
    }
    by_modality = await (await get(service, "boss", "/api/turnaround", group_by="modality")).json()
    counts = {g["group"]["modality"]: g["stages"]["received_to_signed"]["count"]
              for g in by_modality["groups"]}  # fmt: skip
    assert counts == {"CT": 4, "MR": 1}


async def test_sla_compliance_per_priority_and_the_breaches_with_their_stage(service, history):
    """stat: 30 and 60 met, 90 and 120 late (due at 60); routine overdue unsigned; urgent met."""
    body = await (await get(service, "boss", "/api/turnaround/sla", group_by="priority")).json()
    shares = {g["group"]["priority"]: (g["decided"], g["met"], g["share_met"])
              for g in body["groups"]}  # fmt: skip
    assert shares == {"routine": (1, 0, 0.0), "stat": (4, 2, 0.5), "urgent": (1, 1, 1.0)}
    breaches = await (await get(service, "boss", "/api/turnaround/breaches")).json()
    found = {b["consultation_id"]: (b["stage"], b["late_seconds"]) for b in breaches["items"]}
    ids = history["ids"]
    assert found[ids[2]] == ("reading", 1800.0)  # claimed at 30, signed at 90 (due 60)
    assert found[ids[3]] == ("reading", 3600.0)
    assert found[ids[4]][0] == "waiting_in_queue"  # never claimed: still waiting
    assert set(found) == {ids[2], ids[3], ids[4]}


async def test_workload_csv_counts_first_signatures_per_reader_facility_and_modality(
    service, history
):
    response = await get(service, "boss", "/api/turnaround/workload.csv")
    assert response.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(r["month"], r["reader"], r["facility"], r["modality"], r["reads"]) for r in rows] == [
        ("2026-03", "reader_one", "Clinic A", "CT", "3"),
        ("2026-03", "reader_two", "Clinic A", "CT", "1"),
        ("2026-03", "reader_two", "Clinic B", "MR", "1"),
    ]
    same = await get(service, "boss", "/api/turnaround/workload", format="csv")
    assert await same.text() == await response.text()


async def test_quality_per_facility_with_main_reasons(service, history):
    body = await (await get(service, "boss", "/api/turnaround/quality")).json()
    items = {(i["facility"], i["modality"]): i for i in body["items"]}
    clinic_a = items[("Clinic A", "CT")]
    assert (clinic_a["good"], clinic_a["poor"], clinic_a["main_reasons"]) == (
        3, 1, [{"reason": "motion", "count": 1}],
    )  # fmt: skip
    assert items[("Clinic B", "MR")]["acceptable"] == 1


async def test_a_clinic_sees_only_its_own_consultations(service, history):
    body = await (await get(service, "nurse_a", "/api/turnaround", group_by="facility")).json()
    assert [g["group"]["facility_name"] for g in body["groups"]] == ["Clinic A"]
    workload = await (await get(service, "nurse_a", "/api/turnaround/workload")).json()
    assert {row["facility"] for row in workload["items"]} == {"Clinic A"}


async def test_turnaround_csv_has_one_line_per_group_and_stage(service, history):
    headers = await service.login("boss")
    response = await service.client.get(
        "/api/turnaround",
        headers=headers | {"Accept": "text/csv"},
        params={"group_by": "priority"} | WINDOW,
    )
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    stat = [r for r in rows if r["priority"] == "stat" and r["stage"] == "received_to_signed"]
    assert (stat[0]["count"], stat[0]["p50_seconds"]) == ("4", "3600.0")
    assert len(rows) == 3 * 6


async def test_bad_grouping_and_reversed_period_are_400(service, history):
    headers = await service.login("boss")
    bad = await service.client.get(
        "/api/turnaround", headers=headers, params={"group_by": "patient"}
    )
    assert bad.status == 400
    reversed_ = await service.client.get(
        "/api/turnaround", headers=headers, params={"from": WINDOW["to"], "to": WINDOW["from"]}
    )
    assert reversed_.status == 400 and (await reversed_.json())["error"] == "invalid_request"


async def test_the_derived_facts_equal_a_recomputation_from_events(service, history):
    """Maintained event by event in append_event == rebuilt from the events alone."""
    incremental = await service.database.read(facts.facts_of)
    await service.database.write(facts.rebuild_facts)
    assert await service.database.read(facts.facts_of) == incremental
    assert len(incremental) == 7


async def test_queue_now_counts_open_items_by_priority(service, history):
    body = await (await get(service, "boss", "/api/turnaround/queue")).json()
    routine = next(i for i in body["items"] if i["priority"] == "routine")
    assert (routine["open"], routine["readable"], routine["gt_24h"]) == (1, 1, 1)


async def test_every_chart_is_an_svg_picture_for_a_manager(service, history):
    headers = await service.login("boss")
    for name in ("tat", "sla", "queue", "workload", "quality"):
        response = await service.client.get(
            f"/dashboard/charts/{name}.svg", headers=headers, params=WINDOW
        )
        assert response.status == 200, name
        assert response.content_type == "image/svg+xml"
        assert b"<svg" in await response.read()


async def test_the_breach_list_is_audited_with_the_consultations_it_named(service, history):
    """It names consultations, so it is recorded like a search of patient data."""
    await get(service, "boss", "/api/turnaround/breaches")

    def last_breach_audit(db):
        return db.execute(
            "SELECT username, outcome, detail FROM audit_log"
            " WHERE action = 'turnaround.breaches' ORDER BY id DESC LIMIT 1"
        ).fetchone()

    row = await service.database.read(last_breach_audit)
    assert (row["username"], row["outcome"]) == ("boss", "success")
    ids = history["ids"]
    assert sorted(json.loads(row["detail"])["consultations"]) == sorted([ids[2], ids[3], ids[4]])


EMPTY_PERIOD = {"from": "2001-01-01T00:00:00Z", "to": "2001-02-01T00:00:00Z"}


@pytest.mark.parametrize(
    "group_by", ["", "priority", "facility,reader,week"], ids=["all", "priority", "three"]
)
async def test_a_period_with_no_consultations_answers_empty_figures(service, history, group_by):
    """Years before the first consultation: every figure is empty (no group, no item), never a
    500 (the numpy path once reshaped a histogram of zero buckets)."""
    headers = await service.login("boss")
    params = EMPTY_PERIOD | ({"group_by": group_by} if group_by else {})
    tat = await service.client.get("/api/turnaround", headers=headers, params=params)
    assert tat.status == 200, await tat.text()
    assert (await tat.json())["groups"] == []
    sla = await service.client.get("/api/turnaround/sla", headers=headers, params=params)
    assert sla.status == 200, await sla.text()
    assert all(group["decided"] == 0 for group in (await sla.json())["groups"])
    for path in ("breaches", "workload", "quality"):
        response = await service.client.get(
            f"/api/turnaround/{path}", headers=headers, params=EMPTY_PERIOD
        )
        assert response.status == 200, (path, await response.text())
        assert (await response.json())["items"] == [], path
    csv_answer = await service.client.get(
        "/api/turnaround", headers=headers, params=params | {"format": "csv"}
    )
    assert csv_answer.status == 200 and len((await csv_answer.text()).splitlines()) == 1


async def test_every_chart_of_a_period_with_no_consultations_is_an_svg(service, history):
    headers = await service.login("boss")
    for name in ("tat", "sla", "queue", "workload", "quality"):
        response = await service.client.get(
            f"/dashboard/charts/{name}.svg", headers=headers, params=EMPTY_PERIOD
        )
        assert response.status == 200, (name, await response.text())
        assert b"<svg" in await response.read()


async def test_a_service_without_any_consultation_answers_empty_figures(service):
    """A fresh installation: nothing received yet, the dashboard's figures are empty."""
    centre = await service.add_facility("Centre", "regional", "CENTRE")
    await service.add_user("boss", "manager", centre)
    headers = await service.login("boss")
    for path in ("", "/sla", "/breaches", "/workload", "/quality", "/queue"):
        response = await service.client.get(f"/api/turnaround{path}", headers=headers)
        assert response.status == 200, (path, await response.text())
    for name in ("tat", "sla", "queue", "workload", "quality"):
        chart = await service.client.get(f"/dashboard/charts/{name}.svg", headers=headers)
        assert chart.status == 200, (name, await chart.text())
