"""Ingest from Orthanc's change feed, end to end against a real Orthanc (StableAge 1 s), no mocks.

Studies arrive by C-STORE (or by REST, for objects the service stores itself); Orthanc announces
them on ``/changes`` about StableAge later; the follower turns them into consultations in SQLite.
These tests pin down what ingest must guarantee: who gets credited, what is quarantined, that
replays and resends duplicate nothing, and that crashes and outages of either side lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from service.app import create_app
from service.clock import from_iso
from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.dicom.send import send_datasets
from service.http.keys import DATABASE, FOLLOWER, ORTHANC
from service.intake.intake import IngestOutcome
from service.runtime.orthanc.client import OrthancClient
from service.runtime.orthanc.process import ManagedOrthanc
from service.settings import Settings
from service.storage import Database
from service.storage import facilities as facility_store
from service.storage import ingest as ingest_store
from service.storage.opening import open_database

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
STABLE_AGE = 1.0
# Orthanc emits StableStudy about StableAge + 0.5-1 s after the last instance (measured).
STABLE_STUDY_DELAY = STABLE_AGE + 1.0


# --- data -----------------------------------------------------------------------------------


def a_study(patient_id: str = "P1", instances: int = 2, **spec: Any) -> list[Dataset]:
    """A small synthetic CR study (64x64 pixels keep C-STORE fast)."""
    return make_study(
        StudySpec(patient_id, "WANG^FANG", "CR", "CHEST", instances=instances, rows=64, **spec)
    )


def another_instance(study: list[Dataset]) -> Dataset:
    """A new instance (new SOP Instance UID) in the same series as the study's last one."""
    extra = copy.deepcopy(study[-1])
    extra.SOPInstanceUID = generate_uid()
    extra.file_meta.MediaStorageSOPInstanceUID = extra.SOPInstanceUID
    extra.InstanceNumber = len(study) + 1
    return extra


def basic_text_sr(image: Dataset, text: str) -> Dataset:
    """A Basic Text SR report into the image's study, as the service will store one."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = image.SpecificCharacterSet
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    for keyword in (
        "PatientID",
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "ReferringPhysicianName",
    ):
        setattr(ds, keyword, getattr(image, keyword))
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 900
    ds.InstanceNumber = 1
    ds.Manufacturer = "teleread"
    ds.ContentDate = image.StudyDate
    ds.ContentTime = image.StudyTime
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", "Diagnostic imaging report")]
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    finding = Dataset()
    finding.RelationshipType = "CONTAINS"
    finding.ValueType = "TEXT"
    finding.ConceptNameCodeSequence = [_code("121071", "DCM", "Finding")]
    finding.TextValue = text
    ds.ContentSequence = [finding]
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


# --- SQL read in the app's database (functions run on its reader threads) -------------------


def consultations_of(db, study_instance_uid: str) -> list[dict[str, Any]]:
    sql = "SELECT * FROM consultations WHERE study_instance_uid = ? ORDER BY id"
    return [dict(r) for r in db.execute(sql, [study_instance_uid])]


def events_of_study(db, study_instance_uid: str) -> list[dict[str, Any]]:
    sql = (
        "SELECT e.* FROM consultation_events e JOIN consultations c ON c.id = e.consultation_id"
        " WHERE c.study_instance_uid = ? ORDER BY e.id"
    )
    return [dict(r) for r in db.execute(sql, [study_instance_uid])]


def row_counts(db) -> dict[str, int]:
    tables = ("consultations", "consultation_events", "studies", "quarantine")
    return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


def study_instances_seen(db, study_instance_uid: str) -> int:
    """How many instances the last ingest of the study counted (all origins)."""
    sql = "SELECT instances_count FROM studies WHERE study_instance_uid = ?"
    row = db.execute(sql, [study_instance_uid]).fetchone()
    return row[0] if row else 0


def rewind_cursor(db, seq: int) -> None:
    """Force the cursor back (``set_cursor`` only ever advances it)."""
    db.execute(
        "UPDATE ingest_state SET value = ? WHERE key = ?", [str(seq), ingest_store.CURSOR_KEY]
    )


# --- helpers --------------------------------------------------------------------------------


async def eventually(predicate: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Poll an async predicate until it returns something truthy (for tests without Service)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await predicate()):
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)
    return value


async def c_store(orthanc: ManagedOrthanc, datasets: list[Dataset], calling_aet: str) -> None:
    """C-STORE to the Orthanc whether or not the service runs."""
    result = await asyncio.to_thread(
        send_datasets,
        datasets,
        host="127.0.0.1",
        port=orthanc.config.dicom_port,
        calling_aet=calling_aet,
        called_aet="TELEREAD",
    )
    assert result.failed == 0, result


async def seed_facility(settings: Settings, name: str, kind: str, aet: str) -> int:
    """Register a facility in the service's database while the service is not running."""
    database = open_database(settings)
    try:
        return await database.write(
            facility_store.add_facility, name=name, kind=kind, aet=aet, timezone="Asia/Shanghai"
        )
    finally:
        database.close()


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[web.Application]:
    """A fresh app on the settings' data dir, started and (on exit) stopped for good."""
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        yield client.app
    finally:
        await client.close()


async def orthanc_study_id(orthanc_api: OrthancClient, study_instance_uid: str) -> str | None:
    found = await orthanc_api.request("POST", "/tools/lookup", data=study_instance_uid)
    return next((r["ID"] for r in found if r["Type"] == "Study"), None)


async def stable_study_changes(orthanc_api: OrthancClient, orthanc_id: str) -> list[int]:
    page = await orthanc_api.changes(0, 1000)
    return [
        c.seq
        for c in page.changes
        if c.change_type == "StableStudy" and c.resource_id == orthanc_id
    ]


async def wait_until_caught_up(database: Database, orthanc_api: OrthancClient) -> int:
    """Wait until the stored cursor reaches Orthanc's last change; returns that seq."""

    async def cursor_at_last() -> int | None:
        last = await orthanc_api.last_change()
        return last if await database.read(ingest_store.get_cursor) == last else None

    return await eventually(cursor_at_last)


@pytest.fixture
async def orthanc_api(orthanc: ManagedOrthanc) -> AsyncIterator[OrthancClient]:
    """Direct REST access to the test Orthanc, to check what it says independently."""
    credentials = orthanc.config.credentials
    client = OrthancClient(orthanc.url, credentials.username, credentials.password)
    yield client
    await client.close()


async def ingested(service, study_instance_uid: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait until the study has ``count`` consultations, and return them."""

    async def found() -> list[dict[str, Any]] | None:
        rows = await service.database.read(consultations_of, study_instance_uid)
        return rows if len(rows) >= count else None

    return await service.wait_for(found)


# --- quarantine -----------------------------------------------------------------------------


async def test_study_from_unknown_ae_title_is_quarantined_with_ae_title_and_ip_not_worklisted(
    service,
):
    """A study from an AE title no facility owns is kept for an admin to review, on no worklist.

    The quarantine entry names the calling AE title and the IP it came from, as Orthanc recorded
    them, so an admin can tell which modality to register (or to chase away).
    """
    regional = await service.add_facility("Regional", "regional", "REGIONAL")
    await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    await service.add_user("admin", "admin", regional)
    await service.add_user("li", "specialist", regional)
    study = a_study(instances=2)
    uid = study[0].StudyInstanceUID

    await service.c_store(study, "STRANGER_CT")

    await service.wait_for(lambda: service.database.read(ingest_store.list_quarantine))
    response = await service.client.get(
        "/api/admin/quarantine", headers=await service.login("admin")
    )
    assert response.status == 200
    [entry] = (await response.json())["items"]
    assert entry["study_instance_uid"] == uid
    assert entry["remote_aet"] == "STRANGER_CT"
    assert entry["remote_ip"] == "127.0.0.1"
    assert entry["origin"] == "DicomProtocol"
    assert entry["instances"] == 2
    assert entry["reason"] == "unknown AE title"
    assert await service.database.read(consultations_of, uid) == []
    worklist = await service.worklist(await service.login("li"))
    assert worklist["items"] == []
    assert worklist["counts"]["total"] == 0


# --- resends and replays --------------------------------------------------------------------


async def test_same_study_sent_twice_yields_exactly_one_consultation(service, orthanc_api):
    """Re-sending identical instances changes nothing: Orthanc keeps them and emits no change.

    The second C-STORE succeeds (AlreadyStored), no new change appears on the feed even after
    StableAge has passed, and the study still has one consultation with one arrival event.
    """
    await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    study = a_study(instances=2)
    uid = study[0].StudyInstanceUID
    await service.c_store(study, "DONGXIANG_DR")
    await ingested(service, uid)
    last = await wait_until_caught_up(service.database, orthanc_api)

    await service.c_store(study, "DONGXIANG_DR")
    await asyncio.sleep(STABLE_STUDY_DELAY)  # long enough for a StableStudy, had there been one

    assert await orthanc_api.last_change() == last
    assert await service.database.read(ingest_store.get_cursor) == last
    assert len(await service.database.read(consultations_of, uid)) == 1
    assert len(await service.database.read(events_of_study, uid)) == 1


async def test_study_resent_with_an_extra_instance_updates_count_not_consultations(service):
    """A study completed later (one more instance) refreshes its consultation, never doubles it."""
    await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    study = a_study(instances=2)
    uid = study[0].StudyInstanceUID
    await service.c_store(study, "DONGXIANG_DR")
    [before] = await ingested(service, uid)
    assert before["instances"] == 2

    await service.c_store([*study, another_instance(study)], "DONGXIANG_DR")

    async def counted_three() -> list[dict[str, Any]] | None:
        rows = await service.database.read(consultations_of, uid)
        return rows if rows[0]["instances"] == 3 else None

    [after] = await service.wait_for(counted_three)
    assert after["id"] == before["id"]
    assert after["status"] == before["status"]
    assert after["received_at"] == before["received_at"]
    assert after["due_at"] == before["due_at"]
    events = await service.database.read(events_of_study, uid)
    assert [e["type"] for e in events] == ["images_received"]


async def test_replaying_the_change_feed_from_the_start_duplicates_nothing(service, orthanc_api):
    """Rewinding the cursor to 0 replays every StableStudy; consultations and events stay as they
    were, and the cursor ends where it was."""
    await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    study = a_study(instances=2)
    uid = study[0].StudyInstanceUID
    await service.c_store(study, "DONGXIANG_DR")
    [consultation] = await ingested(service, uid)
    last = await wait_until_caught_up(service.database, orthanc_api)
    counts = await service.database.read(row_counts)
    replayed: list[IngestOutcome] = []
    service.follower.listeners.append(replayed.append)

    await service.database.write(rewind_cursor, 0)
    while await service.follower.follow_once(limit=5):
        pass

    assert any(consultation["id"] in o.consultation_ids for o in replayed), "nothing replayed"
    assert all(o.created == [] for o in replayed)
    assert await service.database.read(row_counts) == counts
    assert await service.database.read(ingest_store.get_cursor) == last


async def test_cursor_is_persisted_in_the_database_and_equals_orthancs_last_change(
    service, settings, orthanc_api
):
    """After catching up, the committed cursor (read through a separate SQLite connection) is
    the seq Orthanc gives for ``GET /changes?last``."""
    await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    study = a_study(instances=1)
    await service.c_store(study, "DONGXIANG_DR")
    await ingested(service, study[0].StudyInstanceUID)

    last = await wait_until_caught_up(service.database, orthanc_api)

    raw = await orthanc_api.get("/changes", last="")
    assert raw["Last"] == last > 0
    database = open_database(settings)  # a connection of its own, as another process's
    try:
        [(stored,)] = await database.read(
            lambda db: db.execute(
                "SELECT value FROM ingest_state WHERE key = ?", [ingest_store.CURSOR_KEY]
            ).fetchall()
        )
    finally:
        database.close()
    assert int(stored) == last


# --- crashes, restarts and outages ------------------------------------------------------------


async def test_study_stored_while_service_was_down_is_ingested_at_start_up(
    settings, orthanc, orthanc_api
):
    """The service stops; a study arrives and becomes stable; a fresh service on the same data
    dir picks it up as soon as it starts."""
    async with running_service(settings) as app:
        await app[DATABASE].write(
            facility_store.add_facility,
            name="Dongxiang",
            kind="township",
            aet="DONGXIANG_DR",
            timezone="Asia/Shanghai",
        )
        await asyncio.wait_for(app[FOLLOWER].caught_up.wait(), 10)
    study = a_study(instances=2)
    uid = study[0].StudyInstanceUID

    await c_store(orthanc, study, "DONGXIANG_DR")
    orthanc_id = await orthanc_study_id(orthanc_api, uid)
    await eventually(lambda: stable_study_changes(orthanc_api, orthanc_id))

    async with running_service(settings) as app:
        rows = await eventually(lambda: app[DATABASE].read(consultations_of, uid))
        assert len(rows) == 1
        assert rows[0]["instances"] == 2


async def test_study_stable_while_orthanc_was_down_is_reconciled_at_start_up(
    settings, orthanc, orthanc_api
):
    """Orthanc killed before StableAge passes never emits StableStudy for the study, even after a
    restart (it just reports ``IsStable``); the service reconciles such studies at start-up."""
    await seed_facility(settings, "Dongxiang", "township", "DONGXIANG_DR")
    study = a_study(instances=2)
    uid = study[0].StudyInstanceUID

    await c_store(orthanc, study, "DONGXIANG_DR")
    await orthanc.kill()
    await orthanc.start()

    orthanc_id = await orthanc_study_id(orthanc_api, uid)
    assert orthanc_id is not None, "the study did not survive the kill"
    assert (await orthanc_api.study(orthanc_id))["IsStable"]
    await asyncio.sleep(STABLE_STUDY_DELAY)  # the trap: had StableStudy come, it would be here
    assert await stable_study_changes(orthanc_api, orthanc_id) == []

    async with running_service(settings) as app:
        rows = await eventually(lambda: app[DATABASE].read(consultations_of, uid))
        assert len(rows) == 1
        assert rows[0]["orthanc_study_id"] == orthanc_id


async def test_follower_rides_out_an_orthanc_outage_and_ingests_once_it_is_back(service, orthanc):
    """While Orthanc is down the follower backs off without dying and /healthz answers 503
    naming Orthanc; when Orthanc returns (same ports, same archive) a new study reaches the
    worklist."""
    clinic = await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    await service.add_user("wang", "radiographer", clinic)
    headers = await service.login("wang")
    await asyncio.wait_for(service.follower.caught_up.wait(), 10)

    await orthanc.kill()
    await asyncio.sleep(1.0)
    response = await service.client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    assert body["orthanc"]["state"] == "down"
    assert body["ingest"]["state"] == "waiting_for_orthanc"
    await orthanc.start()
    study = a_study(instances=1)
    await service.c_store(study, "DONGXIANG_DR")

    async def listed() -> list[dict[str, Any]]:
        return (await service.worklist(headers))["items"]

    [item] = await service.wait_for(listed)
    assert item["study_instance_uid"] == study[0].StudyInstanceUID


# --- the service's own objects --------------------------------------------------------------


async def test_report_the_service_stores_into_a_study_changes_no_consultation(service, orthanc_api):
    """An object the service stores itself (a report, by REST with its own Orthanc user) fires
    another StableStudy; it creates no consultation, is not quarantined, and leaves the
    consultation's status, instance count and events as they were."""
    await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    study = a_study(instances=2)
    uid = study[0].StudyInstanceUID
    await service.c_store(study, "DONGXIANG_DR")
    [before] = await ingested(service, uid)
    await wait_until_caught_up(service.database, orthanc_api)
    events_before = await service.database.read(events_of_study, uid)

    report = basic_text_sr(study[0], "No acute cardiopulmonary abnormality.")
    answer = await service.app[ORTHANC].store_instance(dataset_bytes(report))
    assert answer["Status"] == "Success"
    assert answer["ParentStudy"] == before["orthanc_study_id"]

    async def reprocessed() -> bool:
        return await service.database.read(study_instances_seen, uid) == 3

    await service.wait_for(reprocessed)
    [after] = await service.database.read(consultations_of, uid)
    assert after["id"] == before["id"]
    assert after["status"] == before["status"]
    assert after["instances"] == 2
    assert await service.database.read(ingest_store.list_quarantine, True) == []
    assert await service.database.read(events_of_study, uid) == events_before


async def test_object_stored_with_the_services_user_into_a_study_nobody_sent_is_quarantined(
    service,
):
    """The service's own objects are ignored only in a study a facility is credited with: one
    stored with the service's Orthanc user into a study nobody sent (and nobody uploaded through
    the service) is held in quarantine, never silently dropped nor worklisted."""
    await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    study = a_study(instances=1)
    uid = study[0].StudyInstanceUID

    await service.app[ORTHANC].store_instance(dataset_bytes(study[0]))

    [entry] = await service.wait_for(lambda: service.database.read(ingest_store.list_quarantine))
    assert entry["study_instance_uid"] == uid
    assert entry["origin"] == "RestApi"
    assert entry["reason"] == "stored by teleread into a study no facility sent"
    assert await service.database.read(consultations_of, uid) == []


# --- who gets credited ----------------------------------------------------------------------


async def test_a_second_facility_sending_images_of_a_study_is_quarantined_not_credited(service):
    """A study belongs to the facility that sent it first: the county hospital's images of the
    township's study (same Study Instance UID) give the county no consultation; they wait in
    the quarantine with the reason, and the township's consultation keeps its own count."""
    township = await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    await service.add_facility("Linxia County", "county", "LINXIA_CT")
    first = a_study(instances=1)
    uid = first[0].StudyInstanceUID
    second = a_study(instances=1, study_instance_uid=uid, series_number=2)

    await service.c_store(first, "DONGXIANG_DR")
    await ingested(service, uid)
    await service.c_store(second, "LINXIA_CT")

    [entry] = await service.wait_for(lambda: service.database.read(ingest_store.list_quarantine))
    assert (entry["remote_aet"], entry["reason"]) == (
        "LINXIA_CT",
        "the study belongs to another facility",
    )
    [row] = await service.database.read(consultations_of, uid)
    assert (row["facility_id"], row["received_via"], row["instances"]) == (township, "dicom", 1)


async def test_consultation_from_ingest_has_an_images_received_event_and_is_due_in_24h(service):
    """A new consultation starts its timeline with ``images_received`` at the moment it was
    received, and a routine one is due 24 h after that."""
    await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    study = a_study(instances=2)
    uid = study[0].StudyInstanceUID
    await service.c_store(study, "DONGXIANG_DR")

    [consultation] = await ingested(service, uid)

    [event] = await service.database.read(events_of_study, uid)
    assert event["type"] == "images_received"
    assert event["at"] == consultation["received_at"]
    assert json.loads(event["detail"]) == {"instances": 2, "via": "dicom"}
    assert consultation["priority"] == "routine"
    received_at = from_iso(consultation["received_at"])
    assert from_iso(consultation["due_at"]) == received_at + timedelta(hours=24)
