"""The viewer's HTTP side against a real Orthanc and the real service: manifest, metadata,
rendered frames and thumbnails, modality values; facility authorisation and audit-once."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut, pack_bits

from service.app import create_app
from service.demo.synthetic import StudySpec, make_study
from service.settings import Settings
from service.storage.patients import LocalPatient

from .conftest import Service
from .linking import link_identities
from .module_app import running_service

PATIENT = "P_VIEW_1"
EXTRA_PATIENT = ("P_VIEW_2", "ZHOU^LIN")
SIZE = 64


@dataclass
class Viewing:
    """The module's one running app and Orthanc, the settings a second process is built from,
    and the seeded world (see :func:`viewing`)."""

    service: Service
    settings: Settings
    world: dict[str, Any]


@pytest.fixture(scope="module")
async def viewing(tmp_path_factory) -> AsyncIterator[Viewing]:
    """Clinic A sent a CT; the county hospital sent an older CT of the same patient ID; clinic A
    also sent a one-image CT of another patient, the study the colour and overlay tests add
    their instances to (so that the CT's manifest stays what the other tests expect).

    Built once per module (one Orthanc, one app: ~2 s, 29 times before); tests that add data
    add it to the extra study, and tests about a session's first opening log in afresh."""
    directory = tmp_path_factory.mktemp("viewer_http")
    async with running_service(directory) as (service, settings):
        yield Viewing(service, settings, await seed(service))


@pytest.fixture
def service(viewing: Viewing) -> Service:
    """The module's app (replaces conftest's app-per-test fixture of the same name)."""
    return viewing.service


@pytest.fixture
def world(viewing: Viewing) -> dict[str, Any]:
    """The seeded world; a copy, so that what a test adds to it stays in that test."""
    return dict(viewing.world)


async def seed(service: Service) -> dict[str, Any]:
    a = await service.add_facility("Township clinic A", "township", "CLINIC_A")
    b = await service.add_facility("Township clinic B", "township", "CLINIC_B")
    county = await service.add_facility("County hospital", "county", "COUNTY")
    centre = await service.add_facility("Regional centre", "regional", "CENTRE")
    await service.add_user("wang_a", "radiographer", a)
    await service.add_user("li_b", "clinician", b)
    await service.add_user("zhao_c", "specialist", centre)
    # The county's record of the patient is linked to clinic A's (same health card).
    await link_identities(
        service, "H1234567890", LocalPatient(a, PATIENT), LocalPatient(county, PATIENT)
    )
    study = make_study(
        StudySpec(
            PATIENT,
            "WANG^XIAO",
            "CT",
            "HEAD",
            instances=3,
            rows=SIZE,
            study_datetime=datetime(2026, 11, 1, 10, 15),
        )
    )
    prior = make_study(
        StudySpec(
            PATIENT,
            "WANG^XIAO",
            "CT",
            "HEAD",
            instances=1,
            rows=SIZE,
            study_datetime=datetime(2025, 1, 1, 9, 0),
        )
    )
    extra = make_study(StudySpec(*EXTRA_PATIENT, "CT", "HEAD", rows=32))
    await service.c_store(study, "CLINIC_A")
    await service.c_store(prior, "COUNTY")
    await service.c_store(extra, "CLINIC_A")
    specialist = await service.login("zhao_c")

    async def all_received():
        items = (await service.worklist(specialist))["items"]
        return len(items) == 3 and all(i["received_at"] for i in items) and items

    items = await service.wait_for(all_received)
    by_uid = {i["study_instance_uid"]: i["id"] for i in items}
    return {
        "consultation": by_uid[str(study[0].StudyInstanceUID)],
        "prior": by_uid[str(prior[0].StudyInstanceUID)],
        "extra": by_uid[str(extra[0].StudyInstanceUID)],
        "study": study,
        "extra study": extra,
        "owner": await service.login("wang_a"),
        "other": await service.login("li_b"),
        "specialist": specialist,
        "county": county,
    }


async def afresh(service, world) -> dict[str, Any]:
    """The world as seen from a new session of the specialist: one that opened nothing yet."""
    return {**world, "specialist": await service.login("zhao_c")}


def paths(world, n: int = 1) -> dict[str, str]:
    ds = world["study"][1]
    study = f"/dicom-web/studies/{ds.StudyInstanceUID}"
    series = f"{study}/series/{ds.SeriesInstanceUID}"
    instance = f"{series}/instances/{ds.SOPInstanceUID}"
    return {
        "manifest": f"/api/consultations/{world['consultation']}/viewer",
        "study metadata": f"{study}/metadata",
        "series metadata": f"{series}/metadata",
        "instance metadata": f"{instance}/metadata",
        "rendered": f"{instance}/frames/{n}/rendered",
        "instance rendered": f"{instance}/rendered",
        "study thumbnail": f"{study}/thumbnail",
        "series thumbnail": f"{series}/thumbnail",
        "instance thumbnail": f"{instance}/thumbnail",
        "values": (
            f"/api/viewer/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/frames/{n}/values"
        ),
    }


async def get(service, world, path: str, who: str = "specialist", **kwargs):
    return await service.client.get(
        path, headers={**world[who], **kwargs.pop("headers", {})}, **kwargs
    )


async def study_viewed(service) -> list[dict]:
    rows = await service.database.read(
        lambda db: [
            dict(r)
            for r in db.query("SELECT * FROM audit_log WHERE action = 'study.viewed' ORDER BY id")
        ]
    )
    return rows


async def test_another_facilitys_clinic_user_gets_404_on_every_viewer_route(service, world):
    """Never 403: a study out of scope looks exactly like one that does not exist."""
    for name, path in paths(world).items():
        response = await get(service, world, path, "other")
        assert response.status == 404, (name, response.status)
        assert PATIENT not in await response.text()


async def test_the_owner_and_a_centre_specialist_get_every_viewer_route(service, world):
    """The clinic that sent the study and the regional reader both see it."""
    for who in ("owner", "specialist"):
        for name, path in paths(world).items():
            response = await get(service, world, path, who)
            assert response.status == 200, (who, name, response.status, await response.text())


async def test_the_manifest_lists_the_study_its_series_and_images_in_order(service, world):
    """Patient, study, one series, instances by number with size, spacing and window."""
    body = await (await get(service, world, paths(world)["manifest"])).json()
    ds = world["study"][0]
    assert body["consultation_id"] == world["consultation"]
    assert body["study"]["uid"] == ds.StudyInstanceUID
    assert body["study"]["date"] == "20261101"
    assert body["study"]["patient"]["id"] == PATIENT
    assert body["study"]["patient"]["name"] == "WANG^XIAO"
    assert body["study"]["facility_name"] == "Township clinic A"
    [series] = body["series"]
    assert series["uid"] == ds.SeriesInstanceUID and series["modality"] == "CT"
    assert [i["uid"] for i in series["instances"]] == [d.SOPInstanceUID for d in world["study"]]
    first = series["instances"][0]
    assert (first["rows"], first["columns"], first["frames"]) == (SIZE, SIZE, 1)
    assert first["spacing_source"] == "PixelSpacing"
    assert first["pixel_spacing"] == [float(v) for v in ds.PixelSpacing]
    assert first["windows"] == [{"center": 40.0, "width": 400.0}]
    assert first["photometric"] == "MONOCHROME2"
    assert first["rendered"].endswith(f"/instances/{ds.SOPInstanceUID}/frames/1/rendered")


async def test_priors_include_another_facilitys_study_for_the_centre_only(service, world):
    """The specialist sees the county's older study of the same patient ID; the clinic not."""
    path = paths(world)["manifest"]
    specialist = await (await get(service, world, path)).json()
    assert [p["consultation_id"] for p in specialist["priors"]] == [world["prior"]]
    assert specialist["priors"][0]["facility_name"] == "County hospital"
    assert specialist["priors"][0]["date"] == "20250101"
    owner = await (await get(service, world, path, "owner")).json()
    assert owner["priors"] == []


async def test_instance_metadata_is_dicom_json_from_orthanc(service, world):
    """The tag browser's source: DICOM JSON of the instance, its bulk data URIs pointing at
    teleread (Orthanc's address is neither reachable nor to be revealed)."""
    response = await get(service, world, paths(world)["instance metadata"])
    assert response.content_type == "application/dicom+json"
    [item] = await response.json()
    assert item["00080018"]["Value"] == [world["study"][1].SOPInstanceUID]
    bulk = item["7FE00010"]["BulkDataURI"]
    assert bulk.startswith(str(service.client.make_url("/dicom-web/studies/")))
    assert service.orthanc.url not in await response.text()


async def test_an_instance_of_another_study_is_not_reachable_through_an_allowed_one(service, world):
    """The series and instance must belong to the study named in the path."""
    ds = world["study"][0]
    path = (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/1.2.3/instances/"
        f"{ds.SOPInstanceUID}/metadata"
    )
    assert (await get(service, world, path)).status == 404


async def test_opening_a_study_and_fetching_20_frames_is_audited_once(service, world):
    """One study.viewed entry for the manifest; frames and metadata add none."""
    world = await afresh(service, world)
    before = len(await study_viewed(service))
    assert (await get(service, world, paths(world)["manifest"])).status == 200
    for _ in range(10):
        for path in (paths(world)["rendered"], paths(world)["values"]):
            assert (await get(service, world, path)).status == 200
    entries = (await study_viewed(service))[before:]
    assert len(entries) == 1
    assert entries[0]["patient_id"] == PATIENT
    assert entries[0]["study_instance_uid"] == world["study"][0].StudyInstanceUID


async def test_a_frame_fetched_without_the_manifest_is_audited_on_first_access(service, world):
    """Direct DICOMweb clients are audited too: once per session and study."""
    world = await afresh(service, world)
    before = len(await study_viewed(service))
    for _ in range(3):
        assert (await get(service, world, paths(world)["study metadata"])).status == 200
    entries = (await study_viewed(service))[before:]
    assert len(entries) == 1 and entries[0]["username"] == "zhao_c"


@pytest.fixture
async def second_process(viewing: Viewing, aiohttp_client):
    """Another process serving the same database file: its own app, Database and Viewing
    (nothing in memory shared with ``service``)."""
    return await aiohttp_client(create_app(viewing.settings))


async def fetch(client, world, path: str, who: str = "specialist") -> int:
    response = await client.get(path, headers=world[who])
    await response.read()
    return response.status


async def openings(service) -> int:
    return await service.database.read(
        lambda db: db.execute("SELECT COUNT(*) FROM study_openings").fetchone()[0]
    )


async def test_frames_served_by_two_processes_audit_a_study_once_per_session(
    service, world, second_process
):
    """Racing first frames through both processes, then more through each: one study.viewed;
    a new session of the same user opens the study afresh, and is audited once too."""
    world = await afresh(service, world)
    before = len(await study_viewed(service))
    opened = await openings(service)
    frame, values = paths(world)["rendered"], paths(world)["values"]
    both = (service.client, second_process)
    racing = [fetch(client, world, path) for client in both for path in (frame, values)] * 2
    assert set(await asyncio.gather(*racing)) == {200}
    for client in (*both, *both):
        assert await fetch(client, world, paths(world)["study metadata"]) == 200
    entries = (await study_viewed(service))[before:]
    assert len(entries) == 1 and entries[0]["username"] == "zhao_c"

    world["again"] = await service.login("zhao_c")
    for client in (second_process, service.client, second_process):
        assert await fetch(client, world, frame, "again") == 200
    entries = (await study_viewed(service))[before:]
    assert len(entries) == 2 and entries[1]["username"] == "zhao_c"
    assert await openings(service) == opened + 2


async def test_frames_after_the_manifest_in_another_process_are_not_audited_again(
    service, world, second_process
):
    """The manifest is audited on every call and records the opening for every process."""
    world = await afresh(service, world)
    before = len(await study_viewed(service))
    assert await fetch(service.client, world, paths(world)["manifest"]) == 200
    for path in (paths(world)["rendered"], paths(world)["instance metadata"]):
        assert await fetch(second_process, world, path) == 200
    assert len((await study_viewed(service))[before:]) == 1
    assert await fetch(second_process, world, paths(world)["manifest"]) == 200
    assert len((await study_viewed(service))[before:]) == 2


async def stable_layout(service, study_uid: str) -> bool:
    return await service.database.read(
        lambda db: db.execute(
            "SELECT COUNT(*) FROM study_layouts WHERE study_instance_uid = ? AND stable = 1",
            [study_uid],
        ).fetchone()[0]
    )


async def test_a_first_opening_reads_the_layout_the_ingest_stored(service, world, second_process):
    """The ingest builds a stable study's layout before anyone opens it; another process's
    first opening, hours later, serves it from the database (marked here) without asking
    Orthanc."""
    uid = str(world["study"][0].StudyInstanceUID)
    await service.wait_for(lambda: stable_layout(service, uid))

    def mark(db) -> tuple[str, str]:
        stored = db.execute(
            "SELECT layout, built_at FROM study_layouts WHERE study_instance_uid = ?", [uid]
        ).fetchone()
        data = json.loads(stored[0])
        data["study"]["description"] = "FROM THE STORED LAYOUT"
        db.execute(
            "UPDATE study_layouts SET layout = ?, built_at = built_at - 7200"
            " WHERE study_instance_uid = ?",
            [json.dumps(data), uid],
        )
        return stored

    def restore(db) -> None:  # the module's other tests share this study
        db.execute(
            "UPDATE study_layouts SET layout = ?, built_at = ? WHERE study_instance_uid = ?",
            [*original, uid],
        )

    original = await service.database.write(mark)
    try:
        body = await (await get_from(second_process, world, paths(world)["manifest"])).json()
    finally:
        await service.database.write(restore)
    assert body["study"]["description"] == "FROM THE STORED LAYOUT"
    assert len(body["series"][0]["instances"]) == 3


async def get_from(client, world, path: str, who: str = "specialist"):
    return await client.get(path, headers=world[who])


def decoded(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


async def test_rendered_jpeg_and_png_have_the_instances_size(service, world):
    """Accept chooses the format; both decode to rows x columns."""
    path = paths(world)["rendered"]
    for accept, fmt in (("image/jpeg", "JPEG"), ("image/png", "PNG"), (None, "JPEG")):
        headers = {"Accept": accept} if accept else {}
        response = await get(service, world, path, headers=headers)
        assert response.status == 200
        image = decoded(await response.read())
        assert (image.format, image.size) == (fmt, (SIZE, SIZE))


async def test_a_png_render_equals_the_viewers_render_of_the_same_frame(service, world):
    """The route serves exactly the pixel pipeline's output (PNG is lossless)."""
    from service.demo.synthetic import dataset_bytes
    from viewer import RenderOptions, Window, decode_frame, render_array

    response = await get(
        service, world, paths(world)["rendered"] + "?window=40,80", headers={"Accept": "image/png"}
    )
    served = np.asarray(decoded(await response.read()))
    frame = decode_frame(dataset_bytes(world["study"][1]), 0)
    expected = render_array(frame, RenderOptions(window=Window(40, 80), format="png"))
    assert np.array_equal(served, expected)


async def test_the_window_query_changes_the_pixels(service, world):
    """A narrow brain window and a wide bone window give different images."""
    path = paths(world)["rendered"]
    png = {"Accept": "image/png"}
    narrow = await (await get(service, world, path + "?window=40,80", headers=png)).read()
    wide = await (await get(service, world, path + "?window=400,1800", headers=png)).read()
    assert not np.array_equal(np.asarray(decoded(narrow)), np.asarray(decoded(wide)))


async def test_a_viewport_downsizes_the_render(service, world):
    """viewport=W,H fits the image inside, keeping its aspect."""
    response = await get(service, world, paths(world)["rendered"] + "?viewport=32,48")
    assert decoded(await response.read()).size == (32, 32)


async def test_an_etag_round_trip_answers_304(service, world):
    """Immutable renders: the same query with If-None-Match is 304, another window is not (the
    ETag serves API clients; browsers keep no copy: private, no-store)."""
    path = paths(world)["rendered"] + "?window=40,80&quality=80"
    first = await get(service, world, path)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-store"
    again = await get(service, world, path, headers={"If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag
    other = await get(
        service, world, path.replace("40,80", "40,81"), headers={"If-None-Match": etag}
    )
    assert other.status == 200 and other.headers["ETag"] != etag


@pytest.mark.parametrize(
    "query", ["window=abc", "window=40", "quality=0", "viewport=0,5", "overlays=maybe"]
)
async def test_bad_render_queries_are_400_json(service, world, query):
    """The error middleware's JSON shape, with a code naming the problem."""
    response = await get(service, world, paths(world)["rendered"] + "?" + query)
    assert response.status == 400
    body = await response.json()
    assert body["error"] in ("bad_window", "bad_request") and body["detail"]


async def test_a_frame_out_of_range_is_404(service, world):
    """Single-frame instances have frame 1 only."""
    for route in ("rendered", "values"):
        response = await get(service, world, paths(world, n=2)[route])
        assert response.status == 404, route


async def test_values_are_the_frames_int16_modality_values(service, world):
    """Stored pixels with the CT rescale applied (HU), little-endian int16, rows x columns."""
    response = await get(
        service, world, paths(world)["values"], headers={"Accept-Encoding": "gzip"}
    )
    assert response.status == 200
    assert response.headers["X-Teleread-Dtype"] == "int16"
    assert (response.headers["X-Teleread-Rows"], response.headers["X-Teleread-Columns"]) == (
        str(SIZE),
        str(SIZE),
    )
    assert response.headers["X-Teleread-Photometric"] == "MONOCHROME2"
    body = await response.read()
    assert len(body) == SIZE * SIZE * 2
    ds = world["study"][1]
    expected = apply_modality_lut(ds.pixel_array, ds).astype("<i2")
    assert np.array_equal(np.frombuffer(body, "<i2").reshape(SIZE, SIZE), expected)
    assert expected.min() < 0  # the rescale really was applied (air is -1000 HU)


async def test_values_are_gzipped_for_a_client_that_accepts_gzip(service, world):
    """Gzip (fast level, service/http/compression.py), the same values once inflated."""
    path = paths(world)["values"]
    plain = await get(service, world, path, headers={"Accept-Encoding": "identity"})
    packed = await get(service, world, path, headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert await packed.read() == await plain.read()


async def test_thumbnails_are_small_jpegs(service, world):
    """Study, series and instance thumbnails fit in 128 pixels."""
    for name in ("study thumbnail", "series thumbnail", "instance thumbnail"):
        response = await get(service, world, paths(world)[name])
        image = decoded(await response.read())
        assert image.format == "JPEG" and max(image.size) <= 128, name


async def test_a_colour_image_has_no_values_but_renders_as_png(service, world):
    """RGB instances answer 409 colour_image on values; the page uses the rendered PNG."""
    [ds] = make_study(StudySpec(*EXTRA_PATIENT, "CR", "HAND", rows=32))
    ds.StudyInstanceUID = world["extra study"][0].StudyInstanceUID
    ds.SeriesNumber = 9
    rgb = np.zeros((32, 32, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    ds.set_pixel_data(rgb, "RGB", 8, generate_instance_uid=False)
    await service.c_store([ds], "CLINIC_A")
    values = (
        f"/api/viewer/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/1/values"
    )

    async def known():
        response = await get(service, world, values)
        return response.status != 404 and response

    response = await service.wait_for(known, timeout=30)
    assert response.status == 409
    assert (await response.json())["error"] == "colour_image"
    rendered = values.replace("/api/viewer/", "/dicom-web/").replace("/values", "/rendered")
    png = await get(service, world, rendered, headers={"Accept": "image/png"})
    image = decoded(await png.read())
    assert image.mode == "RGB" and image.getpixel((5, 5)) == (200, 0, 0)


async def test_the_dicom_dictionary_names_every_standard_tag(service, world):
    """The tag browser's names: PS3.6 keywords by tag; cached by ETag; login required."""
    response = await get(service, world, "/api/dicom/dictionary")
    names = await response.json()
    assert names["00080022"] == "AcquisitionDate" and names["7FE00010"] == "PixelData"
    assert len(names) > 4000
    again = await get(
        service, world, "/api/dicom/dictionary", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status == 304
    service.client.session.cookie_jar.clear()
    bogus = {"Authorization": "Bearer not-a-token"}
    assert (await service.client.get("/api/dicom/dictionary", headers=bogus)).status == 401


def with_overlay(world) -> tuple:
    """A 32x32 CT of the extra study with overlay plane 6000 set over rows 4-7, columns 4-27."""
    [ds] = make_study(StudySpec(*EXTRA_PATIENT, "CT", "HEAD", rows=32))
    ds.StudyInstanceUID = world["extra study"][0].StudyInstanceUID
    ds.SeriesNumber = 8
    plane = np.zeros((32, 32), dtype=np.uint8)
    plane[4:8, 4:28] = 1
    ds.add_new(0x60000010, "US", 32)
    ds.add_new(0x60000011, "US", 32)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", pack_bits(plane.ravel()))
    return ds, plane


async def test_overlays_burn_in_on_request_and_have_a_mask_route_the_manifest_announces(
    service, world
):
    """An overlay plane (60xx) shows white only with overlays=true; the ETags differ.

    The manifest marks the instance with overlays and links its overlay route, whose PNG is
    255 exactly on the plane; an image without overlays answers 404 no_overlay (JSON).
    (One test: each overlay instance added to the study is one more with overlays.)"""
    ds, plane = with_overlay(world)
    await service.c_store([ds], "CLINIC_A")
    path = (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/1/rendered?window=100000,1"
    )
    png = {"Accept": "image/png"}

    async def known():
        response = await get(service, world, path, headers=png)
        return response.status == 200 and response

    plain = await service.wait_for(known, timeout=30)
    burnt = await get(service, world, path + "&overlays=true", headers=png)
    assert not np.asarray(decoded(await plain.read())).any()  # all below the window: black
    image = np.asarray(decoded(await burnt.read()))
    assert (image[4:8, 4:28] == 255).all() and image.sum() == 255 * 4 * 24
    assert plain.headers["ETag"] != burnt.headers["ETag"]

    extra_manifest = f"/api/consultations/{world['extra']}/viewer"

    async def listed():
        manifest = await (await get(service, world, extra_manifest)).json()
        found = [
            i for s in manifest["series"] for i in s["instances"] if i["uid"] == ds.SOPInstanceUID
        ]
        return found and (manifest, found[0])

    manifest, entry = await service.wait_for(listed, timeout=30)
    assert entry["overlays"] is True
    others = [i for s in manifest["series"] for i in s["instances"] if i is not entry]
    assert others and not any(i["overlays"] for i in others)
    response = await get(service, world, entry["overlay"], headers={"Accept": "image/png"})
    assert response.status == 200 and response.content_type == "image/png"
    mask = np.asarray(decoded(await response.read()))
    assert mask.shape == (32, 32)
    assert (mask == plane * 255).all()
    missing = await get(service, world, others[0]["overlay"])
    assert missing.status == 404 and (await missing.json())["error"] == "no_overlay"
    stranger = await get(service, world, entry["overlay"], who="other")
    assert stranger.status == 404
