"""GET /api/worklist: order, filters, keyset paging, counts and scoping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.intake.intake import (
    ConsultationRequest,
    InstanceOrigin,
    ReceivedStudy,
    file_request,
    receive_study,
)
from service.storage.consultations import append_event
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
async def consortium(service):
    """Two clinics, a regional centre, and a specialist and radiographer to look."""
    ids = {
        "a": await service.add_facility("Clinic A", "township", "CLINIC_A"),
        "b": await service.add_facility("Clinic B", "township", "CLINIC_B"),
        "centre": await service.add_facility("Centre", "regional", "CENTRE"),
    }
    ids["wang"] = await service.add_user("wang", "radiographer", ids["a"])
    await service.add_user("liu", "radiographer", ids["b"])
    await service.add_user("dr.li", "specialist", ids["centre"])
    return ids


async def file(service, facility_id, user_id, accession, priority, at, modality="CT"):
    request = ConsultationRequest(
        Priority(priority),
        accession_number=accession,
        modality=modality,
        body_part="HEAD",
        patient_name=f"Patient {accession}",
    )
    consultation_id, _ = await service.database.write(
        file_request, request, facility_id=facility_id, user_id=user_id, now=at, sla=SlaPolicy()
    )
    return consultation_id


async def test_items_are_ordered_by_due_time_then_priority(service, consortium):
    """A stat item filed later can still come first; ties on due time go to the higher priority."""
    await file(service, consortium["a"], consortium["wang"], "R1", "routine", T0)
    await file(service, consortium["a"], consortium["wang"], "S1", "stat", T0 + timedelta(hours=1))
    # Due at the same moment as S1 (T0+1h30): urgent filed at T0-30min.
    await file(
        service, consortium["a"], consortium["wang"], "U1", "urgent", T0 - timedelta(minutes=30)
    )
    items = (await service.worklist(await service.login("dr.li")))["items"]
    assert [i["accession_number"] for i in items] == ["S1", "U1", "R1"]
    assert items[0]["due_at"] == items[1]["due_at"]


async def test_items_carry_the_documented_fields(service, consortium):
    """Every item has the fields API clients rely on."""
    await file(service, consortium["a"], consortium["wang"], "F1", "urgent", T0)
    item = (await service.worklist(await service.login("wang")))["items"][0]
    for name in (
        "id",
        "study_instance_uid",
        "facility",
        "patient_name",
        "modality",
        "body_part",
        "priority",
        "status",
        "received_at",
        "due_at",
    ):
        assert name in item
    assert item["facility"] == "Clinic A"
    assert item["status"] == "awaiting_images"
    assert item["received_at"] is None
    assert item["due_at"].startswith("2026-11-23T02:00:00")


async def test_keyset_paging_visits_every_item_once(service, consortium):
    """Pages of 4 over 11 items: no item skipped or repeated, in order, ending with next=null."""
    for n in range(11):
        priority = ("stat", "urgent", "routine")[n % 3]
        await file(
            service,
            consortium["a"],
            consortium["wang"],
            f"P{n}",
            priority,
            T0 + timedelta(minutes=n),
        )
    headers = await service.login("dr.li")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "4"} | ({"cursor": cursor} if cursor else {})
        page = await service.worklist(headers, **params)
        seen += [(i["due_at"], i["id"]) for i in page["items"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 11
    assert seen == sorted(seen)


async def test_filters_by_priority_modality_and_status(service, consortium):
    """Filters combine; counts describe the filtered list."""
    await file(service, consortium["a"], consortium["wang"], "C1", "stat", T0, "CT")
    await file(service, consortium["a"], consortium["wang"], "C2", "routine", T0, "CT")
    await file(service, consortium["a"], consortium["wang"], "M1", "stat", T0, "MR")
    headers = await service.login("dr.li")
    page = await service.worklist(headers, priority="stat", modality="ct")
    assert [i["accession_number"] for i in page["items"]] == ["C1"]
    assert page["counts"]["total"] == 1
    both = await service.worklist(headers, priority="stat,routine", status="awaiting_images")
    assert both["counts"]["total"] == 3
    assert both["counts"]["priority"] == {"stat": 2, "routine": 1}


async def test_facility_filter_and_scoping(service, consortium):
    """Radiographers see only their clinic, whatever filter they send."""
    await file(service, consortium["a"], consortium["wang"], "A1", "routine", T0)
    liu = await service.login("liu")
    page = await service.worklist(liu, facility=str(consortium["a"]))
    assert page["items"] == [] and page["counts"]["total"] == 0
    specialist = await service.worklist(await service.login("dr.li"), facility=str(consortium["a"]))
    assert [i["accession_number"] for i in specialist["items"]] == ["A1"]


async def test_images_without_request_show_as_awaiting_request(service, consortium):
    """A study straight from the modality is on the list, marked as missing its request."""
    study = ReceivedStudy(
        orthanc_id="o1",
        study_instance_uid="1.2.3",
        patient_name="李四",
        modalities=("CR",),
        body_part="CHEST",
        instances_count=1,
        origins=(InstanceOrigin("DicomProtocol", "CLINIC_B", "10.0.0.9"),),
    )
    await service.database.write(receive_study, study, now=T0, sla=SlaPolicy())
    items = (await service.worklist(await service.login("liu")))["items"]
    assert [(i["patient_name"], i["status"]) for i in items] == [("李四", "awaiting_request")]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": "garbage"}, "invalid_cursor"),
        ({"priority": "asap"}, "invalid_request"),
        ({"limit": "0"}, "invalid_request"),
        ({"colour": "red"}, "invalid_request"),
    ],
)
async def test_bad_query_parameters_are_400_with_a_reason(service, consortium, params, code):
    """Wrong filters are refused clearly rather than ignored."""
    response = await service.client.get(
        "/api/worklist", headers=await service.login("dr.li"), params=params
    )
    assert response.status == 400
    assert (await response.json())["error"] == code


async def test_escalations_show_on_the_worklist(service, consortium):
    """The latest escalation reason from the timeline is on the item (null when none)."""
    escalated = await file(service, consortium["a"], consortium["wang"], "E1", "stat", T0)
    await file(service, consortium["a"], consortium["wang"], "E2", "stat", T0)
    await service.database.write(
        append_event,
        escalated,
        "escalated",
        "2026-11-23T00:20:00.000000Z",
        detail={"reason": "unclaimed"},
    )
    await service.database.write(
        append_event,
        escalated,
        "escalated",
        "2026-11-23T00:31:00.000000Z",
        detail={"reason": "overdue"},
    )
    items = (await service.worklist(await service.login("dr.li")))["items"]
    assert {i["accession_number"]: i["escalation"] for i in items} == {
        "E1": "overdue",
        "E2": None,
    }
