"""Two Orthancs on one PostgreSQL index (Debian's ``orthanc-postgresql``), files in one shared
directory: one archive with two doors. Each takes C-STOREs and lists what the other received;
teleread follows their one change feed and makes each study one consultation, once, and goes on
through the other Orthanc when the one it follows dies (docs/scaling.md, "Orthanc on
PostgreSQL"). A real PostgreSQL (tests/postgres_server.py) and real Orthancs, no mocks; one
archive and one app for the module.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydicom.dataset import Dataset

from service.app import create_app, managed_orthanc
from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.dicom.send import send_datasets
from service.http.keys import ORTHANC
from service.intake.intake import IngestOutcome
from service.intake.modalities import register_facility
from service.runtime.orthanc.client import OrthancClient
from service.runtime.orthanc.file_doors import FileDoors
from service.runtime.orthanc.file_reader import OrthancFileReader
from service.runtime.orthanc.process import ManagedOrthanc
from service.settings import SettingsError, load_settings
from service.storage import ingest as ingest_store
from service.viewing.rendering import FileSource, FrameRef, RenderWorkers
from viewer import RenderOptions

from .conftest import Service, free_port, suite_settings
from .postgres_server import PostgresServer, start_postgres
from .shared_archive import Archive, start_archive

pytestmark = pytest.mark.orthanc

CLINIC_AET = "DONGXIANG_DR"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    # In the system's temporary directory: as root the server runs as user postgres, who
    # cannot enter pytest's (mode 0700).
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def archive(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Archive]:
    archive = await start_archive(postgres, tmp_path_factory.mktemp("archive"))
    yield archive
    await archive.kill()


@pytest.fixture(scope="module")
async def world(
    archive: Archive, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    """teleread on the first Orthanc, the second given as the other door
    (``TELEREAD_ORTHANC_OTHER_URLS``); a clinic whose AE title sends."""
    first, second = archive.orthancs
    settings = replace(
        suite_settings(tmp_path_factory.mktemp("teleread"), first),
        orthanc_other_urls=second.url,
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    service = Service(client, client.app, first)
    # A seq rolled back (two Orthancs colliding) holds the stored cursor this long: 2 s, not
    # production's 10, so that a test waiting for the cursor is not held up by one.
    service.follower.gap_patience = 2.0
    await service.add_facility("Dongxiang", "township", CLINIC_AET)
    yield service
    await client.close()


def a_study(patient_id: str) -> list[Dataset]:
    return make_study(StudySpec(patient_id, "WANG^FANG", "CR", "CHEST", instances=2, rows=64))


async def c_store(orthanc: ManagedOrthanc, study: list[Dataset]) -> None:
    port = orthanc.config.dicom_port
    result = await asyncio.to_thread(
        send_datasets,
        study,
        host="127.0.0.1",
        port=port,
        calling_aet=CLINIC_AET,
        called_aet="TELEREAD",
    )
    assert result.failed == 0, result


def uid(study: list[Dataset]) -> str:
    return study[0].StudyInstanceUID


def consultation_counts(db: Any, uids: list[str]) -> Counter[str]:
    marks = ", ".join("?" for _ in uids)
    sql = f"SELECT study_instance_uid FROM consultations WHERE study_instance_uid IN ({marks})"
    return Counter(row[0] for row in db.execute(sql, uids))


def orthanc_ids(db: Any, uids: list[str]) -> list[str]:
    marks = ", ".join("?" for _ in uids)
    sql = f"SELECT orthanc_id FROM studies WHERE study_instance_uid IN ({marks})"
    return [row[0] for row in db.execute(sql, uids)]


def outcomes_of(service: Service) -> list[IngestOutcome]:
    """Every ingest outcome from now on (a study processed twice would show twice)."""
    outcomes: list[IngestOutcome] = []
    service.follower.listeners.append(outcomes.append)
    return outcomes


async def all_ingested(service: Service, uids: list[str]) -> Counter[str]:
    async def every_one() -> Counter[str] | None:
        counts = await service.database.read(consultation_counts, uids)
        return counts if set(counts) == set(uids) else None

    return await service.wait_for(every_one, timeout=20)


async def test_each_orthanc_lists_and_serves_what_the_other_received(archive: Archive):
    """A study C-STOREd to one Orthanc is in the other's /studies, its files readable there (the
    shared storage directory), and both give the same change feed, seq for seq."""
    studies = [a_study("SHARE1"), a_study("SHARE2")]
    await asyncio.gather(*(c_store(o, s) for o, s in zip(archive.orthancs, studies, strict=True)))
    clients = [archive.client(0), archive.client(1)]
    try:
        listed = [set(await client.study_ids()) for client in clients]
        assert len(listed[0]) >= 2 and listed[0] == listed[1]
        found = await clients[1].request(
            "POST",
            "/tools/find",
            json={"Level": "Instance", "Query": {"SOPInstanceUID": studies[0][0].SOPInstanceUID}},
        )
        content = await clients[1].get(f"/instances/{found[0]}/file")
        assert content[128:132] == b"DICM"
        feeds = [[c.seq for c in (await client.changes(0, 1000)).changes] for client in clients]
        assert feeds[0] == feeds[1] and feeds[0]
    finally:
        for client in clients:
            await client.close()


async def test_the_configuration_puts_the_index_in_postgresql_unlocked_and_stays_private(
    archive: Archive,
):
    """Plugin 4.0's section: the index only, ``Lock`` false (several Orthancs), the files in the
    shared directory; HTTP from localhost only and authenticated, as ever."""
    config = json.loads((archive.orthancs[0].config.directory / "orthanc.json").read_text())
    assert config["PostgreSQL"] == {
        "EnableIndex": True,
        "EnableStorage": False,
        "ConnectionUri": archive.index.url,
        "Lock": False,
        "MaximumConnectionRetries": 10,
        "ConnectionRetryInterval": 1,
    }
    assert any(p.endswith("/libOrthancPostgreSQLIndex.so") for p in config["Plugins"])
    assert config["StorageDirectory"] == str(archive.index.storage_dir)
    assert config["RemoteAccessAllowed"] is False
    assert config["AuthenticationEnabled"] is True


async def test_teleread_serve_starts_its_orthanc_on_the_index_its_settings_name(
    archive: Archive, tmp_path: Path
):
    """TELEREAD_ORTHANC_INDEX_URL and TELEREAD_ORTHANC_STORAGE_DIR: the managed Orthanc joins
    the archive, and lists and serves a study another door received."""
    study = a_study("JOIN1")
    await c_store(archive.orthancs[0], study)
    settings = load_settings(
        {
            "TELEREAD_DATA_DIR": str(tmp_path / "var"),
            "TELEREAD_ORTHANC_HTTP_PORT": str(free_port()),
            "TELEREAD_ORTHANC_DICOM_PORT": str(free_port()),
            "TELEREAD_ORTHANC_INDEX_URL": archive.index.url,
            "TELEREAD_ORTHANC_STORAGE_DIR": str(archive.index.storage_dir),
        }
    )
    joined = managed_orthanc(settings)
    await joined.start()
    credentials = joined.config.credentials
    client = OrthancClient(joined.url, credentials.username, credentials.password)
    try:
        found = await client.request("POST", "/tools/lookup", data=study[0].SOPInstanceUID.encode())
        content = await client.get(f"/instances/{found[0]['ID']}/file")
        assert content[128:132] == b"DICM"
    finally:
        await client.close()
        await joined.kill()


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"TELEREAD_ORTHANC_INDEX_URL": "mysql://h/db"}, "TELEREAD_ORTHANC_INDEX_URL"),
        ({"TELEREAD_ORTHANC_INDEX_URL": "postgresql://h:5432"}, "TELEREAD_ORTHANC_INDEX_URL"),
        ({"TELEREAD_ORTHANC_STORAGE_DIR": "/srv/dicom"}, "needs TELEREAD_ORTHANC_INDEX_URL"),
        ({"TELEREAD_ORTHANC_OTHER_URLS": "http://o2:8042"}, "needs TELEREAD_ORTHANC_URL"),
        (
            {"TELEREAD_ORTHANC_URL": "http://o1:8042", "TELEREAD_ORTHANC_OTHER_URLS": "o2:8042"},
            "not an http",
        ),
    ],
)
def test_settings_of_a_shared_archive_that_cannot_work_are_refused(environ, complaint):
    with pytest.raises(SettingsError, match=complaint):
        load_settings(environ)


async def test_a_request_that_cannot_reach_the_first_door_goes_to_the_next_at_once(
    archive: Archive,
):
    """A store sent where nothing listens never left: it is sent to the next Orthanc of the
    archive at once, and later requests go there too."""
    credentials = archive.credentials
    nobody = f"http://127.0.0.1:{free_port()}"
    client = OrthancClient(
        nobody, credentials.username, credentials.password, other_urls=[archive.orthancs[1].url]
    )
    try:
        stored = await client.store_instance(dataset_bytes(a_study("DOOR1")[0]))
        assert stored["Status"] == "Success"
        assert client.base_url == archive.orthancs[1].url
        assert await client.get(f"/instances/{stored['ID']}/metadata")
    finally:
        await client.close()


async def test_a_file_streamed_from_a_dead_door_comes_from_the_next_at_once(archive: Archive):
    """A DICOMweb retrieve passes Orthanc's file on as it arrives (``stream``): with the first
    Orthanc unreachable the same GET goes to the next before anything was passed on."""
    credentials = archive.credentials
    stored_by = archive.client(1)
    client = OrthancClient(
        f"http://127.0.0.1:{free_port()}",
        credentials.username,
        credentials.password,
        other_urls=[archive.orthancs[1].url],
    )
    try:
        stored = await stored_by.store_instance(dataset_bytes(a_study("STREAM1")[0]))
        content = b"".join(
            [chunk async for chunk in client.stream("GET", f"/instances/{stored['ID']}/file")]
        )
        assert content[128:132] == b"DICM"
        assert client.base_url == archive.orthancs[1].url
    finally:
        await client.close()
        await stored_by.close()


async def test_a_file_read_goes_to_the_next_orthanc_when_the_first_does_not_answer(
    archive: Archive,
):
    """The viewer's blocking reads (FileDoors): the same read sent to the next Orthanc at once,
    which then stays the one read from."""
    study = a_study("READ1")
    await c_store(archive.orthancs[0], study)
    credentials = archive.credentials
    urls = [f"http://127.0.0.1:{free_port()}", archive.orthancs[1].url]
    doors = FileDoors(
        [OrthancFileReader(url, credentials.username, credentials.password) for url in urls]
    )
    client = archive.client(1)
    try:
        found = await client.request("POST", "/tools/lookup", data=study[0].SOPInstanceUID.encode())
        for _ in range(2):
            content = await asyncio.to_thread(doors.read, found[0]["ID"])
            assert content[128:132] == b"DICM"
    finally:
        await client.close()
        doors.close()


async def test_render_workers_read_from_the_next_orthanc_when_the_first_does_not_answer(
    archive: Archive,
):
    """TELEREAD_RENDER_WORKERS: each worker process reads files through the archive's doors."""
    [ds] = make_study(StudySpec("READ2", "A^B", "CT", "HEAD", rows=32))
    stored_by = archive.client(1)
    credentials = archive.credentials
    source = FileSource(
        f"http://127.0.0.1:{free_port()}",
        credentials.username,
        credentials.password,
        (archive.orthancs[1].url,),
    )
    workers = RenderWorkers(1, 16, source)
    try:
        stored = await stored_by.store_instance(dataset_bytes(ds))
        ref = FrameRef(str(ds.SOPInstanceUID), stored["ID"], 0)
        assert (await workers.render(ref, RenderOptions(format="png")))[:4] == b"\x89PNG"
    finally:
        await workers.close()
        await stored_by.close()


async def test_a_facility_is_registered_with_every_orthanc_of_the_archive(archive: Archive):
    """Each Orthanc keeps its own modalities in the shared index: a facility's AE title is
    registered with both, or the second would refuse its worklist queries and reports."""
    credentials = archive.credentials
    first, second = archive.orthancs
    client = OrthancClient(
        first.url, credentials.username, credentials.password, other_urls=[second.url]
    )
    try:
        await register_facility(client, {"aet": "XIPING_CT"})
    finally:
        await client.close()
    for number in (0, 1):
        alone = archive.client(number)
        try:
            assert "XIPING_CT" in await alone.modalities()
        finally:
            await alone.close()


async def test_the_facility_command_registers_the_aet_with_every_orthanc(
    archive: Archive, tmp_path: Path
):
    """``teleread facility add`` in front of a shared archive (``TELEREAD_ORTHANC_URL`` and
    ``TELEREAD_ORTHANC_OTHER_URLS``) registers the new AE title with both Orthancs at once."""
    first, second = archive.orthancs
    environment = {
        **os.environ,
        "TELEREAD_DATA_DIR": str(tmp_path),
        "TELEREAD_ORTHANC_URL": first.url,
        "TELEREAD_ORTHANC_OTHER_URLS": second.url,
        "TELEREAD_ORTHANC_USERNAME": archive.credentials.username,
        "TELEREAD_ORTHANC_PASSWORD": archive.credentials.password,
    }
    added = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).with_name("teleread")), "facility", "add", "--name", "Lijia",
         "--kind", "township", "--aet", "LIJIA_DR"],
        env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    for number in (0, 1):
        alone = archive.client(number)
        try:
            assert "LIJIA_DR" in await alone.modalities()
        finally:
            await alone.close()


async def test_studies_sent_to_both_orthancs_become_one_consultation_each(
    archive: Archive, world: Service
):
    """Six studies C-STOREd at once, three to each Orthanc: six consultations, each study
    ingested once (no outcome repeated), the stored cursor at the feed's end."""
    outcomes = outcomes_of(world)
    studies = [a_study(f"BOTH{n}") for n in range(6)]
    await asyncio.gather(*(c_store(archive.orthancs[n % 2], s) for n, s in enumerate(studies)))
    uids = [uid(s) for s in studies]

    counts = await all_ingested(world, uids)
    await asyncio.sleep(0.3)  # a few more polls: a repeat would show now

    assert counts == Counter({u: 1 for u in uids})
    processed = Counter(o.study_instance_uid for o in outcomes)
    assert all(processed[u] == 1 for u in uids), processed


async def test_a_change_committed_late_is_ingested_and_the_cursor_waits_for_it(
    archive: Archive, world: Service
):
    """A transaction holds seq N uncommitted while later changes commit (as another Orthanc's
    may): the follower ingests the later ones, stores no cursor at or past N, and ingests N's
    change when it commits. N is a real row of Orthanc's own Changes table (a StableStudy of a
    study ingested before, so ingesting it again only refreshes it)."""
    first, second = archive.orthancs
    early, later = a_study("LATE1"), a_study("LATE2")
    await c_store(first, early)
    await all_ingested(world, [uid(early)])
    [early_id] = await world.database.read(orthanc_ids, [uid(early)])
    outcomes = outcomes_of(world)
    world.follower.gap_patience = 60.0  # the held seq must be waited for while it is held

    with psycopg.connect(archive.index.url) as held:
        # Without the plugin's trigger, which row-locks one counter for every change written
        # and so serialises the Orthancs' writes (docs/scaling.md): later plugins write
        # concurrently, and a late commit is what this test is about.
        held.execute("SET LOCAL session_replication_role = replica")
        held_seq = held.execute(
            "INSERT INTO changes (changetype, internalid, resourcetype, date)"
            " SELECT 13, internalid, 1, '20260101T000000' FROM resources WHERE publicid = %s"
            " RETURNING seq",
            [early_id],
        ).fetchone()[0]
        await c_store(second, later)
        await all_ingested(world, [uid(later)])
        assert await world.database.read(ingest_store.get_cursor) < held_seq
        assert [o.orthanc_id for o in outcomes] != [early_id]
    # leaving the block commits: the change appears below seqs the follower has read

    async def late_change_ingested() -> bool:
        return any(o.orthanc_id == early_id for o in outcomes)

    await world.wait_for(late_change_ingested)
    world.follower.gap_patience = 2.0  # other gaps (rolled-back seqs) are old by now: given up
    last = await world.app[ORTHANC].last_change()

    async def cursor_at(seq: int) -> bool:
        return await world.database.read(ingest_store.get_cursor) == seq

    await world.wait_for(lambda: cursor_at(last))
    assert [o.orthanc_id for o in outcomes].count(early_id) == 1


async def test_ingest_goes_on_through_the_other_orthanc_when_the_followed_one_dies(
    archive: Archive, world: Service
):
    """Studies keep arriving at the second Orthanc while the first, the one teleread follows,
    is killed after the first of them is ingested: the client turns to the second, and every
    study becomes one consultation, none twice. (Last in the module: the first stays dead.)"""
    first, second = archive.orthancs
    client = world.app[ORTHANC]
    assert client.base_url == first.url
    outcomes = outcomes_of(world)
    studies = [a_study(f"FAIL{n}") for n in range(4)]
    uids = [uid(s) for s in studies]
    sending = asyncio.gather(*(c_store(second, s) for s in studies))

    await world.wait_for(lambda: _any_ingested(world, uids), timeout=20)
    await first.kill()
    await sending
    counts = await all_ingested(world, uids)
    await asyncio.sleep(0.3)

    assert client.base_url == second.url
    assert counts == Counter({u: 1 for u in uids})
    processed = Counter(o.study_instance_uid for o in outcomes)
    assert all(processed[u] == 1 for u in uids), processed


async def _any_ingested(service: Service, uids: list[str]) -> bool:
    return bool(await service.database.read(consultation_counts, uids))
