"""Two Orthancs on one PostgreSQL index (Debian's ``orthanc-postgresql``), files in one shared
directory: one archive with two doors. Each takes C-STOREs and lists what the other received;
teleread follows their one change feed and makes each study one consultation, once, and goes on
through the other Orthanc when the one it follows dies (docs/scaling.md, "Orthanc on
PostgreSQL"). A real PostgreSQL (tests/postgres_server.py) and real Orthancs, no mocks; one
archive and one app for the module.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydicom.dataset import Dataset

from service.app import create_app
from service.demo.synthetic import StudySpec, make_study
from service.dicom.send import send_datasets
from service.http.keys import ORTHANC
from service.intake.intake import IngestOutcome
from service.runtime.orthanc.client import OrthancClient
from service.runtime.orthanc.process import (
    ManagedOrthanc,
    OrthancConfig,
    OrthancCredentials,
    OrthancStartError,
    SharedIndex,
    load_or_create_credentials,
)
from service.storage import ingest as ingest_store

from .conftest import Service, free_port, start_from, suite_settings
from .postgres_server import PostgresServer, start_postgres

pytestmark = pytest.mark.orthanc

CLINIC_AET = "DONGXIANG_DR"


@dataclass
class Archive:
    """Two Orthancs sharing one index and one storage directory."""

    index: SharedIndex
    orthancs: list[ManagedOrthanc]

    def client(self, number: int) -> OrthancClient:
        orthanc = self.orthancs[number]
        credentials = orthanc.config.credentials
        return OrthancClient(orthanc.url, credentials.username, credentials.password)


async def start_shared_orthanc(
    directory: Path, index: SharedIndex, credentials: OrthancCredentials, attempts: int = 3
) -> ManagedOrthanc:
    """An Orthanc of the shared archive on free ports (retried if one was taken meanwhile)."""
    for attempt in range(attempts):
        config = OrthancConfig(
            directory=directory,
            http_port=free_port(),
            dicom_port=free_port(),
            aet="TELEREAD",
            stable_age=1,
            plugins_dir=Path("/usr/share/orthanc/plugins"),
            credentials=credentials,
            shared_index=index,
        )
        orthanc = ManagedOrthanc(config)
        try:
            await orthanc.start()
            return orthanc
        except OrthancStartError as exc:
            if "already in use" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


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
    directory = tmp_path_factory.mktemp("archive")
    index = SharedIndex(postgres.new_database(), directory / "storage")
    credentials = load_or_create_credentials(directory)  # one set for both: one archive
    orthancs = list(
        await asyncio.gather(
            *(start_shared_orthanc(directory / f"o{n}", index, credentials) for n in (1, 2))
        )
    )
    yield Archive(index, orthancs)
    for orthanc in orthancs:
        await orthanc.kill()


@pytest.fixture(scope="module")
async def world(
    archive: Archive, migrated_database: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    """teleread on the first Orthanc, the second given as the other door
    (``TELEREAD_ORTHANC_OTHER_URLS``); a clinic whose AE title sends."""
    first, second = archive.orthancs
    settings = replace(
        suite_settings(tmp_path_factory.mktemp("teleread"), first),
        orthanc_other_urls=second.url,
    )
    start_from(migrated_database, settings)
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    service = Service(client, client.app, first)
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
