"""Escalation: unclaimed after a share of the SLA, or overdue, tells the duty manager once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from service.clock import to_iso, utc_now
from worklists.escalation import escalation_due

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
DUE = T0 + timedelta(hours=2)


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


class TestEscalationDue:
    def test_nothing_before_the_share_has_passed(self):
        """At 49% of the SLA an unclaimed item is left alone."""
        assert escalation_due(T0, DUE, False, T0 + timedelta(minutes=58), 0.5) is None

    def test_unclaimed_once_the_share_has_passed(self):
        """At 50% and beyond, unclaimed items escalate."""
        assert escalation_due(T0, DUE, False, T0 + timedelta(minutes=60), 0.5) == "unclaimed"

    def test_a_claimed_item_is_not_escalated_before_its_deadline(self):
        """Someone is reading it."""
        assert escalation_due(T0, DUE, True, T0 + timedelta(minutes=90), 0.5) is None

    def test_overdue_whether_claimed_or_not(self):
        """Past the deadline, always."""
        assert escalation_due(T0, DUE, True, DUE + timedelta(seconds=1)) == "overdue"
        assert escalation_due(T0, DUE, False, DUE + timedelta(seconds=1)) == "overdue"

    def test_the_share_is_configurable(self):
        """A share of 0.25 escalates after half an hour of a two-hour SLA."""
        assert escalation_due(T0, DUE, False, T0 + timedelta(minutes=30), 0.25) == "unclaimed"


@pytest.fixture
def settings(settings):
    """Sweep every 50 ms."""
    return replace(settings, escalation_interval=0.05)


async def escalated_events(service, cid, headers):
    response = await service.client.get(f"/api/consultations/{cid}", headers=headers)
    return [e for e in (await response.json())["events"] if e["type"] == "escalated"]


async def test_an_unclaimed_item_past_half_its_sla_is_escalated_once(service):
    """One escalated event, the on-duty manager notified, nothing more on later sweeps."""
    regional = await service.add_facility("Regional Centre", "regional", "REGIONAL")
    county = await service.add_facility("County Hospital", "county", "COUNTY_1")
    boss = await service.add_user("boss", "manager", regional)
    await service.add_user("li_county", "clinician", county)
    manager = await service.login("boss")
    now = utc_now()
    shift = await service.client.post(
        "/api/roster",
        headers=manager,
        json={
            "user_id": boss,
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=8)).isoformat(),
            "role_on_duty": "manager",
        },
    )
    assert shift.status == 201, await shift.text()
    filed = await service.client.post(
        "/api/consultations",
        headers=await service.login("li_county"),
        json={"study_instance_uid": "1.2.826.0.1.3680043.10.78.1", "priority": "routine"},
    )
    cid = (await filed.json())["id"]

    def sixty_percent_gone(db):
        start, due = now - timedelta(hours=6), now + timedelta(hours=4)
        db.execute(
            "UPDATE consultations SET requested_at = ?, created_at = ?, due_at = ? WHERE id = ?",
            [to_iso(start), to_iso(start), to_iso(due), cid],
        )

    await service.database.write(sixty_percent_gone)
    [event] = await service.wait_for(lambda: escalated_events(service, cid, manager))
    assert event["detail"]["reason"] == "unclaimed" and event["detail"]["managers"] == [boss]
    notices = await (await service.client.get("/api/notifications", headers=manager)).json()
    assert [(n["kind"], n["consultation_id"]) for n in notices["items"]] == [("escalation", cid)]
    await asyncio.sleep(0.3)  # several more sweeps
    assert len(await escalated_events(service, cid, manager)) == 1
    assert (
        len(
            (await (await service.client.get("/api/notifications", headers=manager)).json())[
                "items"
            ]
        )
        == 1
    )


async def test_an_overdue_item_is_escalated_again_as_overdue(service):
    """Unclaimed and then overdue are two reasons: two events, each once."""
    regional = await service.add_facility("Regional Centre", "regional", "REGIONAL")
    county = await service.add_facility("County Hospital", "county", "COUNTY_1")
    await service.add_user("boss", "manager", regional)  # no roster: every manager is told
    await service.add_user("li_county", "clinician", county)
    filed = await service.client.post(
        "/api/consultations",
        headers=await service.login("li_county"),
        json={"study_instance_uid": "1.2.826.0.1.3680043.10.78.2", "priority": "urgent"},
    )
    cid = (await filed.json())["id"]
    manager = await service.login("boss")

    def move(db, due):
        start = utc_now() - timedelta(hours=2)
        db.execute(
            "UPDATE consultations SET requested_at = ?, created_at = ?, due_at = ? WHERE id = ?",
            [to_iso(start), to_iso(start), to_iso(due), cid],
        )

    await service.database.write(move, utc_now() + timedelta(hours=1))
    await service.wait_for(lambda: escalated_events(service, cid, manager))
    await service.database.write(move, utc_now() - timedelta(minutes=1))

    async def both():
        events = await escalated_events(service, cid, manager)
        return len(events) == 2 and events

    events = await service.wait_for(both)
    assert [e["detail"]["reason"] for e in events] == ["unclaimed", "overdue"]
    await asyncio.sleep(0.3)
    assert len(await escalated_events(service, cid, manager)) == 2
