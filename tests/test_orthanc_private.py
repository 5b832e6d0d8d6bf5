"""Orthanc stays private: its credentials never reach a browser or a log, and an unreachable
archive is reported without internals."""

from __future__ import annotations

import io
import logging

import aiohttp

from service.demo.synthetic import StudySpec, dataset_bytes, make_study


async def test_orthanc_credentials_appear_in_no_answer_and_no_log(service, caplog):
    """Upload, worklist, errors: the generated password is nowhere a user or a log can see."""
    caplog.set_level(logging.DEBUG)
    password = service.orthanc.config.credentials.password
    clinic = await service.add_facility("Clinic", "township", "CLINIC_P")
    await service.add_user("wang", "radiographer", clinic)
    headers = await service.login("wang")
    form = aiohttp.FormData()
    study = make_study(StudySpec("P1", "WANG^FANG", "CR", "CHEST"))
    form.add_field("files", io.BytesIO(dataset_bytes(study[0])), filename="a.dcm")
    form.add_field("files", io.BytesIO(b"not dicom" * 50), filename="b.txt")
    bodies = []
    for response in (
        await service.client.post("/api/studies", headers=headers, data=form),
        await service.client.get("/api/worklist", headers=headers),
        await service.client.get("/api/openapi.json"),
        await service.client.get("/login"),
    ):
        bodies.append(await response.text() + str(dict(response.headers)))
    assert all(password not in body for body in bodies)
    assert password not in caplog.text
    assert service.orthanc.url not in "".join(bodies)


async def test_archive_down_is_a_503_without_internals(service):
    """With Orthanc gone, an upload answers 503 pacs_unavailable and names no host or port."""
    clinic = await service.add_facility("Clinic", "township", "CLINIC_Q")
    await service.add_user("wang", "radiographer", clinic)
    headers = await service.login("wang")
    await service.orthanc.kill()
    form = aiohttp.FormData()
    study = make_study(StudySpec("P1", "WANG^FANG", "CR", "CHEST"))
    form.add_field("files", io.BytesIO(dataset_bytes(study[0])), filename="a.dcm")
    response = await service.client.post("/api/studies", headers=headers, data=form)
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "pacs_unavailable"
    assert str(service.orthanc.config.http_port) not in body["detail"]
    assert "Traceback" not in await response.text()
