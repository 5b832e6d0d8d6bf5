"""Replicas on one PostgreSQL database: background work done once, live updates heard by all.

Each replica is an app of its own (its own database connections, lease, replica bus) on one
database URL, as replicas on several hosts behind the proxy are. One of them leads and runs the
sweeps, delivery and ingest; when it stops, another takes over within seconds; the change
cursor refuses a second writer of the same changes; a worklist change made through one replica
reaches an event stream held by the other, and a signature's delivery kick reaches the leader.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.http.keys import LEADERSHIP, REPORT_DELIVERY
from service.intake.ingest import ChangeFollower
from service.intake.intake import InstanceOrigin, ReceivedStudy, receive_study
from service.runtime.orthanc.client import OrthancClient
from service.storage import facilities as facility_store
from service.storage import ingest as ingest_store
from service.storage.leases import AdvisoryLease
from service.storage.postgres.database import PostgresDatabase
from worklists.sla import SlaPolicy

from . import backends
from .conftest import Service, suite_settings
from .test_ingest import (
    a_study,
    c_store,
    consultations_of,
    eventually,
    orthanc_study_id,
    stable_study_changes,
)
from .test_live_updates import consortium, file_request, next_change, open_stream

TAKE_OVER_SECONDS = 3.0


async def start_replicas(base, count: int = 2, url: str | None = None) -> list[Service]:
    """``count`` apps on one PostgreSQL database (a fresh one unless ``url`` is given), with no
    Orthanc, sweeping every 0.2 s."""
    url = url or backends.new_database_url(base)
    services = []
    for n in range(count):
        settings = replace(
            suite_settings(base / f"r{n}", None), database_url=url, escalation_interval=0.2
        )
        client = TestClient(TestServer(create_app(settings, orthanc=False)))
        await client.start_server()
        services.append(Service(client, client.app, None))
    return services


@pytest.fixture(scope="module")
async def replicas(tmp_path_factory) -> AsyncIterator[list[Service]]:
    """Two replicas for the tests that stop neither."""
    services = await start_replicas(tmp_path_factory.mktemp("replicas"))
    try:
        yield services
    finally:
        for service in services:
            await service.client.close()


def leaders(services: list[Service]) -> list[Service]:
    return [s for s in services if s.app[LEADERSHIP].leading]


async def healthz_leader(service: Service) -> bool | None:
    response = await service.client.get("/healthz")  # 503: no Orthanc here, the body says all
    return (await response.json())["leader"]


async def test_exactly_one_of_two_replicas_leads_and_healthz_says_which(replicas):
    assert len(leaders(replicas)) == 1
    assert sorted([await healthz_leader(s) for s in replicas]) == [False, True]


async def test_when_the_leader_stops_another_takes_over_and_sweeps(tmp_path):
    """The leader's app stops (its lease's connection closes); the other replica leads within
    seconds, and its escalation sweep escalates a consultation that was due days ago."""
    services = await start_replicas(tmp_path)
    try:
        await take_over_and_sweep(services)
    finally:
        for service in services:
            await service.client.close()


async def take_over_and_sweep(services: list[Service]) -> None:
    (leader,) = leaders(services)
    other = next(s for s in services if s is not leader)
    await leader.client.close()
    services.remove(leader)
    started = time.monotonic()
    while not other.app[LEADERSHIP].leading:
        assert time.monotonic() - started < TAKE_OVER_SECONDS, "nobody took over"
        await asyncio.sleep(0.05)
    assert await healthz_leader(other) is True
    consultation_id = await overdue_consultation(other)
    deadline = time.monotonic() + 5
    while not await other.database.read(escalations, consultation_id):
        assert time.monotonic() < deadline, "the new leader's escalation sweep did not run"
        await asyncio.sleep(0.1)


async def test_no_replica_sweeps_while_the_lease_is_held_elsewhere(tmp_path):
    """While another session holds the lease, neither replica leads and nothing escalates an
    overdue consultation; once it is given up, one replica takes it and sweeps."""
    url = backends.new_database_url(tmp_path)
    elsewhere = AdvisoryLease(url, "background work")
    assert await elsewhere.try_take()
    services = await start_replicas(tmp_path, url=url)
    try:
        consultation_id = await overdue_consultation(services[0])
        await asyncio.sleep(1.0)  # five sweep intervals, one lease retry
        assert leaders(services) == []
        assert await services[0].database.read(escalations, consultation_id) == 0
        await elsewhere.release()
        deadline = time.monotonic() + TAKE_OVER_SECONDS + 2
        while not await services[0].database.read(escalations, consultation_id):
            assert time.monotonic() < deadline, "nobody swept once the lease was free"
            await asyncio.sleep(0.1)
        assert len(leaders(services)) == 1
    finally:
        await elsewhere.release()
        for service in services:
            await service.client.close()


async def test_a_stale_follower_cannot_record_changes_twice(tmp_path):
    """Two followers (an old leader finishing its round, the new one starting) both read the
    cursor at 0 and record the work of changes up to 5 at once, on two connections: one commits,
    the other's transaction is refused as a whole (CursorMoved), its work rolled back."""
    url = backends.new_database_url(tmp_path)
    first = PostgresDatabase(url, tmp_path / "a" / "teleread.db")
    second = PostgresDatabase(url, tmp_path / "b" / "teleread.db")
    both_read = threading.Barrier(2, timeout=10)

    def record_changes(db, name: str) -> None:
        ingest_store.expect_cursor(db, 0)
        both_read.wait()  # both have read the cursor before either writes
        facility_store.add_facility(
            db, name=name, kind="township", aet=name.upper(), timezone="Asia/Shanghai"
        )
        ingest_store.set_cursor(db, 5, expected=0)

    try:
        outcomes = await asyncio.gather(
            first.write(record_changes, "old leader"),
            second.write(record_changes, "new leader"),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, ingest_store.CursorMoved)]
        assert len(refused) == 1, outcomes
        assert outcomes.count(None) == 1, outcomes
        assert await first.read(ingest_store.get_cursor) == 5
        assert len(await first.read(facility_store.list_facilities)) == 1
        with pytest.raises(ingest_store.CursorMoved):  # and later, read before: refused too
            await second.write(ingest_store.set_cursor, 7, 0)
    finally:
        first.close()
        second.close()


class HeldFollower(ChangeFollower):
    """An old leader's follower, held between reading a study from Orthanc and recording it
    (as a partitioned or slow leader would be) until the test lets it go on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.holding, self.go = asyncio.Event(), asyncio.Event()

    async def read_study(self, orthanc_id: str):
        study = await super().read_study(orthanc_id)
        self.holding.set()
        await self.go.wait()
        return study


async def test_an_old_leaders_follower_finishing_its_round_records_nothing(tmp_path, orthanc):
    """The old leader's follower has read the cursor and a stable study when the new leader's
    follower records that change; let go, the old one's transaction is refused (CursorMoved)
    and its listeners hear nothing: the change's work is recorded, and announced, once."""
    url = backends.new_database_url(tmp_path)
    old_db = PostgresDatabase(url, tmp_path / "old" / "teleread.db")
    new_db = PostgresDatabase(url, tmp_path / "new" / "teleread.db")
    credentials = orthanc.config.credentials
    api = OrthancClient(orthanc.url, credentials.username, credentials.password)
    try:
        await new_db.write(
            facility_store.add_facility,
            name="Dongxiang",
            kind="township",
            aet="DONGXIANG_DR",
            timezone="Asia/Shanghai",
        )
        study = a_study(instances=1)
        await c_store(orthanc, study, "DONGXIANG_DR")
        orthanc_id = await orthanc_study_id(api, study[0].StudyInstanceUID)
        await eventually(lambda: stable_study_changes(api, orthanc_id))
        quarantine = tmp_path / "quarantine"
        old = HeldFollower(api, old_db, SlaPolicy(), quarantine_dir=quarantine)
        new = ChangeFollower(api, new_db, SlaPolicy(), quarantine_dir=quarantine)
        heard_old: list[object] = []
        heard_new: list[object] = []
        old.listeners.append(heard_old.append)
        new.listeners.append(heard_new.append)
        old_round = asyncio.create_task(old.follow_once())
        await asyncio.wait_for(old.holding.wait(), 10)
        await new.follow_once()
        old.go.set()
        with pytest.raises(ingest_store.CursorMoved):
            await old_round
        assert len(heard_new) == 1
        assert heard_old == []
        rows = await new_db.read(consultations_of, study[0].StudyInstanceUID)
        assert len(rows) == 1
    finally:
        await api.close()
        old_db.close()
        new_db.close()


async def test_a_change_through_one_replica_reaches_a_stream_on_the_other(replicas):
    """A requester files a stat request through replica A; the specialist's event stream,
    held by replica B, hears it (LISTEN/NOTIFY) within a second or two; a stream held by A
    hears it once (A ignores its own message on the channel)."""
    a, b = replicas
    await consortium(a)
    headers = await b.login("dr_li")
    stream, own = await open_stream(b, headers), await open_stream(a, headers)
    filed = await file_request(a, await a.login("req_a"), "1.2.826.0.1.3680043.10.22.1")
    change = await next_change(stream, timeout=2.0)
    assert change is not None, "replica B heard nothing"
    assert (change["kind"], change["consultation_id"]) == ("new", filed["id"])
    assert (await next_change(own, timeout=1.0))["consultation_id"] == filed["id"]
    assert await next_change(own, timeout=0.3) is None, "replica A heard its own change again"


async def test_a_delivery_kick_on_a_replica_that_does_not_lead_wakes_the_leader(replicas):
    """A signature kicks report delivery where it was made; through a replica that does not
    lead, the kick reaches the leader, whose worker runs it."""
    (leader,) = leaders(replicas)
    other = next(s for s in replicas if s is not leader)
    woken = asyncio.Event()
    leader.app[REPORT_DELIVERY].kick_relays.append(woken.set)
    other.app[REPORT_DELIVERY].kick()
    async with asyncio.timeout(2.0):
        await woken.wait()


async def overdue_consultation(service: Service) -> int:
    """A consultation whose images arrived three days ago: overdue, never escalated."""
    database = service.database
    await database.write(
        facility_store.add_facility,
        name="Clinic",
        kind="township",
        aet="CLINIC",
        timezone="Asia/Shanghai",
    )
    study = ReceivedStudy(
        orthanc_id="o-overdue",
        study_instance_uid="1.2.826.0.1.3680043.10.22.2",
        patient_id="PID-OVERDUE",
        patient_name="李四",
        accession_number="ACC-OVERDUE",
        modalities=("CT",),
        body_part="HEAD",
        instances_count=3,
        origins=(InstanceOrigin("DicomProtocol", "CLINIC", "10.0.0.7"),),
    )
    outcome = await database.write(
        receive_study, study, now=datetime.now(UTC) - timedelta(days=3), sla=SlaPolicy()
    )
    return outcome.consultation_ids[0]


def escalations(db, consultation_id: int) -> int:
    return int(
        db.execute(
            "SELECT count(*) FROM consultation_events WHERE consultation_id = ?"
            " AND type = 'escalated'",
            [consultation_id],
        ).fetchone()[0]
    )
