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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from dicomweb_client.api import DICOMwebClient
from requests import HTTPError

from service.app import create_app
from service.demo.synthetic import StudySpec, make_study
from tests.conftest import Service, start_from, start_orthanc, suite_settings

HEAD_CT = StudySpec(
    "P-DW-A",
    "Wang^Fang",
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
async def world(
    tmp_path_factory: pytest.TempPathFactory, migrated_database
) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp("dicomweb")
    orthanc = await start_orthanc(directory / "orthanc", "TELEREAD")
    settings = suite_settings(directory, orthanc)
    start_from(migrated_database, settings)
    client = TestClient(TestServer(create_app(settings)))
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
        wild = await found(search_filters={"PatientName": "Zhao*"})
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

    async def test_a_bad_key_is_refused_with_its_reason(self, world):
        response = await world.service.client.get(
            "/dicom-web/studies",
            params={"NoSuchKeyword": "x"},
            headers={"Authorization": f"Bearer {world.tokens['dr_li']}"},
        )
        assert response.status == 400
        assert "NoSuchKeyword" in (await response.json())["detail"]

    async def test_answers_are_exactly_dicom_json_and_audited(self, world):
        response = await world.service.client.get(
            "/dicom-web/studies",
            params={"PatientID": "P-DW-B"},
            headers={"Authorization": f"Bearer {world.tokens['dr_li']}"},
        )
        assert response.headers["Content-Type"] == "application/dicom+json"
        records = await _audit(world, "study.query")
        assert any(r["detail"].get("patients") == ["P-DW-B"] for r in records)
