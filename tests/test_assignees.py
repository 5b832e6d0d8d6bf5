"""GET /api/consultations/{id}/assignees: who a manager can hand a consultation to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.clock import to_iso
from service.intake.intake import InstanceOrigin, ReceivedStudy, receive_study
from worklists.sla import SlaPolicy


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def received(service, uid: str, aet: str = "CLINIC_A") -> int:
    """A consultation of clinic A whose images have arrived."""
    study = ReceivedStudy(
        orthanc_id=f"o-{uid}",
        study_instance_uid=uid,
        patient_id=f"PID-{uid}",
        patient_name="ZHOU^LEI",
        accession_number="",
        modalities=("CT",),
        body_part="HEAD",
        instances_count=2,
        origins=(InstanceOrigin("DicomProtocol", aet, "10.0.0.7"),),
    )
    outcome = await service.database.write(
        receive_study, study, now=datetime.now(UTC), sla=SlaPolicy()
    )
    return outcome.consultation_ids[0]


@pytest.fixture
async def team(service):
    """Clinic A and B; a centre with a manager and three specialists (one disabled)."""
    ids = {
        "a": await service.add_facility("Clinic A", "township", "CLINIC_A"),
        "b": await service.add_facility("Clinic B", "county", "CLINIC_B"),
        "centre": await service.add_facility("Centre", "regional", "CENTRE"),
    }
    ids["boss"] = await service.add_user("boss", "manager", ids["centre"])
    ids["boss_b"] = await service.add_user("boss_b", "manager", ids["b"])
    ids["li"] = await service.add_user("dr_li", "specialist", ids["centre"])
    ids["wu"] = await service.add_user("dr_wu", "specialist", ids["centre"])
    ids["gone"] = await service.add_user("dr_gone", "specialist", ids["centre"])
    ids["spec_b"] = await service.add_user("spec_b", "specialist", ids["b"])
    ids["radiographer"] = await service.add_user("wang", "radiographer", ids["a"])

    def setup(db):
        db.execute("UPDATE users SET disabled = 1 WHERE id = ?", [ids["gone"]])
        db.execute(
            "UPDATE users SET subspecialties = 'neuro', display_name = '吴医生' WHERE id = ?",
            [ids["wu"]],
        )

    await service.database.write(setup)
    ids["consultation"] = await received(service, "1.2.826.0.1.3680043.10.8.1")
    return ids


async def assignees(service, headers, consultation_id):
    return await service.client.get(
        f"/api/consultations/{consultation_id}/assignees", headers=headers
    )


async def test_a_manager_sees_the_centres_enabled_specialists(service, team):
    """Disabled accounts and another facility's specialists are not offered."""
    response = await assignees(service, await service.login("boss"), team["consultation"])
    assert response.status == 200, await response.text()
    items = (await response.json())["items"]
    assert [i["username"] for i in items] == ["dr_li", "dr_wu"]
    wu = items[1]
    assert wu["name"] == "吴医生" and wu["subspecialties"] == ["neuro"]
    assert wu == wu | {"on_duty": False, "claims": 0, "holder": False}


async def test_on_duty_readers_come_first_with_their_claim_counts(service, team):
    """dr_wu is on the roster now and holds two claims; he is listed first, marked holder."""
    boss = await service.login("boss")
    now = datetime.now(UTC)
    added = await service.client.post(
        "/api/roster",
        headers=boss,
        json={
            "user_id": team["wu"],
            "starts_at": to_iso(now - timedelta(hours=1)).replace("Z", "+00:00"),
            "ends_at": to_iso(now + timedelta(hours=8)).replace("Z", "+00:00"),
        },
    )
    assert added.status == 201, await added.text()
    other = await received(service, "1.2.826.0.1.3680043.10.8.2")
    for consultation_id in (team["consultation"], other):
        reassigned = await service.client.post(
            f"/api/consultations/{consultation_id}/reassign",
            headers=boss,
            json={"user_id": team["wu"]},
        )
        assert reassigned.status == 200, await reassigned.text()

    items = (await (await assignees(service, boss, team["consultation"])).json())["items"]
    assert [(i["username"], i["on_duty"], i["claims"], i["holder"]) for i in items] == [
        ("dr_wu", True, 2, True),
        ("dr_li", False, 0, False),
    ]


async def test_a_county_consultation_also_offers_the_countys_own_specialists(service, team):
    """Specialists read for their own facility too (consultation_scope)."""
    consultation_id = await received(service, "1.2.826.0.1.3680043.10.8.3", aet="CLINIC_B")
    response = await assignees(service, await service.login("boss"), consultation_id)
    names = [i["username"] for i in (await response.json())["items"]]
    assert sorted(names) == ["dr_li", "dr_wu", "spec_b"]


@pytest.mark.parametrize("user", ["dr_li", "wang"])
async def test_only_managers_may_ask(service, team, user):
    response = await assignees(service, await service.login(user), team["consultation"])
    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"


async def test_another_facilitys_manager_finds_no_such_consultation(service, team):
    response = await assignees(service, await service.login("boss_b"), team["consultation"])
    assert response.status == 404


async def test_an_unknown_consultation_is_not_found(service, team):
    response = await assignees(service, await service.login("boss"), 9999)
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"
