"""The DICOM port takes images, it does not give them: dcmtk's own clients against the Orthanc the
service starts.

A clinic's AE title, however it was registered (the administrator's API or ``teleread facility
add`` while the service runs), may C-ECHO and C-STORE; C-FIND, C-GET and C-MOVE are refused to it
and to AE titles nobody registered, and an association must call Orthanc's own AE title.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.auth.passwords import hash_password
from service.demo.synthetic import StudySpec, make_study, write_study
from service.http.keys import DATABASE, ORTHANC
from service.intake.modalities import sync_facilities
from service.settings import Settings
from service.storage import facilities as facility_store
from service.storage import users as user_store

from . import backends
from .conftest import CHANGES_POLL_SECONDS, PASSWORD, free_port

TELEREAD = str(Path(sys.executable).with_name("teleread"))
OWN_AET = "TELEREAD"
OWNER = "DONGXIANG_DR"  # sent the study everyone else tries to get at
API_CLINIC = "XIPING_CT"  # registered through the administrator's API
CLI_CLINIC = "BEISHAN_DR"  # registered with `teleread facility add` while the service runs
UNKNOWN = "NOBODY_KNOWS"


@dataclass
class Run:
    returncode: int
    output: str


@dataclass
class Port:
    """The running service, its Orthanc's DICOM port and the study stored by the owner."""

    client: TestClient
    dicom_port: int
    study_uid: str
    patient_id: str
    listeners: dict[str, int]  # AE title -> port its C-MOVE destination listens on

    async def dcmtk(self, tool: str, *args: str, files: list[Path] | None = None) -> Run:
        """Run a dcmtk client against the DICOM port, sending ``files`` if given."""
        process = await asyncio.create_subprocess_exec(
            tool,
            *args,
            "127.0.0.1",
            str(self.dicom_port),
            *map(str, files or []),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        return Run(process.returncode or 0, output.decode(errors="replace"))

    def study_keys(self) -> list[str]:
        return ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={self.study_uid}"]


async def _add_facility_by_api(client: TestClient, headers: dict[str, str], **body) -> None:
    response = await client.post("/api/admin/facilities", headers=headers, json=body)
    assert response.status == 201, await response.text()
    assert (await response.json())["registered"] is True


async def _add_facility_by_cli(settings: Settings, aet: str, move_port: int) -> None:
    env = {
        **os.environ,
        "TELEREAD_DATA_DIR": str(settings.data_dir),
        "TELEREAD_ORTHANC_HTTP_PORT": str(settings.orthanc_http_port),
        "TELEREAD_ORTHANC_DICOM_PORT": str(settings.orthanc_dicom_port),
    }
    process = await asyncio.create_subprocess_exec(
        TELEREAD,
        *("facility", "add", "--name", "Beishan", "--kind", "township", "--aet", aet),
        *("--dicom-host", "127.0.0.1", "--dicom-port", str(move_port)),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert f"registered AE title {aet} with Orthanc" in err.decode()


@pytest.fixture(scope="module")
async def port(
    tmp_path_factory: pytest.TempPathFactory, database_backend: str
) -> AsyncIterator[Port]:
    """The service with its managed Orthanc, on the module's engine; an owner clinic has stored
    a study by C-STORE."""
    directory = tmp_path_factory.mktemp("dicom_port")
    on_postgresql = database_backend == "postgresql"
    settings = Settings(
        data_dir=directory / "var",
        database_url=backends.new_database_url(directory) if on_postgresql else None,
        orthanc_http_port=free_port(),
        orthanc_dicom_port=free_port(),
        orthanc_aet=OWN_AET,
        stable_age=1,
        changes_poll_interval=CHANGES_POLL_SECONDS,
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        database = client.app[DATABASE]
        centre = await database.write(
            facility_store.add_facility,
            name="Centre",
            kind="regional",
            aet="CENTRE",
            timezone="UTC",
        )
        await database.write(
            user_store.add_user,
            username="admin",
            password_hash=hash_password(PASSWORD),
            role="admin",
            facility_id=centre,
        )
        login = await client.post("/api/login", json={"username": "admin", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
        listeners = {API_CLINIC: free_port(), CLI_CLINIC: free_port()}
        await _add_facility_by_api(client, headers, name="Dongxiang", kind="township", aet=OWNER)
        await _add_facility_by_api(
            client,
            headers,
            name="Xiping",
            kind="county",
            aet=API_CLINIC,
            dicom_host="127.0.0.1",
            dicom_port=listeners[API_CLINIC],
        )
        await _add_facility_by_cli(settings, CLI_CLINIC, listeners[CLI_CLINIC])
        datasets = make_study(StudySpec("DX0001", "WANG^FANG", "CT", "HEAD", instances=2, rows=64))
        port = Port(
            client,
            settings.orthanc_dicom_port,
            str(datasets[0].StudyInstanceUID),
            "DX0001",
            listeners,
        )
        files = write_study(datasets, directory / "owner")
        sent = await port.dcmtk("storescu", "-aet", OWNER, "-aec", OWN_AET, files=files)
        assert sent.returncode == 0, sent.output
        yield port
    finally:
        await client.close()


def _received(directory: Path) -> list[str]:
    """Files a dcmtk client wrote (responses extracted, instances retrieved)."""
    return sorted(path.name for path in directory.iterdir())


CLINICS = pytest.mark.parametrize("aet", [API_CLINIC, CLI_CLINIC])


@CLINICS
async def test_a_clinic_may_echo(port: Port, aet: str) -> None:
    """C-ECHO from a registered clinic: the connectivity check every modality runs."""
    run = await port.dcmtk("echoscu", "-aet", aet, "-aec", OWN_AET)
    assert run.returncode == 0, run.output


@CLINICS
async def test_a_clinic_may_store(port: Port, aet: str, tmp_path: Path) -> None:
    """C-STORE from a registered clinic is stored (Orthanc answers success)."""
    files = write_study(make_study(StudySpec("ST1", "LI^NA", "CR", "CHEST", rows=64)), tmp_path)
    run = await _store(port, aet, files)
    assert run.returncode == 0, run.output
    assert "Received Store Response (Success)" in run.output, run.output


async def _store(port: Port, aet: str, files: list[Path]) -> Run:
    return await port.dcmtk("storescu", "-v", "-aet", aet, "-aec", OWN_AET, files=files)


@pytest.mark.parametrize("aet", [API_CLINIC, CLI_CLINIC, UNKNOWN])
async def test_nobody_lists_studies_with_c_find(port: Port, aet: str, tmp_path: Path) -> None:
    """Study-root C-FIND for every study: no answer is extracted and no UID leaks."""
    run = await port.dcmtk(
        "findscu",
        "-S",
        *("-aet", aet, "-aec", OWN_AET, "-X", "-od", str(tmp_path)),
        *("-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "PatientID"),
    )
    assert _received(tmp_path) == [], run.output
    assert port.study_uid not in run.output and port.patient_id not in run.output
    assert "Find Failed" in run.output, run.output


@pytest.mark.parametrize("aet", [API_CLINIC, CLI_CLINIC, UNKNOWN])
async def test_nobody_retrieves_with_c_get(port: Port, aet: str, tmp_path: Path) -> None:
    """C-GET of the owner's study by its UID retrieves no instance."""
    run = await port.dcmtk(
        "getscu", "-S", "-aet", aet, "-aec", OWN_AET, "-od", str(tmp_path), *port.study_keys()
    )
    assert _received(tmp_path) == [], run.output
    assert "Peer aborted Association" in run.output, run.output


@pytest.mark.parametrize("aet", [API_CLINIC, CLI_CLINIC, UNKNOWN])
async def test_nobody_moves_studies_with_c_move(port: Port, aet: str, tmp_path: Path) -> None:
    """C-MOVE of the owner's study to the caller's own registered node is refused: nothing
    arrives at the listening destination."""
    destination = aet if aet in port.listeners else API_CLINIC
    run = await port.dcmtk(
        "movescu",
        "-S",
        *("-aet", aet, "-aec", OWN_AET, "-aem", destination),
        *("--port", str(port.listeners[destination]), "-od", str(tmp_path)),
        *port.study_keys(),
    )
    assert _received(tmp_path) == [], run.output
    assert "Move Request Failed" in run.output, run.output


@pytest.mark.parametrize("tool", ["echoscu", "storescu"])
async def test_an_association_calling_another_ae_title_is_refused(
    port: Port, tool: str, tmp_path: Path
) -> None:
    """A registered clinic calling the wrong AE title is turned away (Called AE not recognised)."""
    files = write_study(make_study(StudySpec("W1", "ZHAO^LEI", "CR", "CHEST", rows=64)), tmp_path)
    sent = files if tool == "storescu" else None
    run = await port.dcmtk(tool, "-aet", API_CLINIC, "-aec", "ORTHANC", files=sent)
    assert run.returncode != 0, run.output
    assert "Association Rejected" in run.output, run.output


async def test_an_unknown_ae_may_still_send_for_the_quarantine(port: Port, tmp_path: Path) -> None:
    """C-STORE from an AE title no facility has is kept (ingest quarantines it with the reason
    "unknown AE title"), so a clinic not registered yet loses nothing."""
    files = write_study(make_study(StudySpec("U1", "SUN^LI", "CR", "CHEST", rows=64)), tmp_path)
    run = await _store(port, UNKNOWN, files)
    assert "Received Store Response (Success)" in run.output, run.output


async def test_start_up_takes_query_rights_from_a_modality_that_is_no_facility(
    port: Port, tmp_path: Path
) -> None:
    """A modality left in Orthanc with its default rights (all allowed), e.g. by an older
    teleread, can list studies until the start-up sync leaves it echo and store only."""
    orthanc = port.client.app[ORTHANC]
    stray = "STRAY_WS"
    await orthanc.request(
        "PUT", f"/modalities/{stray}", json={"AET": stray, "Host": "127.0.0.1", "Port": 104}
    )
    query = ["-S", "-aet", stray, "-aec", OWN_AET, *port.study_keys()]
    before = await port.dcmtk("findscu", "-v", *query)
    assert port.study_uid in before.output  # the hole this test is about
    await sync_facilities(orthanc, port.client.app[DATABASE])
    after = await port.dcmtk("findscu", "-v", *query)
    assert "Find Failed" in after.output and "Find Response" not in after.output, after.output
    assert (await port.dcmtk("echoscu", "-aet", stray, "-aec", OWN_AET)).returncode == 0
