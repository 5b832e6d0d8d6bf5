"""A study belongs to the facility that sent it first (issue 14, "Why" 2 and 3).

Dongxiang's township clinic sends a study to the real Orthanc by C-STORE; Xiping, another
township clinic, then tries every way in: a request naming Dongxiang's Study UID, a C-STORE with
Dongxiang's Study UID and Patient ID, the same Study UID with another Patient ID, an upload or
STOW of a study Dongxiang only requested. Each is refused (409, or quarantined and moved out of
Orthanc), Dongxiang's study stays exactly as it was, its viewer keeps working, and no view of
Xiping's reaches Dongxiang's images. Every view is audited with the patient's id.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import aiohttp
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from service.clock import to_iso, utc_now
from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.http.keys import ORTHANC, SETTINGS
from service.storage import consultations as consultation_store
from service.storage import ingest as ingest_store

from .conftest import Service
from .module_app import running_service

pytestmark = pytest.mark.orthanc  # the module's own (see ``ownership``)

PATIENT = "DX-PID-001"
OWNED_ELSEWHERE = "the study belongs to another facility"
SECOND_PATIENT_ID = "the Study UID is already held under another Patient ID"


def consultations_of(db, study_instance_uid: str) -> list[dict[str, Any]]:
    sql = "SELECT * FROM consultations WHERE study_instance_uid = ? ORDER BY id"
    return [dict(r) for r in db.execute(sql, [study_instance_uid])]


def study_viewed_rows(db, study_instance_uid: str) -> list[dict[str, Any]]:
    sql = (
        "SELECT * FROM audit_log WHERE action = 'study.viewed' AND study_instance_uid = ?"
        " ORDER BY id"
    )
    return [dict(r) for r in db.execute(sql, [study_instance_uid])]


def an_instance_of(study: list[Dataset], patient_id: str) -> Dataset:
    """One new image in ``study`` (new series and SOP Instance UIDs) with ``patient_id``."""
    [extra] = make_study(
        StudySpec(
            patient_id,
            "XIPING^PATIENT",
            "CT",
            "HEAD",
            instances=1,
            study_instance_uid=str(study[0].StudyInstanceUID),
        )
    )
    return extra


def quarantine_of(db, study_instance_uid: str) -> list[dict[str, Any]]:
    """The open quarantine entries of one Study UID (other tests' entries are of theirs)."""
    return [
        e for e in ingest_store.list_quarantine(db) if e["study_instance_uid"] == study_instance_uid
    ]


async def orthanc_studies_of(service, study_instance_uid: str) -> list[str]:
    """Orthanc's ids of the studies holding this Study UID."""
    found = await service.app[ORTHANC].request("POST", "/tools/lookup", data=study_instance_uid)
    return [item["ID"] for item in found if item["Type"] == "Study"]


async def instances_of(service, orthanc_study_id: str) -> list[str]:
    return sorted(i["ID"] for i in await service.app[ORTHANC].study_instances(orthanc_study_id))


@dataclass
class Clinics:
    """Dongxiang and Xiping, township clinics of one test's own, each with its radiographer
    (usernames and AE titles end in the test's tag: the module's app is shared)."""

    dongxiang: int
    xiping: int
    dx_radio: str
    xp_radio: str
    dx_aet: str
    xp_aet: str


async def clinics(service: Service, tag: str) -> Clinics:
    dongxiang = await service.add_facility(f"Dongxiang {tag}", "township", f"DONGXIANG_{tag}")
    xiping = await service.add_facility(f"Xiping {tag}", "township", f"XIPING_{tag}")
    await service.add_user(f"dx_radio_{tag}", "radiographer", dongxiang)
    await service.add_user(f"xp_radio_{tag}", "radiographer", xiping)
    return Clinics(
        dongxiang, xiping, f"dx_radio_{tag}", f"xp_radio_{tag}", f"DONGXIANG_{tag}", f"XIPING_{tag}"
    )


@dataclass
class Ownership:
    """The module's one app and Orthanc (the regional centre's reader and admin seeded), and
    the worlds built for its tests ahead of time (see :func:`ownership`)."""

    service: Service
    worlds: list[dict[str, Any]] = field(default_factory=list)
    tags: count = field(default_factory=count)

    def tag(self) -> str:
        return f"T{next(self.tags)}"


async def build_world(service: Service, tag: str) -> dict[str, Any]:
    """Dongxiang (whose study has arrived by C-STORE) and Xiping, both of tag ``tag``."""
    clinic = await clinics(service, tag)
    study = make_study(StudySpec(PATIENT, "DONG^XIANG", "CT", "HEAD", instances=2))
    uid = str(study[0].StudyInstanceUID)
    await service.c_store(study, clinic.dx_aet)

    async def received() -> list[dict[str, Any]]:
        rows = await service.database.read(consultations_of, uid)
        return [r for r in rows if r["received_at"]]

    [consultation] = await service.wait_for(received)
    return {
        "clinics": clinic,
        "dongxiang": clinic.dongxiang,
        "xiping": clinic.xiping,
        "study": study,
        "uid": uid,
        "consultation": consultation,
        "instances": await instances_of(service, consultation["orthanc_study_id"]),
    }


@pytest.fixture(scope="module")
async def ownership(
    request: pytest.FixtureRequest, tmp_path_factory, database_backend
) -> AsyncIterator[Ownership]:
    """One app and Orthanc for the module (one for each test before), with the regional centre
    (reader, admin) and one world for each test of the module that asks for one, all built at
    once: their C-STOREs wait out Orthanc's StableAge together (~2 s each, one after the other,
    before). Each test's clinics and study are its own, so nothing a test does reaches
    another's."""
    directory = tmp_path_factory.mktemp("study_ownership")
    async with running_service(directory) as (service, _):
        centre = await service.add_facility("Regional centre", "regional", "REGION_PACS")
        await service.add_user("reader", "specialist", centre)
        await service.add_user("admin", "admin", centre)
        shared = Ownership(service)
        wanted = sum(
            1
            for item in request.session.items
            if getattr(item, "module", None) is request.module and "world" in item.fixturenames
        )
        shared.worlds = list(
            await asyncio.gather(*(build_world(service, shared.tag()) for _ in range(wanted)))
        )
        yield shared


@pytest.fixture
def service(ownership: Ownership) -> Service:
    """The module's app (replaces conftest's app-per-test fixture of the same name)."""
    return ownership.service


@pytest.fixture
async def world(ownership: Ownership) -> dict[str, Any]:
    """A world of this test's own: one built ahead by the module, or a new one."""
    if ownership.worlds:
        return ownership.worlds.pop(0)
    return await build_world(ownership.service, ownership.tag())


@pytest.fixture
async def own(ownership: Ownership) -> Clinics:
    """Dongxiang and Xiping of this test's own, with nothing sent yet."""
    return await clinics(ownership.service, ownership.tag())


def view_urls(world: dict[str, Any], consultation_id: int) -> dict[str, str]:
    """Every view of a consultation's images: manifest, metadata, thumbnails, frames, values."""
    image = world["study"][0]
    series = f"/dicom-web/studies/{world['uid']}/series/{image.SeriesInstanceUID}"
    instance = f"{series}/instances/{image.SOPInstanceUID}"
    values = f"/api/viewer/studies/{world['uid']}/series/{image.SeriesInstanceUID}"
    return {
        "viewer": f"/api/consultations/{consultation_id}/viewer",
        "study metadata": f"/dicom-web/studies/{world['uid']}/metadata",
        "series metadata": f"{series}/metadata",
        "instance metadata": f"{instance}/metadata",
        "study thumbnail": f"/dicom-web/studies/{world['uid']}/thumbnail",
        "thumbnail": f"{instance}/thumbnail",
        "rendered": f"{instance}/frames/1/rendered",
        "values": f"{values}/instances/{image.SOPInstanceUID}/frames/1/values",
    }


async def test_a_request_naming_another_facilitys_study_is_refused_with_409(service, world):
    """Xiping's radiographer files a request naming Dongxiang's Study UID: 409 with the reason,
    and nothing is created (no consultation, no event) that would open Dongxiang's study."""
    headers = await service.login(world["clinics"].xp_radio)
    response = await service.client.post(
        "/api/consultations",
        headers=headers,
        json={"study_instance_uid": world["uid"], "priority": "routine"},
    )
    body = await response.json()
    assert response.status == 409, body
    assert body["error"] == "study_of_another_facility"
    assert "another facility" in body["detail"]
    rows = await service.database.read(consultations_of, world["uid"])
    assert [r["facility_id"] for r in rows] == [world["dongxiang"]]
    assert (await service.worklist(headers))["items"] == []


async def test_the_owner_may_still_request_a_reading_of_its_own_study(service, world):
    """The refusal is about ownership only: Dongxiang's own request completes its consultation."""
    response = await service.client.post(
        "/api/consultations",
        headers=await service.login(world["clinics"].dx_radio),
        json={"study_instance_uid": world["uid"], "priority": "urgent"},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["id"] == world["consultation"]["id"]


async def test_a_consultation_without_images_of_its_own_never_shows_another_facilitys(
    service, world
):
    """A consultation of Xiping that names Dongxiang's Study UID (as one filed before requests
    were checked) opens nothing: viewer, metadata, thumbnails, rendered frames and values all
    answer 404 to Xiping (and its viewer to the regional centre's reader too), while
    Dongxiang's own radiographer gets every one of them."""
    stamp = to_iso(utc_now())
    foreign = await service.database.write(
        consultation_store.insert_consultation,
        {
            "facility_id": world["xiping"],
            "study_instance_uid": world["uid"],
            "priority": "routine",
            "priority_rank": 2,
            "status": "awaiting_images",
            "due_at": stamp,
            "requested_at": stamp,
            "created_at": stamp,
            "updated_at": stamp,
        },
    )
    xiping = await service.login(world["clinics"].xp_radio)
    for name, url in view_urls(world, foreign).items():
        response = await service.client.get(url, headers=xiping)
        assert response.status == 404, (name, response.status)
        assert PATIENT not in await response.text(), name
    dongxiang = await service.login(world["clinics"].dx_radio)
    for name, url in view_urls(world, world["consultation"]["id"]).items():
        response = await service.client.get(url, headers=dongxiang)
        assert response.status == 200, (name, response.status, await response.text())
    # The regional centre's reader sees both consultations, and Xiping's still opens nothing.
    reader = await service.login("reader")
    response = await service.client.get(f"/api/consultations/{foreign}/viewer", headers=reader)
    assert response.status == 404


async def test_c_store_of_another_facilitys_study_is_quarantined_and_moved_out(service, world):
    """XIPING_CT sends one image with Dongxiang's Study UID and Patient ID: it is quarantined
    with the reason, its file is kept under the data directory and it is deleted from Orthanc,
    so Dongxiang's study holds exactly the instances it held; Xiping gets no consultation and
    none of Dongxiang's images."""
    intruder = an_instance_of(world["study"], PATIENT)
    await service.c_store([intruder], world["clinics"].xp_aet)

    async def moved() -> list[dict[str, Any]]:
        entries = await service.database.read(quarantine_of, world["uid"])
        if not entries:
            return []
        held = await service.database.read(ingest_store.quarantined_instances, entries[0]["id"])
        return entries if held and all(h["moved_at"] for h in held) else []

    await service.wait_for(moved)
    listed = await service.client.get("/api/admin/quarantine", headers=await service.login("admin"))
    [entry] = [i for i in (await listed.json())["items"] if i["study_instance_uid"] == world["uid"]]
    assert (entry["remote_aet"], entry["reason"]) == (world["clinics"].xp_aet, OWNED_ELSEWHERE)
    assert entry["moved_out"] == 1
    assert entry["orthanc_study_id"] == world["consultation"]["orthanc_study_id"]
    [held] = await service.database.read(ingest_store.quarantined_instances, entry["id"])
    kept = service.app[SETTINGS].quarantine_dir / held["file"]
    assert intruder.SOPInstanceUID.encode() in kept.read_bytes()

    assert await instances_of(service, entry["orthanc_study_id"]) == world["instances"]
    [row] = await service.database.read(consultations_of, world["uid"])
    assert (row["facility_id"], row["instances"]) == (world["dongxiang"], 2)
    xiping = await service.login(world["clinics"].xp_radio)
    assert (await service.worklist(xiping))["items"] == []
    metadata = await service.client.get(view_urls(world, 0)["study metadata"], headers=xiping)
    assert metadata.status == 404


async def test_a_second_patient_id_is_quarantined_and_the_owners_viewer_keeps_working(
    service, world
):
    """The same Study UID with another Patient ID makes a second Orthanc study, and Orthanc's
    DICOMweb then finds neither by UID. Dongxiang's viewer and metadata answer 200 all along
    (also while Orthanc holds both), and so do its DICOMweb retrieve and searches; the second
    study is quarantined and removed from Orthanc, and Dongxiang's study is untouched."""
    dongxiang = await service.login(world["clinics"].dx_radio)
    urls = view_urls(world, world["consultation"]["id"])
    await service.c_store([an_instance_of(world["study"], "XP-OTHER-9")], world["clinics"].xp_aet)
    seen_both = False
    while True:
        both = len(await orthanc_studies_of(service, world["uid"])) == 2
        for name in ("viewer", "study metadata", "series metadata", "instance metadata"):
            response = await service.client.get(urls[name], headers=dongxiang)
            assert response.status == 200, (name, both, await response.text())
            assert PATIENT in await response.text(), name
            assert "XP-OTHER-9" not in await response.text(), name
            if name == "instance metadata":  # bulk data at teleread, from the plugin or files
                assert (
                    "/dicom-web/studies/" in (await response.json())[0]["7FE00010"]["BulkDataURI"]
                )
                assert service.orthanc.url not in await response.text()
        study = f"/dicom-web/studies/{world['uid']}"
        for path in (study, f"{study}/series", f"{study}/instances"):  # WADO-RS and QIDO-RS
            response = await service.client.get(path, headers=dongxiang)
            assert response.status == 200, (path, both)
            body = await response.read()
            assert PATIENT.encode() in body and b"XP-OTHER-9" not in body, path
        seen_both = seen_both or both
        if not both and await service.database.read(quarantine_of, world["uid"]):
            break
    assert seen_both, "the test never saw Orthanc hold both studies"

    [entry] = await service.database.read(quarantine_of, world["uid"])
    assert (entry["patient_id"], entry["reason"]) == ("XP-OTHER-9", SECOND_PATIENT_ID)
    assert await orthanc_studies_of(service, world["uid"]) == [
        world["consultation"]["orthanc_study_id"]
    ]
    assert (
        await instances_of(service, world["consultation"]["orthanc_study_id"])
        == (world["instances"])
    )
    assert len(await service.database.read(consultations_of, world["uid"])) == 1
    reader = await service.login("reader")
    for name, url in urls.items():
        response = await service.client.get(url, headers=reader)
        assert response.status == 200, (name, response.status)


async def test_every_view_is_audited_with_the_studys_patient_id(service, own):
    """Each view (in a session of its own, since frames are audited at a session's first
    access) leaves a study.viewed record naming the patient of the images shown, also when
    the request, filed before the images, typed another Patient ID."""
    study = make_study(StudySpec(PATIENT, "DONG^XIANG", "CT", "HEAD", instances=2))
    uid = str(study[0].StudyInstanceUID)
    filed = await service.client.post(
        "/api/consultations",
        headers=await service.login(own.dx_radio),
        json={"study_instance_uid": uid, "priority": "routine", "patient_id": "typed-001"},
    )
    assert filed.status == 201, await filed.text()
    consultation_id = (await filed.json())["id"]
    await service.c_store(study, own.dx_aet)

    async def received() -> bool:
        [row] = await service.database.read(consultations_of, uid)
        return bool(row["received_at"])

    await service.wait_for(received)
    urls = view_urls({"study": study, "uid": uid}, consultation_id)
    for name, url in urls.items():
        response = await service.client.get(url, headers=await service.login(own.dx_radio))
        assert response.status == 200, (name, response.status)
    rows = await service.database.read(study_viewed_rows, uid)
    assert len(rows) == len(urls)
    assert {r["patient_id"] for r in rows} == {PATIENT}


def upload_form(datasets: list[Dataset]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for index, dataset in enumerate(datasets):
        form.add_field(
            "files",
            io.BytesIO(dataset_bytes(dataset)),
            filename=f"{index}.dcm",
            content_type="application/dicom",
        )
    return form


async def test_upload_and_stow_of_a_study_another_facility_requested_are_refused(service, own):
    """A study requested by Dongxiang (images not yet sent) belongs to Dongxiang: Xiping's
    upload and STOW-RS of it are refused with the reason, and Xiping is credited nothing."""
    uid = generate_uid()
    filed = await service.client.post(
        "/api/consultations",
        headers=await service.login(own.dx_radio),
        json={"study_instance_uid": uid, "priority": "routine"},
    )
    assert filed.status == 201, await filed.text()
    study = make_study(StudySpec(PATIENT, "DONG^XIANG", "CR", "CHEST", study_instance_uid=uid))
    headers = await service.login(own.xp_radio)

    upload = await service.client.post("/api/studies", headers=headers, data=upload_form(study))
    body = await upload.json()
    assert upload.status == 400, body
    assert body["files"][0]["reason"] == "this study was sent by another facility"

    writer = aiohttp.MultipartWriter("related", boundary="ownership")
    writer.headers["Content-Type"] = (
        'multipart/related; type="application/dicom"; boundary=ownership'
    )
    part = writer.append(io.BytesIO(dataset_bytes(study[0])))
    part.headers["Content-Type"] = "application/dicom"
    stow = await service.client.post("/dicom-web/studies", headers=headers, data=writer)
    assert stow.status == 409, await stow.text()

    assert await orthanc_studies_of(service, uid) == []
    rows = await service.database.read(consultations_of, uid)
    assert [r["facility_id"] for r in rows] == [own.dongxiang]


async def test_c_store_of_a_study_another_facility_requested_is_quarantined_until_its_owner_sends(
    service, own
):
    """Dongxiang requested a study before sending it: Xiping's C-STORE of that Study UID is
    quarantined and removed from Orthanc, and Dongxiang's own images of it land afterwards in
    Dongxiang's consultation."""
    study = make_study(StudySpec(PATIENT, "DONG^XIANG", "CT", "HEAD", instances=2))
    uid = str(study[0].StudyInstanceUID)
    filed = await service.client.post(
        "/api/consultations",
        headers=await service.login(own.dx_radio),
        json={"study_instance_uid": uid, "priority": "routine"},
    )
    assert filed.status == 201, await filed.text()

    await service.c_store([an_instance_of(study, PATIENT)], own.xp_aet)

    async def gone() -> list[dict[str, Any]]:
        entries = await service.database.read(quarantine_of, uid)
        return entries if entries and not await orthanc_studies_of(service, uid) else []

    [entry] = await service.wait_for(gone)
    assert (entry["remote_aet"], entry["reason"]) == (own.xp_aet, OWNED_ELSEWHERE)

    await service.c_store(study, own.dx_aet)

    async def received() -> list[dict[str, Any]]:
        rows = await service.database.read(consultations_of, uid)
        return rows if rows[0]["received_at"] else []

    [row] = await service.wait_for(received)
    assert (row["id"], row["facility_id"], row["instances"]) == (
        (await filed.json())["id"],
        own.dongxiang,
        2,
    )


async def test_instances_a_crash_left_marked_are_moved_out_at_the_next_round(service, world):
    """The ingest marks quarantined instances in its transaction and moves them after: marks a
    crash left behind (file not kept, instance still in Orthanc) are completed by the follower,
    and completing them twice changes nothing."""
    [instance_id, _] = world["instances"]
    entry = {
        "orthanc_study_id": world["consultation"]["orthanc_study_id"],
        "study_instance_uid": world["uid"],
        "patient_id": PATIENT,
        "patient_name": "",
        "origin": "DicomProtocol",
        "remote_aet": "XIPING_CT",
        "remote_ip": "127.0.0.1",
        "instances": 1,
        "reason": OWNED_ELSEWHERE,
        "seen_at": to_iso(utc_now()),
    }

    def mark(db) -> int:
        quarantine_id = ingest_store.quarantine_study(db, entry)
        ingest_store.hold_instances(db, quarantine_id, [instance_id])
        return quarantine_id

    await service.follower.move_out_quarantined()  # anything another test left pending
    quarantine_id = await service.database.write(mark)
    assert await service.follower.move_out_quarantined() == 1
    assert await service.follower.move_out_quarantined() == 0
    [held] = await service.database.read(ingest_store.quarantined_instances, quarantine_id)
    assert held["moved_at"] and held["file"] == f"{quarantine_id}/{instance_id}.dcm"
    assert (service.app[SETTINGS].quarantine_dir / held["file"]).stat().st_size > 0
    remaining = await instances_of(service, world["consultation"]["orthanc_study_id"])
    assert remaining == [i for i in world["instances"] if i != instance_id]
