"""Uploads through the service (POST /api/studies) and DICOMweb STOW-RS (POST /dicom-web/studies).

Everything runs against the real app and a real throwaway Orthanc: files are checked one by one,
stored into Orthanc with the service's own credentials, and the study is credited to the
uploader's facility, which Orthanc itself never learns.
"""

from __future__ import annotations

import gc
import io
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from service.app import create_app
from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.http.keys import ORTHANC

from .conftest import Service

MB = 1 << 20


# --------------------------------------------------------------------------- helpers


def dicom_form(files: list[tuple[str, bytes | Any]]) -> aiohttp.FormData:
    """A multipart/form-data body with every file under the field name ``files``.

    Bytes go in as BytesIO: aiohttp warns (an error under this suite) about large raw bytes.
    """
    form = aiohttp.FormData()
    for filename, content in files:
        body = io.BytesIO(content) if isinstance(content, bytes) else content
        form.add_field("files", body, filename=filename, content_type="application/dicom")
    return form


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


async def clinic_radiographer(service: Service, name: str = "Dongxiang") -> dict[str, Any]:
    """A township clinic with one logged-in radiographer."""
    aet = name.upper()[:16]
    facility_id = await service.add_facility(name, "township", aet)
    username = f"rad-{name.lower()}"
    await service.add_user(username, "radiographer", facility_id)
    return {"facility_id": facility_id, "headers": await service.login(username)}


async def orthanc_has_instance(service: Service, sop_instance_uid: str) -> bool:
    found = await service.app[ORTHANC].request("POST", "/tools/lookup", data=sop_instance_uid)
    return any(hit["Type"] == "Instance" for hit in found)


async def listed_study(service: Service, headers: dict[str, str], study_uid: str) -> Any:
    """Wait until the study is on the caller's worklist; return its item."""

    async def find():
        items = (await service.worklist(headers))["items"]
        return next((i for i in items if i["study_instance_uid"] == study_uid), None)

    return await service.wait_for(find)


def vm_status() -> dict[str, int]:
    """This process's VmRSS and VmHWM (peak RSS), in bytes."""
    with open("/proc/self/status") as status:
        lines = status.read().splitlines()
    return {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in lines
        if line.startswith(("VmRSS:", "VmHWM:"))
    }


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux: writing 5 to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


@pytest.fixture
async def one_mb_limit_service(settings, orthanc, aiohttp_client) -> Service:
    """The app built with a 1 MB per-file upload limit."""
    app = create_app(replace(settings, upload_max_file_mb=1))
    client = await aiohttp_client(app)
    return Service(client, app, orthanc)


# --------------------------------------------------------------------------- /api/studies


async def test_the_upload_answer_names_each_study_and_links_its_consultation(service):
    """Per study: the patient's name (decoded from GB18030), ID, study description and files
    accepted; its consultation once the clinic has one. The older fields stay as they were."""
    clinic = await clinic_radiographer(service)
    study = make_study(StudySpec("DX0001", "张^伟", "CT", "HEAD", instances=2, charset="GB18030"))
    study_uid = study[0].StudyInstanceUID
    files = [(f"s{i}.dcm", dataset_bytes(ds)) for i, ds in enumerate(study)] + [
        ("notes.txt", b"not dicom at all" * 20)
    ]

    response = await service.client.post(
        "/api/studies", data=dicom_form(files), headers=clinic["headers"]
    )

    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["accepted"], body["rejected"], body["studies"]) == (2, 1, [study_uid])
    assert body["study_details"] == [
        {
            "study_instance_uid": study_uid,
            "patient_name": "张^伟",
            "patient_id": "DX0001",
            "study_description": "CT HEAD",
            "instances": 2,
            "consultation_id": None,
            "consultation": None,
        }
    ]
    filed = await service.client.post(
        "/api/consultations",
        headers=clinic["headers"],
        json={"study_instance_uid": study_uid, "priority": "routine", "clinical_question": "?"},
    )
    consultation_id = (await filed.json())["id"]
    again = await service.client.post(
        "/api/studies", data=dicom_form(files[:1]), headers=clinic["headers"]
    )
    [detail] = (await again.json())["study_details"]
    assert (detail["instances"], detail["consultation_id"]) == (1, consultation_id)
    assert detail["consultation"] == f"/consultations/{consultation_id}"


async def test_uploaded_dcm_files_are_accepted_and_credited_to_the_uploaders_facility(service):
    """Three .dcm files of one study are stored; the study lands on the uploader's worklist
    credited to their clinic, although Orthanc only records the service's own user."""
    clinic = await clinic_radiographer(service)
    study = make_study(StudySpec("P1", "WANG^FANG", "CT", "CHEST", instances=3))
    study_uid = study[0].StudyInstanceUID
    form = dicom_form([(f"slice{i}.dcm", dataset_bytes(ds)) for i, ds in enumerate(study)])

    response = await service.client.post("/api/studies", data=form, headers=clinic["headers"])

    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["accepted"] == 3 and body["rejected"] == 0
    assert body["studies"] == [study_uid]
    assert [(f["filename"], f["status"]) for f in body["files"]] == [
        ("slice0.dcm", "accepted"),
        ("slice1.dcm", "accepted"),
        ("slice2.dcm", "accepted"),
    ]
    assert [(f["study_instance_uid"], f["sop_instance_uid"]) for f in body["files"]] == [
        (study_uid, ds.SOPInstanceUID) for ds in study
    ]
    item = await listed_study(service, clinic["headers"], study_uid)
    assert item["facility_id"] == clinic["facility_id"]
    assert item["facility"] == "Dongxiang"
    assert item["status"] == "awaiting_request"
    assert item["instances"] == 3
    orthanc = service.app[ORTHANC]
    [hit] = await orthanc.request("POST", "/tools/lookup", data=study[0].SOPInstanceUID)
    metadata = await orthanc.instance_metadata(hit["ID"])
    assert metadata["Origin"] == "RestApi"
    assert metadata["HttpUsername"] == service.orthanc.config.credentials.username


async def test_zip_upload_stores_dicom_members_rejects_junk_and_skips_macosx(service):
    """A .zip's DICOM members are accepted, a README is rejected as not DICOM, and
    macOS resource forks under __MACOSX/ are skipped without a verdict."""
    clinic = await clinic_radiographer(service)
    study = make_study(StudySpec("P2", "LI^NA", "MR", "HEAD", instances=2))
    members = {f"study/{ds.SOPInstanceUID}.dcm": dataset_bytes(ds) for ds in study}
    members["study/README.txt"] = b"Exported from the clinic workstation.\n"
    members["__MACOSX/study/._README.txt"] = b"\x00\x05\x16\x07resource fork"
    form = dicom_form([("export.zip", zip_bytes(members))])

    response = await service.client.post("/api/studies", data=form, headers=clinic["headers"])

    assert response.status == 200, await response.text()
    verdicts = {f["filename"]: f for f in (await response.json())["files"]}
    assert sorted(verdicts) == sorted(
        [f"export.zip/study/{ds.SOPInstanceUID}.dcm" for ds in study]
        + ["export.zip/study/README.txt"]
    )
    for ds in study:
        verdict = verdicts[f"export.zip/study/{ds.SOPInstanceUID}.dcm"]
        assert verdict["status"] == "accepted"
        assert verdict["sop_instance_uid"] == ds.SOPInstanceUID
    readme = verdicts["export.zip/study/README.txt"]
    assert (readme["status"], readme["reason"]) == ("rejected", "not a DICOM file")
    for ds in study:
        assert await orthanc_has_instance(service, ds.SOPInstanceUID)


async def test_each_file_gets_its_own_rejection_reason_and_good_files_are_still_stored(
    one_mb_limit_service,
):
    """In one request a text file, a truncated DICOM file and a file over the 1 MB limit are
    each rejected with their own reason, none reaches Orthanc, and the good files before and
    after them are all stored: the last one exported without its preamble and DICM prefix (its
    File Meta Information first), which is stored as the Part 10 file it is but for them."""
    service = one_mb_limit_service
    clinic = await clinic_radiographer(service)
    good = make_study(StudySpec("P3", "ZHAO^LEI", "CT", "HEAD", instances=2))
    truncated_ds = make_study(StudySpec("P3", "ZHAO^LEI", "CT", "HEAD"))[0]
    big_ds = make_study(StudySpec("P4", "SUN^LI", "CR", "CHEST", rows=1024))[0]
    whole = dataset_bytes(truncated_ds)
    truncated = whole[: len(whole) - 200_000]  # cut inside the 512 KB of pixel data
    big = dataset_bytes(big_ds)
    assert len(big) > 2 * MB
    form = dicom_form(
        [
            ("first.dcm", dataset_bytes(good[0])),
            ("notes.txt", b"patient moved during the scan\n"),
            ("cut.dcm", truncated),
            ("big.dcm", big),
            ("last.dcm", dataset_bytes(good[1])[132:]),
        ]
    )

    response = await service.client.post("/api/studies", data=form, headers=clinic["headers"])

    assert response.status == 200, await response.text()
    body = await response.json()
    verdicts = {f["filename"]: f for f in body["files"]}
    assert (body["accepted"], body["rejected"]) == (2, 3)
    assert verdicts["first.dcm"]["status"] == "accepted"
    assert verdicts["last.dcm"]["status"] == "accepted"
    assert (verdicts["notes.txt"]["status"], verdicts["notes.txt"]["reason"]) == (
        "rejected",
        "not a DICOM file",
    )
    assert verdicts["cut.dcm"]["status"] == "rejected"
    assert "truncated" in verdicts["cut.dcm"]["reason"]
    assert verdicts["big.dcm"]["status"] == "rejected"
    assert "over the size limit" in verdicts["big.dcm"]["reason"]
    for ds in good:
        assert await orthanc_has_instance(service, ds.SOPInstanceUID)
    assert not await orthanc_has_instance(service, truncated_ds.SOPInstanceUID)
    assert not await orthanc_has_instance(service, big_ds.SOPInstanceUID)


async def test_upload_with_no_acceptable_file_is_a_400_listing_every_file(service):
    """When every file is rejected the answer is 400 no_dicom_accepted, still with the
    per-file verdicts so the uploader learns why."""
    clinic = await clinic_radiographer(service)
    form = dicom_form([("a.txt", b"hello"), ("b.jpg", b"\xff\xd8\xff\xe0 not dicom")])

    response = await service.client.post("/api/studies", data=form, headers=clinic["headers"])

    assert response.status == 400
    body = await response.json()
    assert body["error"] == "no_dicom_accepted"
    assert body["detail"]
    assert body["accepted"] == 0
    assert [(f["filename"], f["status"], f["reason"]) for f in body["files"]] == [
        ("a.txt", "rejected", "not a DICOM file"),
        ("b.jpg", "rejected", "not a DICOM file"),
    ]


async def test_upload_that_is_not_multipart_is_a_415_json_error(service):
    """A raw body (not multipart/form-data) is refused with 415 and the JSON error shape."""
    clinic = await clinic_radiographer(service)
    ds = make_study(StudySpec("P5", "QIAN^YU", "CR", "CHEST", rows=64))[0]

    response = await service.client.post(
        "/api/studies",
        data=dataset_bytes(ds),
        headers=clinic["headers"] | {"Content-Type": "application/dicom"},
    )

    assert response.status == 415
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"] == "unsupported_media_type"
    assert "multipart/form-data" in body["detail"]


async def test_multipart_upload_without_a_boundary_is_a_400_json_error(service):
    """A multipart content type that cannot be parsed is the client's mistake, not a 500."""
    clinic = await clinic_radiographer(service)

    response = await service.client.post(
        "/api/studies",
        data=b"--x\r\n\r\n",
        headers=clinic["headers"] | {"Content-Type": "multipart/form-data"},
    )

    assert response.status == 400
    body = await response.json()
    assert body["error"] == "bad_multipart"
    assert "boundary" in body["detail"]


async def test_multipart_part_header_with_a_control_character_is_a_400_json_error(service):
    """A part header aiohttp's parser refuses (a control character in a field name: found by
    fuzzing) is the client's mistake too."""
    clinic = await clinic_radiographer(service)
    body = b'--b\r\nContent-Disposition: form-data; name="\x18x"\r\n\r\nx\r\n--b--\r\n'

    response = await service.client.post(
        "/api/studies",
        data=body,
        headers=clinic["headers"] | {"Content-Type": "multipart/form-data; boundary=b"},
    )

    assert response.status == 400
    assert (await response.json())["error"] == "bad_multipart"


async def test_stow_part_header_with_a_control_character_is_a_400_json_error(service):
    """STOW-RS reads its parts like an upload: a part header the parser refuses is a 400."""
    clinic = await clinic_radiographer(service)
    body = b"--b\r\nContent-Type: application/dicom\r\nX-Name: \x18x\r\n\r\nx\r\n--b--\r\n"
    content_type = 'multipart/related; type="application/dicom"; boundary=b'

    response = await service.client.post(
        "/dicom-web/studies", data=body, headers=clinic["headers"] | {"Content-Type": content_type}
    )

    assert response.status == 400
    assert (await response.json())["error"] == "bad_multipart"


async def test_specialist_may_not_upload_studies(service):
    """A specialist of the regional centre reads studies but cannot upload them: 403 JSON."""
    centre = await service.add_facility("Regional centre", "regional", "REGION_PACS")
    await service.add_user("dr-liu", "specialist", centre)
    headers = await service.login("dr-liu")
    ds = make_study(StudySpec("P6", "ZHOU^MIN", "CR", "CHEST", rows=64))[0]

    response = await service.client.post(
        "/api/studies", data=dicom_form([("x.dcm", dataset_bytes(ds))]), headers=headers
    )

    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"
    assert not await orthanc_has_instance(service, ds.SOPInstanceUID)


async def test_unauthenticated_upload_is_a_401_json_error(service):
    """Without a session or bearer token the upload is refused with 401 JSON."""
    ds = make_study(StudySpec("P7", "WU^HUA", "CR", "CHEST", rows=64))[0]

    response = await service.client.post(
        "/api/studies", data=dicom_form([("x.dcm", dataset_bytes(ds))])
    )

    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"
    assert not await orthanc_has_instance(service, ds.SOPInstanceUID)


async def measure_upload_peak(
    service: Service, headers: dict[str, str], path: Path
) -> tuple[aiohttp.ClientResponse, int]:
    """Upload ``path`` (streamed from disk by the client); return the answer and how much this
    process's peak RSS rose above its RSS just before the request."""
    gc.collect()
    reset_peak_rss()
    before = vm_status()["VmRSS"]
    with path.open("rb") as fh:
        response = await service.client.post(
            "/api/studies", data=dicom_form([(path.name, fh)]), headers=headers
        )
        await response.read()
    return response, vm_status()["VmHWM"] - before


async def test_large_multiframe_upload_is_streamed_not_held_in_memory(service, tmp_path):
    """A 50 MB multi-frame file goes to disk and on to Orthanc in chunks: the service's
    peak memory rises by far less than the file's size (the app runs in this process)."""
    clinic = await clinic_radiographer(service)
    ds = make_study(StudySpec("P8", "HE^JUN", "CT", "ABDOMEN"))[0]
    frames = 100
    ds.NumberOfFrames = frames
    ds.PixelData = ds.PixelData * frames
    path = tmp_path / "cine.dcm"
    ds.save_as(path, enforce_file_format=True)
    sop_uid = ds.SOPInstanceUID
    del ds
    size = path.stat().st_size
    assert size > 50 * 10**6

    response, growth = await measure_upload_peak(service, clinic["headers"], path)

    assert response.status == 200, await response.text()
    assert (await response.json())["accepted"] == 1
    assert await orthanc_has_instance(service, sop_uid)
    assert growth < size / 2, f"peak RSS grew {growth / MB:.1f} MB for a {size / MB:.0f} MB file"


async def test_large_zip_upload_is_streamed_not_held_in_memory(service, tmp_path):
    """A 50 MB zip of a 100-slice CT is spooled and unpacked member by member: peak memory
    rises by far less than the archive's size."""
    clinic = await clinic_radiographer(service)
    study = make_study(StudySpec("P9", "MA^LIN", "CT", "CHEST", instances=100))
    path = tmp_path / "ct.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for ds in study:
            archive.writestr(f"{ds.SOPInstanceUID}.dcm", dataset_bytes(ds))
    del study
    size = path.stat().st_size
    assert size > 50 * 10**6

    response, growth = await measure_upload_peak(service, clinic["headers"], path)

    assert response.status == 200, await response.text()
    assert (await response.json())["accepted"] == 100
    assert growth < size / 2, f"peak RSS grew {growth / MB:.1f} MB for a {size / MB:.0f} MB zip"


# --------------------------------------------------------------------------- STOW-RS


def stow_body(datasets: list[Any]) -> tuple[aiohttp.MultipartWriter, dict[str, str]]:
    """A multipart/related; type="application/dicom" body with one part per instance."""
    writer = aiohttp.MultipartWriter("related")
    for ds in datasets:
        writer.append(dataset_bytes(ds), {"Content-Type": "application/dicom"})
    content_type = f'multipart/related; type="application/dicom"; boundary="{writer.boundary}"'
    return writer, {"Content-Type": content_type, "Accept": "application/dicom+json"}


async def test_stow_rs_stores_instances_and_credits_the_uploaders_facility(service):
    """STOW-RS by a radiographer answers 200 application/dicom+json whose (0008,1199)
    Referenced SOP Sequence lists both instances with retrieve URLs on the service (not on
    Orthanc), and the study is credited to the uploader's clinic although Orthanc's own
    DICOMweb plugin would record no user at all."""
    clinic = await clinic_radiographer(service)
    study = make_study(StudySpec("P10", "GAO^XIN", "DX", "KNEE", instances=2, rows=128))
    study_uid = study[0].StudyInstanceUID
    body, headers = stow_body(study)

    response = await service.client.post(
        "/dicom-web/studies", data=body, headers=clinic["headers"] | headers
    )

    assert response.status == 200, await response.text()
    assert response.content_type == "application/dicom+json"
    answer = await response.json(content_type=None)
    assert "00081198" not in answer
    referenced = answer["00081199"]["Value"]
    assert [r["00081155"]["Value"][0] for r in referenced] == [ds.SOPInstanceUID for ds in study]
    service_root = str(service.client.make_url("/dicom-web/studies"))
    orthanc_port = f":{service.orthanc.config.http_port}"
    for ds, item in zip(study, referenced, strict=True):
        url = item["00081190"]["Value"][0]
        assert url == f"{service_root}/{study_uid}/instances/{ds.SOPInstanceUID}"
        assert orthanc_port not in url
    item = await listed_study(service, clinic["headers"], study_uid)
    assert item["facility_id"] == clinic["facility_id"]
    assert item["status"] == "awaiting_request"
    assert item["instances"] == 2


async def test_stow_rs_to_a_study_rejects_an_instance_of_another_study(service):
    """STOW-RS addressed to /dicom-web/studies/{uid} with an instance of a different study
    lists it in (0008,1198) Failed SOP Sequence with a failure reason, answers 409 since
    nothing succeeded, and stores nothing."""
    clinic = await clinic_radiographer(service)
    addressed = make_study(StudySpec("P11", "LUO^BIN", "CR", "CHEST", rows=64))[0]
    stray = make_study(StudySpec("P12", "TANG^YI", "CR", "CHEST", rows=64))[0]
    body, headers = stow_body([stray])

    response = await service.client.post(
        f"/dicom-web/studies/{addressed.StudyInstanceUID}",
        data=body,
        headers=clinic["headers"] | headers,
    )

    assert response.status == 409, await response.text()
    assert response.content_type == "application/dicom+json"
    answer = await response.json(content_type=None)
    assert "00081199" not in answer
    [failed] = answer["00081198"]["Value"]
    assert failed["00081155"]["Value"] == [stray.SOPInstanceUID]
    assert failed["00081197"]["Value"][0] != 0
    assert not await orthanc_has_instance(service, stray.SOPInstanceUID)
