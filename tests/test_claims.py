"""Claims over HTTP against the real service: atomic, leased, released, reassigned, scoped."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from service.http.keys import LIVE
from service.intake.intake import (
    ConsultationRequest,
    InstanceOrigin,
    ReceivedStudy,
    file_request,
    receive_study,
)
from service.storage.scope import EVERYTHING
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

READERS = 20


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
def lease_minutes() -> float:
    return 15.0


@pytest.fixture
def settings(settings, lease_minutes):
    """The suite's settings with the lease under test (parametrize ``lease_minutes``)."""
    return replace(settings, claim_lease_minutes=lease_minutes)


@pytest.fixture
async def centre(service, people):
    """Clinic A with one consultation ready to read; a regional centre with readers."""
    ids = await people.seed(
        {
            "a": ("Clinic A", "township", "CLINIC_A"),
            "b": ("Clinic B", "township", "CLINIC_B"),
            "centre": ("Centre", "regional", "CENTRE"),
        },
        {
            "wang": ("radiographer", "a"),
            "boss": ("manager", "centre"),
            "spec_b": ("specialist", "b"),
        }
        | {f"dr{n}": ("specialist", "centre") for n in range(READERS)},
    )
    now = datetime.now(UTC)
    study = ReceivedStudy(
        orthanc_id="o1",
        study_instance_uid="1.2.3.4",
        patient_id="PID-CLAIM",
        patient_name="张三",
        accession_number="ACC1",
        modalities=("CT",),
        body_part="HEAD",
        instances_count=3,
        origins=(InstanceOrigin("DicomProtocol", "CLINIC_A", "10.0.0.7"),),
    )
    outcome = await service.database.write(receive_study, study, now=now, sla=SlaPolicy())
    await service.database.write(
        file_request,
        ConsultationRequest(Priority.URGENT, study_instance_uid="1.2.3.4"),
        facility_id=ids["a"],
        user_id=ids["wang"],
        now=now,
        sla=SlaPolicy(),
    )
    ids["cid"] = outcome.consultation_ids[0]
    return ids


async def claim(service, headers, cid):
    return await service.client.post(f"/api/consultations/{cid}/claim", headers=headers)


async def release(service, headers, cid):
    return await service.client.post(f"/api/consultations/{cid}/release", headers=headers)


async def reassign(service, headers, cid, user_id):
    return await service.client.post(
        f"/api/consultations/{cid}/reassign", headers=headers, json={"user_id": user_id}
    )


async def item(service, headers, cid):
    items = (await service.worklist(headers))["items"]
    return next(i for i in items if i["id"] == cid)


async def timeline(service, headers, cid):
    response = await service.client.get(f"/api/consultations/{cid}", headers=headers)
    assert response.status == 200
    return [e["type"] for e in (await response.json())["events"]]


async def test_exactly_one_of_twenty_concurrent_claims_wins(service, centre):
    """Twenty specialists claim at once: one 200, nineteen 409s naming the winner."""
    logins = [await service.login(f"dr{n}") for n in range(READERS)]
    responses = await asyncio.gather(*(claim(service, h, centre["cid"]) for h in logins))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [409] * (READERS - 1)
    winner = [await r.json() for r in responses if r.status == 200][0]
    losers = [await r.json() for r in responses if r.status == 409]
    assert {body["error"] for body in losers} == {"claimed"}
    assert {body["claimed_by"] for body in losers} == {winner["claimed_by"]}
    assert all(winner["claimed_by"] in body["detail"] for body in losers)
    assert (await timeline(service, logins[0], centre["cid"])).count("claimed") == 1


async def test_a_claimed_item_shows_who_holds_it(service, centre):
    """The worklist names the holder and the lease's end."""
    headers = await service.login("dr0")
    body = await (await claim(service, headers, centre["cid"])).json()
    shown = await item(service, await service.login("wang"), centre["cid"])
    assert shown["claimed_by"] == "dr0"
    assert shown["claimed_by_id"] == centre["dr0"]
    assert shown["claim_expires_at"] == body["claim_expires_at"]


async def test_the_holder_renews_the_lease_without_a_new_event(service, centre):
    """Claiming again is a heartbeat: a later expiry, no extra event."""
    headers = await service.login("dr0")
    first = await (await claim(service, headers, centre["cid"])).json()
    await asyncio.sleep(0.01)
    again = await claim(service, headers, centre["cid"])
    assert again.status == 200
    assert (await again.json())["claim_expires_at"] > first["claim_expires_at"]
    assert (await timeline(service, headers, centre["cid"])).count("claimed") == 1


@pytest.mark.parametrize("lease_minutes", [0.02])
async def test_an_expired_lease_returns_the_item_and_can_be_taken_over(service, centre):
    """An idle reader's lease lapses: the item shows free and another specialist takes it."""
    first, second = await service.login("dr0"), await service.login("dr1")
    assert (await claim(service, first, centre["cid"])).status == 200
    assert (await claim(service, second, centre["cid"])).status == 409
    await asyncio.sleep(1.3)
    assert (await item(service, second, centre["cid"]))["claimed_by"] is None
    taken = await claim(service, second, centre["cid"])
    assert taken.status == 200
    assert (await taken.json())["claimed_by"] == "dr1"
    events = await timeline(service, second, centre["cid"])
    assert events[-3:] == ["claimed", "lease_expired", "claimed"]


async def test_the_holder_releases_the_item(service, centre):
    """After release the item is free for anyone, and the release is on the timeline."""
    holder, other = await service.login("dr0"), await service.login("dr1")
    await claim(service, holder, centre["cid"])
    response = await release(service, holder, centre["cid"])
    assert response.status == 200
    assert (await response.json())["claimed_by"] is None
    assert (await item(service, other, centre["cid"]))["claimed_by"] is None
    assert (await claim(service, other, centre["cid"])).status == 200
    assert "released" in await timeline(service, other, centre["cid"])


async def test_another_specialist_cannot_release_a_claim(service, centre):
    """Only the holder (or a manager) gives the item back."""
    await claim(service, await service.login("dr0"), centre["cid"])
    response = await release(service, await service.login("dr1"), centre["cid"])
    assert response.status == 403
    assert (await response.json())["error"] == "not_holder"


async def test_releasing_an_unclaimed_item_is_a_conflict(service, centre):
    response = await release(service, await service.login("dr0"), centre["cid"])
    assert response.status == 409
    assert (await response.json())["error"] == "not_claimed"


async def test_a_manager_releases_someone_elses_claim(service, centre):
    await claim(service, await service.login("dr0"), centre["cid"])
    assert (await release(service, await service.login("boss"), centre["cid"])).status == 200


async def test_a_manager_reassigns_to_another_specialist(service, centre):
    """The new holder shows on the worklist; the event records from and to."""
    await claim(service, await service.login("dr0"), centre["cid"])
    boss = await service.login("boss")
    response = await reassign(service, boss, centre["cid"], centre["dr1"])
    assert response.status == 200, await response.text()
    assert (await item(service, boss, centre["cid"]))["claimed_by_id"] == centre["dr1"]
    detail = await service.client.get(f"/api/consultations/{centre['cid']}", headers=boss)
    event = [e for e in (await detail.json())["events"] if e["type"] == "reassigned"][0]
    assert event["detail"]["from"] == centre["dr0"]
    assert event["detail"]["to"] == centre["dr1"]
    assert event["actor_user_id"] == centre["boss"]


async def test_reassigning_to_someone_who_cannot_read_it_is_refused(service, centre):
    """A radiographer, or a specialist of another clinic, is not a valid assignee."""
    boss = await service.login("boss")
    for user_id in (centre["wang"], centre["spec_b"]):
        response = await reassign(service, boss, centre["cid"], user_id)
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_assignee"
    assert (await reassign(service, boss, centre["cid"], 99999)).status == 404


async def test_a_specialist_cannot_reassign(service, centre):
    headers = await service.login("dr0")
    assert (await reassign(service, headers, centre["cid"], centre["dr1"])).status == 403


async def test_a_radiographer_cannot_claim(service, centre):
    assert (await claim(service, await service.login("wang"), centre["cid"])).status == 403


async def test_a_specialist_of_another_clinic_cannot_claim_clinic_as_item(service, centre):
    """Outside the caller's scope the consultation does not exist."""
    response = await claim(service, await service.login("spec_b"), centre["cid"])
    assert response.status == 404
    assert "张三" not in await response.text()


async def test_a_consultation_without_images_cannot_be_claimed(service, centre):
    """Nothing to read yet: 409 no_images."""
    cid, _ = await service.database.write(
        file_request,
        ConsultationRequest(Priority.ROUTINE, accession_number="NOIMG"),
        facility_id=centre["a"],
        user_id=centre["wang"],
        now=datetime.now(UTC),
        sla=SlaPolicy(),
    )
    response = await claim(service, await service.login("dr0"), cid)
    assert response.status == 409
    assert (await response.json())["error"] == "no_images"


async def test_claims_are_audited_with_the_patient(service, centre):
    """Taking a claim leaves an audit record naming the consultation and patient."""
    await claim(service, await service.login("dr0"), centre["cid"])

    def rows(db):
        return [
            dict(r)
            for r in db.execute(
                "SELECT * FROM audit_log WHERE action = 'claim.take' AND outcome = 'success'"
            )
        ]

    records = await service.database.read(rows)
    assert len(records) == 1
    assert records[0]["resource_id"] == str(centre["cid"])
    assert records[0]["patient_id"] == "PID-CLAIM"


async def test_claims_are_published_to_live_worklists(service, centre):
    """Open worklists learn of claims and releases."""
    headers = await service.login("dr0")
    async with service.app[LIVE].subscribe(EVERYTHING) as queue:
        await claim(service, headers, centre["cid"])
        await release(service, headers, centre["cid"])
        kinds = [queue.get_nowait().kind, queue.get_nowait().kind]
    assert kinds == ["claimed", "released"]
