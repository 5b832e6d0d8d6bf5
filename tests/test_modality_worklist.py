"""The modality worklist: dcmtk's ``findscu -W`` against the DICOM port of the Orthanc the service
starts, with the item files the service writes; then ``storescu`` with the accession number.

Facility A's modalities use GB 18030, facility B's UTF-8. A request filed through the API with a
modality and no images yet is a Scheduled Procedure Step for its facility's AE title only; an AE
title no facility has is refused; the study sent with the item's accession number completes the
same consultation and the item goes; so does a cancelled request's.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pydicom
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.auth.passwords import hash_password
from service.demo.synthetic import StudySpec, make_study, write_study
from service.http.keys import DATABASE, EFFECTS, ORTHANC
from service.intake.cancellation import cancel_request
from service.intake.modalities import sync_facilities
from service.mwl.folder import reconcile
from service.mwl.items import UnfitItem, file_bytes, item_of
from service.mwl.publisher import publishing
from service.settings import Settings
from service.storage import Database
from service.storage import facilities as facility_store
from service.storage import users as user_store
from service.worklist.live import LiveUpdates, WorklistChange
from service.worklist.live_feed import publish_changes

from .conftest import CHANGES_POLL_SECONDS, PASSWORD, free_port

OWN_AET = "TELEREAD"
A_AET = "TOWN_A_CT"  # GB 18030 modalities
B_AET = "TOWN_B_DR"  # UTF-8 modalities
UNKNOWN = "NOBODY_KNOWS"
A_ACCESSION = "A24001"
B_ACCESSION = "B24001"
B_STUDY_UID = "1.2.826.0.1.3680043.8.498.424242"


@dataclass
class World:
    """The running service, its DICOM port and worklist folder, and the two requests."""

    client: TestClient
    settings: Settings
    a_request: int
    b_request: int
    last_output: str = ""

    @property
    def folder(self) -> Path:
        assert self.settings.worklist_files_dir is not None
        return self.settings.worklist_files_dir

    async def dcmtk(self, tool: str, *args: str, files: Sequence[Path] = ()) -> tuple[int, str]:
        """Run a dcmtk client against the DICOM port (sending ``files`` if given)."""
        process = await asyncio.create_subprocess_exec(
            tool,
            *args,
            "127.0.0.1",
            str(self.settings.orthanc_dicom_port),
            *map(str, files),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, output.decode(errors="replace")

    async def find_worklist(self, aet: str, into: Path, *keys: str) -> list[pydicom.Dataset]:
        """``findscu -W`` as ``aet`` asking for the usual return keys; the answers, parsed."""
        _make_dir(into)
        asked = [
            *("SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate"),
            *("PatientSex", "AccessionNumber", "ReferringPhysicianName", "StudyInstanceUID"),
            *("RequestedProcedureDescription", "RequestedProcedureID"),
            *(f"ScheduledProcedureStepSequence[0].{k}" for k in STEP_KEYS),
            *keys,
        ]
        code, output = await self.dcmtk(
            "findscu",
            *("-W", "-aet", aet, "-aec", OWN_AET, "-X", "-od", str(into)),
            *(arg for key in asked for arg in ("-k", key)),
        )
        self.last_output = output
        return _answers(into)

    async def wait_for(self, condition, timeout: float = 15.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
            await asyncio.sleep(0.05)

    def item_files(self) -> set[str]:
        return {path.name for path in self.folder.glob("*.wl")}


def _make_dir(path: Path) -> None:
    path.mkdir()


def _answers(directory: Path) -> list[pydicom.Dataset]:
    """The C-FIND answers findscu extracted (``-X``)."""
    return [pydicom.dcmread(path) for path in sorted(directory.glob("rsp*.dcm"))]


STEP_KEYS = (
    "Modality",
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepID",
)


async def _requester(client: TestClient, username: str) -> dict[str, str]:
    login = await client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert login.status == 200, await login.text()
    return {"Authorization": f"Bearer {(await login.json())['token']}"}


async def _file(client: TestClient, headers: dict[str, str], **body: object) -> int:
    response = await client.post("/api/consultations", headers=headers, json=body)
    assert response.status == 201, await response.text()
    return int((await response.json())["id"])


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """The service with its managed Orthanc; A and B each filed one request (no image yet)."""
    directory = tmp_path_factory.mktemp("mwl")
    settings = Settings(
        data_dir=directory / "var",
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
        ids = {}
        for key, aet, charset in (("a", A_AET, "GB18030"), ("b", B_AET, "ISO_IR 192")):
            ids[key] = await database.write(
                facility_store.add_facility,
                name=f"Town {key.upper()}",
                kind="township",
                aet=aet,
                timezone="Asia/Shanghai",
                character_set=charset,
            )
            await database.write(
                user_store.add_user,
                username=f"clinician.{key}",
                password_hash=hash_password(PASSWORD),
                role="clinician",
                facility_id=ids[key],
                display_name=f"Dr {key.upper()}",
                dicom_name="Zhao^Lei=赵^磊" if key == "a" else "",
            )
        await sync_facilities(client.app[ORTHANC], database)
        a_request = await _file(
            client,
            await _requester(client, "clinician.a"),
            accession_number=A_ACCESSION,
            patient_id="PA-1",
            patient_name="王^芳",
            patient_birth_date="19580312",
            patient_sex="F",
            modality="ct",
            body_part="head",
            requested_procedure="头颅 CT 平扫",
            priority="urgent",
        )
        b_request = await _file(
            client,
            await _requester(client, "clinician.b"),
            accession_number=B_ACCESSION,
            study_instance_uid=B_STUDY_UID,
            patient_id="PB-1",
            patient_name="李^秀英",
            modality="DX",
            body_part="CHEST",
        )
        await _file(  # no modality: nothing to schedule at a modality
            client, await _requester(client, "clinician.b"), accession_number="B24002"
        )
        world = World(client, settings, a_request, b_request)
        await world.wait_for(lambda: len(world.item_files()) == 2)
        yield world
    finally:
        await client.close()


async def test_each_facility_sees_its_own_items_and_strangers_are_refused(
    world: World, tmp_path: Path
) -> None:
    """A's modality gets A's item with the right tags (the GB 18030 name decodes right), B's
    gets B's with the Study UID its request named, B asking for A's AE title gets nothing, and
    an AE title no facility has is refused. The files are private DICOM Part-10 files."""
    a_file = world.folder / f"{world.a_request}.wl"
    assert stat.S_IMODE(a_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(world.folder.stat().st_mode) == 0o700
    stored = pydicom.dcmread(a_file)
    assert stored.SpecificCharacterSet == "GB18030"
    assert "王^芳".encode("gb18030") in a_file.read_bytes()

    (a_item,) = await world.find_worklist(A_AET, tmp_path / "a")
    assert str(a_item.PatientName) == "王^芳"  # Orthanc answers in UTF-8 (ANSWER_ENCODING)
    assert (a_item.PatientID, a_item.PatientBirthDate, a_item.PatientSex) == (
        "PA-1",
        "19580312",
        "F",
    )
    assert a_item.AccessionNumber == A_ACCESSION
    assert a_item.RequestedProcedureDescription == "头颅 CT 平扫"
    assert a_item.RequestedProcedureID == f"TR{world.a_request}"
    assert str(a_item.ReferringPhysicianName) == "Zhao^Lei=赵^磊"
    assert not a_item.get("StudyInstanceUID")
    step = a_item.ScheduledProcedureStepSequence[0]
    assert (step.Modality, step.ScheduledStationAETitle) == ("CT", A_AET)
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    assert step.ScheduledProcedureStepStartDate == today.strftime("%Y%m%d")

    (b_item,) = await world.find_worklist(B_AET, tmp_path / "b")
    assert (b_item.AccessionNumber, b_item.StudyInstanceUID) == (B_ACCESSION, B_STUDY_UID)
    assert str(b_item.PatientName) == "李^秀英"
    assert b_item.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == B_AET

    asked_for_a = f"ScheduledProcedureStepSequence[0].ScheduledStationAETitle={A_AET}"
    assert await world.find_worklist(B_AET, tmp_path / "b_as_a", "-k", asked_for_a) == []
    assert await world.find_worklist(UNKNOWN, tmp_path / "unknown") == []
    assert "Peer aborted Association" in world.last_output, world.last_output


async def test_a_study_with_the_accession_number_completes_the_request_and_leaves(
    world: World, tmp_path: Path
) -> None:
    """A's modality sends the study it acquired from the item (its accession number, a Study
    UID of its own): it lands on the same consultation, no new one, and the item goes."""
    spec = StudySpec("PA-1", "王^芳", "CT", "HEAD", accession_number=A_ACCESSION, rows=64)
    files = write_study(make_study(spec), tmp_path / "study")
    code, output = await world.dcmtk("storescu", "-aet", A_AET, "-aec", OWN_AET, files=files)
    assert code == 0, output
    await world.wait_for(lambda: f"{world.a_request}.wl" not in world.item_files())
    database = world.client.app[DATABASE]
    rows = await database.read(
        lambda db: [
            dict(r)
            for r in db.execute(
                "SELECT id, status, received_at FROM consultations WHERE accession_number = ?",
                [A_ACCESSION],
            )
        ]
    )
    assert [(r["id"], r["status"]) for r in rows] == [(world.a_request, "ready")]
    assert await world.find_worklist(A_AET, tmp_path / "after") == []


async def test_a_cancelled_request_leaves_the_worklist(world: World, tmp_path: Path) -> None:
    """Cancelling B's request (as an HIS cancel does, with its live change) removes its item."""
    database = world.client.app[DATABASE]
    await database.write(
        cancel_request,
        world.b_request,
        user_id=None,
        reason="order cancelled",
        now=datetime.now(UTC),
        via="hl7",
    )
    await publish_changes(database, world.client.app[EFFECTS], [world.b_request])
    await world.wait_for(lambda: f"{world.b_request}.wl" not in world.item_files())
    assert await world.find_worklist(B_AET, tmp_path / "b") == []


async def test_a_publisher_that_stopped_no_longer_watches_the_live_changes(tmp_path: Path) -> None:
    """A replica that stops leading and leads again starts a second publisher: the first
    stops watching the live changes when it stops, so a change wakes only the running one."""
    live, database = LiveUpdates(), Database(tmp_path / "teleread.db", checkpoints=False)
    change = WorklistChange(kind="new", consultation_id=1, facility_id=1)
    try:
        async with publishing(database, tmp_path / "items", live, interval=60) as first:
            pass
        async with publishing(database, tmp_path / "items", live, interval=60) as second:
            first.wake.clear()
            second.wake.clear()
            live.deliver(change)
            assert second.wake.is_set()
            assert not first.wake.is_set()
        second.wake.clear()
        live.deliver(change)
        assert not second.wake.is_set()
    finally:
        database.close()


def test_the_folder_is_made_equal_to_what_is_wanted(tmp_path: Path) -> None:
    """Changed files are replaced, equal ones left alone, stale items and a crashed write's
    temporary file removed, anything else kept."""
    folder = tmp_path / "worklists"
    first = reconcile(folder, {"1.wl": b"one", "2.wl": b"two"})
    assert sorted(first.written) == ["1.wl", "2.wl"] and not first.removed
    (folder / ".tmp-crashed").write_bytes(b"half")
    (folder / "README").write_text("not an item")
    second = reconcile(folder, {"1.wl": b"one", "3.wl": b"three"})
    assert (second.written, second.removed) == (["3.wl"], ["2.wl"])
    assert sorted(p.name for p in folder.iterdir()) == ["1.wl", "3.wl", "README"]
    assert stat.S_IMODE((folder / "3.wl").stat().st_mode) == 0o600
    assert not reconcile(folder, {"1.wl": b"one", "3.wl": b"three"})


def test_an_item_is_scheduled_today_and_needs_a_way_back() -> None:
    """A request still waiting from an earlier day is scheduled from today's local midnight
    (modalities often ask for today's steps); one filed today at its filing time. The same item
    gives the same bytes. A request with neither accession number nor Study UID, or with an
    accession number longer than DICOM allows, is no item."""
    now = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    row = {
        "id": 7,
        "facility_aet": A_AET,
        "facility_timezone": "Asia/Shanghai",
        "character_set": "GB18030",
        "modality": "dx",
        "body_part": "CHEST",
        "accession_number": "A7",
        "requested_at": "2026-11-30T08:00:00+00:00",
    }
    earlier = item_of(row, now)
    assert earlier.scheduled_at.isoformat() == "2026-12-03T00:00:00+08:00"
    assert (earlier.modality, earlier.procedure) == ("DX", "DX CHEST")
    today = item_of(row | {"requested_at": "2026-12-03T01:10:00+00:00"}, now)
    assert today.scheduled_at.isoformat() == "2026-12-03T09:10:00+08:00"
    assert file_bytes(earlier) == file_bytes(item_of(row, now)) != file_bytes(today)
    for unfit in ({"accession_number": ""}, {"accession_number": "A" * 17}):
        with pytest.raises(UnfitItem):
            item_of(row | unfit, now)
