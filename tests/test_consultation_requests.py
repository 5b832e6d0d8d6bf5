"""Filing consultation requests (POST /api/consultations), before or after the images arrive.

The two halves of a consultation (the clinic's request and the study) meet in either order and
make one consultation; the SLA clock starts at the later of the two. Runs against the real app,
a real Orthanc receiving C-STORE, and real SQLite.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from service.clock import from_iso
from service.demo.synthetic import StudySpec, make_study
from service.storage import consultations as store

from .conftest import Service


async def add_clinic(service: Service, name: str, aet: str) -> dict[str, Any]:
    """A township clinic (by its AE title) with a logged-in radiographer."""
    facility_id = await service.add_facility(name, "township", aet)
    username = f"rad-{aet.lower()}"
    user_id = await service.add_user(username, "radiographer", facility_id)
    return {
        "facility_id": facility_id,
        "aet": aet,
        "user_id": user_id,
        "headers": await service.login(username),
    }


async def file_request(service: Service, headers: dict[str, str], **fields: Any) -> Any:
    return await service.client.post("/api/consultations", json=fields, headers=headers)


async def consultation(service: Service, headers: dict[str, str], consultation_id: int) -> dict:
    response = await service.client.get(f"/api/consultations/{consultation_id}", headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def wait_for_status(
    service: Service, headers: dict[str, str], consultation_id: int, status: str
) -> dict:
    async def reached():
        detail = await consultation(service, headers, consultation_id)
        return detail if detail["status"] == status else None

    return await service.wait_for(reached)


async def consultation_count(service: Service) -> int:
    return await service.database.read(store.count_consultations)


async def test_request_before_images_waits_then_becomes_ready_when_the_study_arrives(service):
    """An urgent request filed before the images is awaiting_images and due 2 h after it was
    filed; when the study arrives by C-STORE from the clinic's AE title the same consultation
    becomes ready (no second one) and is due 2 h after the later moment, the arrival."""
    clinic = await add_clinic(service, "Dongxiang", "DONGXIANG_DR")
    study = make_study(StudySpec("P100", "WANG^FANG", "CT", "HEAD", instances=2))
    study_uid = study[0].StudyInstanceUID

    response = await file_request(
        service,
        clinic["headers"],
        study_instance_uid=study_uid,
        priority="urgent",
        clinical_history="Fell from a motorbike, GCS 14.",
        clinical_question="Intracranial bleed?",
    )

    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["status"] == "awaiting_images" and created["created"] is True
    waiting = await consultation(service, clinic["headers"], created["id"])
    requested_at = from_iso(waiting["requested_at"])
    assert waiting["received_at"] is None
    assert from_iso(waiting["due_at"]) == requested_at + timedelta(hours=2)

    await service.c_store(study, clinic["aet"])
    ready = await wait_for_status(service, clinic["headers"], created["id"], "ready")

    received_at = from_iso(ready["received_at"])
    assert received_at > requested_at
    assert from_iso(ready["requested_at"]) == requested_at
    assert from_iso(ready["due_at"]) == received_at + timedelta(hours=2)
    assert ready["priority"] == "urgent"
    assert ready["clinical_history"] == "Fell from a motorbike, GCS 14."
    assert ready["clinical_question"] == "Intracranial bleed?"
    assert ready["instances"] == 2
    items = (await service.worklist(clinic["headers"]))["items"]
    assert [i["id"] for i in items] == [created["id"]]
    assert await consultation_count(service) == 1


async def test_request_after_images_linked_by_accession_completes_the_waiting_consultation(
    service,
):
    """A stat request naming only the accession number of a study already received completes
    that consultation (200, created false): ready, stat, due 30 min after the request."""
    clinic = await add_clinic(service, "Linxia County", "LINXIA_CT")
    study = make_study(StudySpec("P200", "LI^NA", "CT", "CHEST", accession_number="ACC-2002"))
    await service.c_store(study, clinic["aet"])

    async def received():
        items = (await service.worklist(clinic["headers"]))["items"]
        return items[0] if items and items[0]["status"] == "awaiting_request" else None

    waiting = await service.wait_for(received)

    response = await file_request(
        service,
        clinic["headers"],
        accession_number="ACC-2002",
        priority="stat",
        clinical_question="Pneumothorax?",
    )

    assert response.status == 200, await response.text()
    assert await response.json() == {"id": waiting["id"], "status": "ready", "created": False}
    detail = await consultation(service, clinic["headers"], waiting["id"])
    requested_at = from_iso(detail["requested_at"])
    assert requested_at > from_iso(detail["received_at"])
    assert detail["priority"] == "stat"
    assert from_iso(detail["due_at"]) == requested_at + timedelta(minutes=30)
    assert detail["study_instance_uid"] == study[0].StudyInstanceUID
    assert await consultation_count(service) == 1


async def test_second_request_for_the_same_study_is_a_409_conflict(service):
    """Filing a request again for a study that already has one is refused with 409
    request_exists, and no consultation is added."""
    clinic = await add_clinic(service, "Dongxiang", "DONGXIANG_DR")
    study_uid = "1.2.826.0.1.3680043.8.498.1001"
    first = await file_request(
        service, clinic["headers"], study_instance_uid=study_uid, priority="routine"
    )
    assert first.status == 201, await first.text()

    second = await file_request(
        service, clinic["headers"], study_instance_uid=study_uid, priority="stat"
    )

    assert second.status == 409
    body = await second.json()
    assert body["error"] == "request_exists"
    assert str((await first.json())["id"]) in body["detail"]
    assert await consultation_count(service) == 1


INVALID_REQUESTS = [
    pytest.param(
        {"json": {"priority": "urgent", "clinical_question": "Fracture?"}},
        400,
        "invalid_request",
        "study_instance_uid or accession_number",
        id="no-study-link",
    ),
    pytest.param(
        {"json": {"study_instance_uid": "1.2.3.4", "priority": "asap"}},
        400,
        "invalid_request",
        "priority",
        id="unknown-priority",
    ),
    pytest.param(
        {"json": {"study_instance_uid": "1.2.3.4", "ward": "5B"}},
        400,
        "invalid_request",
        "ward",
        id="unknown-field",
    ),
    pytest.param(
        {"data": '{"study_instance_uid": "1.2.3', "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_json",
        "not valid JSON",
        id="malformed-json",
    ),
    pytest.param(
        {"data": {"study_instance_uid": "1.2.3.4"}},
        415,
        "unsupported_media_type",
        "application/json",
        id="form-encoded",
    ),
]


@pytest.mark.parametrize(("request_kwargs", "status", "error", "named"), INVALID_REQUESTS)
async def test_invalid_request_is_refused_and_writes_nothing(
    service, request_kwargs, status, error, named
):
    """A request without a study link, with an unknown priority or field, with broken JSON or
    in the wrong content type is refused with the JSON error shape and a detail naming the
    problem, and no consultation is written."""
    clinic = await add_clinic(service, "Dongxiang", "DONGXIANG_DR")
    kwargs = dict(request_kwargs)
    headers = clinic["headers"] | kwargs.pop("headers", {})

    response = await service.client.post("/api/consultations", headers=headers, **kwargs)

    assert response.status == status
    body = await response.json()
    assert body["error"] == error
    assert named in body["detail"]
    assert await consultation_count(service) == 0


async def test_radiographer_of_another_clinic_cannot_see_a_consultation(service):
    """Clinic B's radiographer gets 404 (with no patient data) for clinic A's consultation,
    and clinic B's worklist neither lists it nor counts it."""
    clinic_a = await add_clinic(service, "Dongxiang", "DONGXIANG_DR")
    clinic_b = await add_clinic(service, "Hezheng", "HEZHENG_DR")
    response = await file_request(
        service,
        clinic_a["headers"],
        study_instance_uid="1.2.826.0.1.3680043.8.498.2001",
        patient_id="PID-A-77",
        patient_name="ZHANG^SAN",
        clinical_question="Appendicitis?",
        priority="urgent",
    )
    assert response.status == 201, await response.text()
    consultation_id = (await response.json())["id"]

    hidden = await service.client.get(
        f"/api/consultations/{consultation_id}", headers=clinic_b["headers"]
    )

    assert hidden.status == 404
    text = await hidden.text()
    assert (await hidden.json())["error"] == "not_found"
    for private in ("PID-A-77", "ZHANG", "Appendicitis", "Dongxiang"):
        assert private not in text
    worklist = await service.worklist(clinic_b["headers"])
    assert worklist["items"] == []
    assert worklist["counts"] == {"total": 0, "status": {}, "priority": {}, "queue": {}}


async def test_regional_specialist_sees_consultations_from_every_clinic(service):
    """A specialist of the regional centre has every clinic's consultations on the worklist."""
    clinic_a = await add_clinic(service, "Dongxiang", "DONGXIANG_DR")
    clinic_b = await add_clinic(service, "Hezheng", "HEZHENG_DR")
    for clinic, uid in ((clinic_a, "1.2.3.3001"), (clinic_b, "1.2.3.3002")):
        response = await file_request(service, clinic["headers"], study_instance_uid=uid)
        assert response.status == 201, await response.text()
    centre = await service.add_facility("Regional centre", "regional", "REGION_PACS")
    await service.add_user("dr-liu", "specialist", centre)

    worklist = await service.worklist(await service.login("dr-liu"))

    assert sorted((i["facility"], i["study_instance_uid"]) for i in worklist["items"]) == [
        ("Dongxiang", "1.2.3.3001"),
        ("Hezheng", "1.2.3.3002"),
    ]
    assert worklist["counts"]["total"] == 2


async def test_requester_sees_only_the_consultations_they_filed(service):
    """A requester's worklist holds their own requests only, not those of a colleague or of
    the radiographer of the same clinic."""
    clinic = await add_clinic(service, "Linxia County", "LINXIA_CT")
    await service.add_user("dr-ma", "requester", clinic["facility_id"])
    await service.add_user("dr-hu", "requester", clinic["facility_id"])
    ma, hu = await service.login("dr-ma"), await service.login("dr-hu")
    for headers, uid in (
        (ma, "1.2.3.4001"),
        (hu, "1.2.3.4002"),
        (clinic["headers"], "1.2.3.4003"),
    ):
        response = await file_request(service, headers, study_instance_uid=uid)
        assert response.status == 201, await response.text()

    worklist = await service.worklist(ma)

    assert [i["study_instance_uid"] for i in worklist["items"]] == ["1.2.3.4001"]
    assert worklist["counts"]["total"] == 1


async def test_consultation_detail_shows_the_timeline_in_order(service):
    """GET /api/consultations/{id} lists the events in time order: requested (by the user who
    filed it, with its priority), then images_received (with how they came)."""
    clinic = await add_clinic(service, "Dongxiang", "DONGXIANG_DR")
    study = make_study(StudySpec("P700", "SUN^LI", "CR", "CHEST", rows=256))
    response = await file_request(
        service, clinic["headers"], study_instance_uid=study[0].StudyInstanceUID, priority="stat"
    )
    assert response.status == 201, await response.text()
    consultation_id = (await response.json())["id"]
    await service.c_store(study, clinic["aet"])
    await wait_for_status(service, clinic["headers"], consultation_id, "ready")

    detail = await consultation(service, clinic["headers"], consultation_id)

    events = detail["events"]
    assert [e["type"] for e in events] == ["requested", "images_received"]
    requested, received = events
    assert from_iso(requested["at"]) < from_iso(received["at"])
    assert requested["actor_user_id"] == clinic["user_id"]
    assert requested["detail"] == {"priority": "stat"}
    assert received["detail"] == {"instances": 1, "via": "dicom"}
    assert requested["at"] == detail["requested_at"]
    assert received["at"] == detail["received_at"]
