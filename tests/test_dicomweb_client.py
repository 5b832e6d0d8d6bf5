"""A third-party DICOMweb client (dicomweb-client, PyPI) against a real running teleread (real
Orthanc, real SQLite): STOW-RS, QIDO-RS and WADO-RS round trips with every method it offers that
teleread serves, authenticated with a bearer token as any script would be.

The world: a township clinic (CLINIC_A) sent a three-slice head CT and a county hospital
(CLINIC_B) a two-slice knee MR; the regional centre's specialist sees both, each clinic's
radiographer only their own. dicomweb-client is synchronous: it runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from dicomweb_client.api import DICOMwebClient
from requests import HTTPError

from service.app import create_app
from service.demo.synthetic import StudySpec, make_study
from service.http.keys import ORTHANC
from tests.conftest import Service, free_port, start_orthanc, suite_settings

HEAD_CT = StudySpec(
    "P-DW-A",
    "Wang^Fang=王^芳",
    "CT",
    "HEAD",
    instances=3,
    accession_number="ACC-A1",
    study_datetime=datetime(2026, 3, 4, 9, 30),
    rows=64,
)
KNEE_MR = StudySpec(
    "P-DW-B",
    "Zhao^Lei",
    "MR",
    "KNEE",
    instances=2,
    accession_number="ACC-B1",
    study_datetime=datetime(2026, 5, 6, 10, 0),
    rows=64,
)


@dataclass
class World:
    service: Service
    loop: asyncio.AbstractEventLoop
    base: str
    tokens: dict[str, str]
    ct: list[Any]
    mr: list[Any]

    def client(self, username: str) -> DICOMwebClient:
        return DICOMwebClient(
            url=f"{self.base}/dicom-web",
            headers={"Authorization": f"Bearer {self.tokens[username]}"},
        )

    async def call(self, username: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One dicomweb-client call, on a worker thread (it blocks)."""
        client = self.client(username)
        return await asyncio.to_thread(getattr(client, method), *args, **kwargs)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_backend) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp("dicomweb")
    orthanc = await start_orthanc(directory / "orthanc", "TELEREAD")
    # dicomweb-client sends a Host header without the port: the public address is configured,
    # as behind any proxy (TELEREAD_PUBLIC_URL), so bulk data URIs name the right port.
    port = free_port()
    settings = replace(suite_settings(directory, orthanc), public_url=f"http://127.0.0.1:{port}")
    client = TestClient(TestServer(create_app(settings), port=port))
    await client.start_server()
    try:
        service = Service(client, client.app, orthanc)
        centre = await service.add_facility("县域影像中心", "regional", "CENTRE")
        clinic_a = await service.add_facility("青山镇卫生院", "township", "CLINIC_A")
        clinic_b = await service.add_facility("河口县医院", "county", "CLINIC_B")
        await service.add_user("dr_li", "specialist", centre)
        await service.add_user("rad_a", "radiographer", clinic_a)
        await service.add_user("rad_b", "radiographer", clinic_b)
        ct, mr = make_study(HEAD_CT), make_study(KNEE_MR)
        await service.c_store(ct, "CLINIC_A")
        await service.c_store(mr, "CLINIC_B")
        tokens = {}
        for username in ("dr_li", "rad_a", "rad_b"):
            tokens[username] = (await service.login(username))["Authorization"].split()[1]
        headers = {"Authorization": f"Bearer {tokens['dr_li']}"}

        async def both_arrived() -> bool:
            items = (await service.worklist(headers))["items"]
            return len(items) == 2 and all(i["instances"] for i in items)

        await service.wait_for(both_arrived, timeout=30)
        base = str(client.make_url("/")).rstrip("/")
        yield World(service, asyncio.get_running_loop(), base, tokens, ct, mr)
    finally:
        await client.close()
        await orthanc.kill()


def _uids(items: list[dict[str, Any]], tag: str = "0020000D") -> set[str]:
    return {item[tag]["Value"][0] for item in items}


def _uid(datasets: list[Any]) -> str:
    return str(datasets[0].StudyInstanceUID)


async def _audit(world: World, action: str) -> list[dict[str, Any]]:
    """The audit records of one action, newest first, their detail decoded."""

    def read(db: Any) -> list[dict[str, Any]]:
        sql = "SELECT * FROM audit_log WHERE action = ? ORDER BY id DESC"
        return [{**r, "detail": json.loads(r["detail"] or "{}")} for r in db.query(sql, [action])]

    return await world.service.database.read(read)


class TestSearch:
    """QIDO-RS: search_for_studies / series / instances."""

    async def test_a_specialist_finds_every_study_and_a_clinic_only_its_own(self, world):
        everything = await world.call("dr_li", "search_for_studies")
        assert _uids(everything) == {_uid(world.ct), _uid(world.mr)}
        own = await world.call("rad_a", "search_for_studies")
        assert _uids(own) == {_uid(world.ct)}
        assert own[0]["00100020"]["Value"] == ["P-DW-A"]
        assert own[0]["00080061"]["Value"] == ["CT"]
        assert own[0]["00201208"]["Value"] == [3]

    async def test_matching_keys_filter_studies(self, world):
        def found(**filters: Any) -> Any:
            return world.call("dr_li", "search_for_studies", **filters)

        assert _uids(await found(search_filters={"PatientID": "P-DW-B"})) == {_uid(world.mr)}
        fuzzy = await found(search_filters={"PatientName": "wang"}, fuzzymatching=True)
        assert _uids(fuzzy) == {_uid(world.ct)}
        assert await found(search_filters={"PatientName": "wang"}) == []
        [ideographic] = await found(search_filters={"PatientName": "王^芳"})
        assert _uids([ideographic]) == {_uid(world.ct)}
        assert ideographic["00100010"]["Value"] == [
            {"Alphabetic": "Wang^Fang", "Ideographic": "王^芳"}
        ]
        wild = await found(search_filters={"PatientName": "zhao*"})  # PN: case ignored
        assert _uids(wild) == {_uid(world.mr)}
        ranged = await found(search_filters={"StudyDate": "20260401-20260601"})
        assert _uids(ranged) == {_uid(world.mr)}
        assert _uids(await found(search_filters={"00080050": "ACC-A1"})) == {_uid(world.ct)}
        both = await found(search_filters={"ModalitiesInStudy": "MR"})
        assert _uids(both) == {_uid(world.mr)}
        listed = await found(search_filters={"StudyInstanceUID": [_uid(world.ct), "1.2.3"]})
        assert _uids(listed) == {_uid(world.ct)}

    async def test_limit_and_offset_page_after_scoping(self, world):
        first = await world.call("dr_li", "search_for_studies", limit=1)
        second = await world.call("dr_li", "search_for_studies", limit=1, offset=1)
        assert len(first) == len(second) == 1
        assert _uids(first) | _uids(second) == {_uid(world.ct), _uid(world.mr)}
        assert await world.call("rad_a", "search_for_studies", offset=1) == []

    async def test_includefield_adds_attributes(self, world):
        found = await world.call(
            "dr_li",
            "search_for_studies",
            search_filters={"PatientID": "P-DW-A"},
            fields=["InstitutionName", "00180015"],
        )
        assert "00180015" in found[0]
        everything = await world.call(
            "dr_li", "search_for_studies", search_filters={"PatientID": "P-DW-A"}, fields=["all"]
        )
        assert "00080030" in everything[0]

    async def test_series_and_instances_at_every_level(self, world):
        ct = _uid(world.ct)
        series = await world.call("rad_a", "search_for_series", study_instance_uid=ct)
        assert [s["00080060"]["Value"] for s in series] == [["CT"]]
        assert series[0]["00201209"]["Value"] == [3]
        everywhere = await world.call("dr_li", "search_for_series")
        assert {s["00080060"]["Value"][0] for s in everywhere} == {"CT", "MR"}
        mr_only = await world.call("dr_li", "search_for_series", search_filters={"Modality": "MR"})
        assert _uids(mr_only) == {_uid(world.mr)}
        series_uid = str(world.ct[0].SeriesInstanceUID)
        instances = await world.call(
            "rad_a", "search_for_instances", study_instance_uid=ct, series_instance_uid=series_uid
        )
        assert [i["00200013"]["Value"] for i in instances] == [[1], [2], [3]]
        in_study = await world.call("rad_a", "search_for_instances", study_instance_uid=ct)
        assert len(in_study) == 3
        all_instances = await world.call("dr_li", "search_for_instances", limit=4)
        assert len(all_instances) == 4
        rest = await world.call("dr_li", "search_for_instances", offset=4)
        assert len(rest) == 1

    async def test_another_facility_sees_nothing_of_a_study(self, world):
        ct = _uid(world.ct)
        assert (
            await world.call("rad_b", "search_for_studies", search_filters={"PatientID": "P-DW-A"})
            == []
        )
        assert {
            s["00080060"]["Value"][0] for s in await world.call("rad_b", "search_for_series")
        } == {"MR"}
        with pytest.raises(HTTPError) as refused:
            await world.call("rad_b", "search_for_series", study_instance_uid=ct)
        assert refused.value.response.status_code == 404

    async def test_a_bad_key_is_refused_with_its_reason_and_xml_is_not_served(self, world):
        response = await world.service.client.get(
            "/dicom-web/studies",
            params={"NoSuchKeyword": "x"},
            headers={"Authorization": f"Bearer {world.tokens['dr_li']}"},
        )
        assert response.status == 400
        assert "NoSuchKeyword" in (await response.json())["detail"]
        xml = await world.service.client.get(
            "/dicom-web/studies",
            headers={
                "Accept": 'multipart/related; type="application/dicom+xml"',
                "Authorization": f"Bearer {world.tokens['dr_li']}",
            },
        )
        assert xml.status == 406

    async def test_answers_are_exactly_dicom_json_and_audited(self, world):
        response = await world.service.client.get(
            "/dicom-web/studies",
            params={"PatientID": "P-DW-B"},
            headers={"Authorization": f"Bearer {world.tokens['dr_li']}"},
        )
        assert response.headers["Content-Type"] == "application/dicom+json"
        records = await _audit(world, "study.query")
        assert any(r["detail"].get("patients") == ["P-DW-B"] for r in records)


def _frame_bytes(dataset: Any) -> bytes:
    return bytes(dataset.PixelData)


class TestRetrieve:
    """WADO-RS: metadata with bulk data URIs, bulk data, frames and DICOM instances."""

    async def test_metadata_at_every_level_points_bulk_data_at_teleread(self, world):
        ct, series = _uid(world.ct), str(world.ct[0].SeriesInstanceUID)
        sop = str(world.ct[1].SOPInstanceUID)
        study = await world.call("rad_a", "retrieve_study_metadata", ct)
        assert len(study) == 3
        in_series = await world.call("rad_a", "retrieve_series_metadata", ct, series)
        assert len(in_series) == 3
        instance = await world.call("rad_a", "retrieve_instance_metadata", ct, series, sop)
        uri = instance["7FE00010"]["BulkDataURI"]
        assert uri.startswith(f"{world.base}/dicom-web/studies/{ct}/")
        [pixels] = await world.call("rad_a", "retrieve_bulkdata", uri)
        assert pixels == _frame_bytes(world.ct[1])

    async def test_frames_come_uncompressed_and_as_ohif_asks(self, world):
        ds = world.ct[2]
        ids = (_uid(world.ct), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
        [frame] = await world.call("rad_a", "retrieve_instance_frames", *ids, frame_numbers=[1])
        assert frame == _frame_bytes(ds)
        path = "/dicom-web/studies/{}/series/{}/instances/{}/frames/1".format(*ids)
        ohif = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
        response = await world.service.client.get(
            path, headers={"Accept": ohif, "Authorization": f"Bearer {world.tokens['rad_a']}"}
        )
        assert response.status == 200
        assert response.content_type == "multipart/related"
        assert b"transfer-syntax=1.2.840.10008.1.2.1" in await response.read()
        refused = await world.service.client.get(
            path,
            headers={
                "Accept": 'multipart/related; type="image/png"',
                "Authorization": f"Bearer {world.tokens['rad_a']}",
            },
        )
        assert refused.status == 406

    async def test_the_streaming_iterators_read_the_same(self, world):
        """iter_* ask with chunked transfer and decode parts as they arrive."""
        ds = world.ct[1]
        ct, series, sop = _uid(world.ct), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
        client = world.client("rad_a")
        uri = f"{world.base}/dicom-web/studies/{ct}/series/{series}/instances/{sop}/bulk/7fe00010"

        def read_all() -> list[int]:
            return [
                len(list(client.iter_study(ct))),
                len(list(client.iter_series(ct, series))),
                len(list(client.iter_instance_frames(ct, series, sop, frame_numbers=[1]))),
                len(list(client.iter_bulkdata(uri))),
            ]

        assert await asyncio.to_thread(read_all) == [3, 3, 1, 1]

    async def test_instances_series_and_study_are_retrieved_and_audited(self, world):
        ct, series = _uid(world.ct), str(world.ct[0].SeriesInstanceUID)
        before = {r["id"] for r in await _audit(world, "study.retrieved")}
        study = await world.call("rad_a", "retrieve_study", ct)
        assert sorted(d.InstanceNumber for d in study) == [1, 2, 3]
        assert len(await world.call("rad_a", "retrieve_series", ct, series)) == 3
        sop = str(world.ct[0].SOPInstanceUID)
        one = await world.call("rad_a", "retrieve_instance", ct, series, sop)
        assert one.SOPInstanceUID == sop and one.PixelData == world.ct[0].PixelData
        # Committed before the data is sent; other tests of this module may have retrieved too.
        records = [r for r in await _audit(world, "study.retrieved") if r["id"] not in before]
        assert len(records) == 3
        assert {r["patient_id"] for r in records} == {"P-DW-A"}

    async def test_head_answers_headers_only(self, world):
        """No body after a HEAD's headers (and no study read from Orthanc for it)."""
        response = await world.service.client.head(
            f"/dicom-web/studies/{_uid(world.ct)}",
            headers={"Authorization": f"Bearer {world.tokens['rad_a']}"},
        )
        assert response.status == 200
        assert response.headers["Content-Type"].startswith(
            'multipart/related; type="application/dicom"'
        )
        assert await response.read() == b""
        ds = world.ct[0]
        frames = await world.service.client.head(
            f"/dicom-web/studies/{_uid(world.ct)}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/frames/1",
            headers={"Authorization": f"Bearer {world.tokens['rad_a']}"},
        )
        assert frames.status == 200 and await frames.read() == b""

    async def test_an_instance_is_transcoded_to_the_syntax_asked_for(self, world):
        ds = world.ct[0]
        jpeg_ls = "1.2.840.10008.1.2.4.80"
        one = await world.call(
            "rad_a",
            "retrieve_instance",
            _uid(world.ct),
            str(ds.SeriesInstanceUID),
            str(ds.SOPInstanceUID),
            media_types=(("application/dicom", jpeg_ls),),
        )
        assert one.file_meta.TransferSyntaxUID == jpeg_ls
        assert one.SOPInstanceUID == ds.SOPInstanceUID
        assert (one.pixel_array == ds.pixel_array).all()

    async def test_rendered_images_at_instance_frame_and_series_level(self, world):
        ds = world.ct[0]
        ct, series, sop = _uid(world.ct), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
        jpeg = await world.call("rad_a", "retrieve_instance_rendered", ct, series, sop)
        assert jpeg[:2] == b"\xff\xd8"
        png = await world.call(
            "rad_a",
            "retrieve_instance_frames_rendered",
            ct,
            series,
            sop,
            frame_numbers=[1],
            media_types=("image/png",),
        )
        assert png[:4] == b"\x89PNG"
        series_image = await world.call("rad_a", "retrieve_series_rendered", ct, series)
        assert series_image[:2] == b"\xff\xd8"

    async def test_another_facility_reaches_nothing_at_any_level(self, world):
        ds = world.ct[0]
        ct, series, sop = _uid(world.ct), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
        for method, args, kwargs in (
            ("retrieve_study", (ct,), {}),
            ("retrieve_series", (ct, series), {}),
            ("retrieve_instance", (ct, series, sop), {}),
            ("retrieve_study_metadata", (ct,), {}),
            ("retrieve_series_metadata", (ct, series), {}),
            ("retrieve_instance_metadata", (ct, series, sop), {}),
            ("retrieve_instance_frames", (ct, series, sop), {"frame_numbers": [1]}),
            ("retrieve_instance_rendered", (ct, series, sop), {}),
            ("retrieve_series_rendered", (ct, series), {}),
            ("search_for_instances", (), {"study_instance_uid": ct}),
        ):
            with pytest.raises(HTTPError) as refused:
                await world.call("rad_b", method, *args, **kwargs)
            assert refused.value.response.status_code == 404, method
        bulk = f"{world.base}/dicom-web/studies/{ct}/series/{series}/instances/{sop}/bulk/7fe00010"
        with pytest.raises(HTTPError):
            await world.call("rad_b", "retrieve_bulkdata", bulk)


class TestStore:
    """STOW-RS with store_instances, and frames of a JPEG-LS instance it stored.

    dicomweb-client writes each data set with ``pydicom.dcmwrite`` as it is: one made in memory
    (as here) has no preamble, so the part begins with its File Meta Information group."""

    async def test_store_answers_per_ps3_18_and_the_study_becomes_searchable(self, world):
        from pydicom.uid import JPEGLSLossless

        [ds] = make_study(StudySpec("P-DW-C", "Li^Na", "CT", "CHEST", rows=64))
        original = ds.pixel_array.copy()
        ds.compress(JPEGLSLossless)
        assert getattr(ds, "preamble", None) is None
        answer = await world.call("rad_a", "store_instances", [ds])
        [stored] = answer.ReferencedSOPSequence
        assert stored.ReferencedSOPInstanceUID == ds.SOPInstanceUID
        assert stored.ReferencedSOPClassUID == ds.SOPClassUID
        assert answer.RetrieveURL.endswith(f"/dicom-web/studies/{ds.StudyInstanceUID}")

        async def found() -> Any:
            return await world.call(
                "rad_a", "search_for_studies", search_filters={"PatientID": "P-DW-C"}
            )

        await world.service.wait_for(found, timeout=30)
        ids = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
        jls = await world.call(
            "rad_a",
            "retrieve_instance_frames",
            *ids,
            frame_numbers=[1],
            media_types=(("image/jls", JPEGLSLossless),),
        )
        assert jls[0][:2] == b"\xff\xd8"  # a JPEG-LS codestream, as stored
        [native] = await world.call(
            "rad_a",
            "retrieve_instance_frames",
            *ids,
            frame_numbers=[1],
            media_types=("application/octet-stream",),
        )
        assert native == original.astype(original.dtype.newbyteorder("<")).tobytes()
        [instance] = await world.call("rad_a", "retrieve_study", ids[0])
        assert instance.SOPInstanceUID == ds.SOPInstanceUID
        orthanc = world.service.app[ORTHANC]
        [hit] = await orthanc.request("POST", "/tools/lookup", data=ids[2])
        archived = await orthanc.get(f"/instances/{hit['ID']}/file")
        assert archived[:132] == b"\0" * 128 + b"DICM"  # a Part 10 file (PS3.10 7.1)

    async def test_a_partly_refused_store_answers_202_naming_what_failed(self, world):
        [new] = make_study(StudySpec("P-DW-D", "Sun^Yi", "CR", "CHEST", rows=64))
        foreign = world.mr[0].copy()
        answer = await world.call("rad_a", "store_instances", [new, foreign])
        assert [i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence] == [
            new.SOPInstanceUID
        ]
        [failed] = answer.FailedSOPSequence
        assert failed.ReferencedSOPInstanceUID == foreign.SOPInstanceUID
        assert failed.ReferencedSOPClassUID == foreign.SOPClassUID
        assert failed.FailureReason == 0x0110

    async def test_storing_into_another_facilitys_study_is_refused_with_409(self, world):
        ds = world.ct[0].copy()
        with pytest.raises(HTTPError) as refused:
            await world.call("rad_b", "store_instances", [ds])
        answer = refused.value.response
        assert answer.status_code == 409
        assert answer.headers["Content-Type"] == "application/dicom+json"
        [failed] = answer.json()["00081198"]["Value"]
        assert failed["00081155"]["Value"] == [ds.SOPInstanceUID]
        assert failed["00081197"]["Value"] == [0x0110]  # processing failure
        assert "another facility" in failed["00000902"]["Value"][0]


class TestWadoUri:
    """WADO-URI (PS3.18 9), read back with dcmtk's dcmdump and Pillow."""

    def _params(self, world: World, **extra: str) -> dict[str, str]:
        ds = world.ct[1]
        return {
            "requestType": "WADO",
            "studyUID": str(ds.StudyInstanceUID),
            "seriesUID": str(ds.SeriesInstanceUID),
            "objectUID": str(ds.SOPInstanceUID),
            **extra,
        }

    async def _get(self, world: World, username: str, **extra: str) -> Any:
        return await world.service.client.get(
            "/wado",
            params=self._params(world, **extra),
            headers={"Authorization": f"Bearer {world.tokens[username]}"},
        )

    async def test_a_file_in_the_syntax_asked_for_that_dcmtk_reads(self, world, tmp_path):
        jpeg_ls = "1.2.840.10008.1.2.4.80"
        response = await self._get(
            world, "rad_a", contentType="application/dicom", transferSyntax=jpeg_ls
        )
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/dicom"
        path = tmp_path / "object.dcm"
        path.write_bytes(await response.read())
        dump = await asyncio.create_subprocess_exec(
            "dcmdump", "-M", "+P", "0002,0010", "+P", "0008,0018", str(path),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await dump.communicate()
        assert dump.returncode == 0
        assert "=JPEGLSLossless" in out.decode()  # dcmtk names 1.2.840.10008.1.2.4.80
        assert str(world.ct[1].SOPInstanceUID) in out.decode()

    async def test_a_rendered_image_with_window_and_size(self, world):
        from io import BytesIO

        from PIL import Image

        response = await self._get(
            world, "rad_a", contentType="image/png", windowCenter="40", windowWidth="400",
            rows="32", columns="32",
        )  # fmt: skip
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        image = Image.open(BytesIO(await response.read()))
        assert max(image.size) == 32
        jpeg = await self._get(world, "rad_a")
        assert jpeg.headers["Content-Type"] == "image/jpeg"

    async def test_another_facility_gets_404_and_bad_requests_get_400(self, world):
        assert (await self._get(world, "rad_b", contentType="application/dicom")).status == 404
        assert (await self._get(world, "rad_a", requestType="WADO-RS")).status == 400
        assert (await self._get(world, "rad_a", contentType="text/html")).status == 406
