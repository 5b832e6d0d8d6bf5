"""End to end: a study sent by C-STORE from a registered clinic reaches the worklist."""

from __future__ import annotations

from service.demo.synthetic import StudySpec, make_study


async def test_c_store_study_from_registered_clinic_appears_on_worklist(service):
    """A township modality's study becomes a consultation awaiting its request."""
    clinic = await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    await service.add_user("wang", "radiographer", clinic)
    headers = await service.login("wang")
    study = make_study(
        StudySpec("P1", "张三", "CT", "HEAD", instances=3, charset="GB18030", accession_number="A1")
    )
    await service.c_store(study, "DONGXIANG_DR")

    async def listed():
        return (await service.worklist(headers))["items"]

    items = await service.wait_for(listed)
    assert len(items) == 1
    item = items[0]
    assert item["study_instance_uid"] == study[0].StudyInstanceUID
    assert item["patient_name"] == "张三"
    assert item["facility"] == "Dongxiang"
    assert item["modality"] == "CT"
    assert item["body_part"] == "HEAD"
    assert item["status"] == "awaiting_request"
    assert item["instances"] == 3
