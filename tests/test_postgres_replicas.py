"""Several teleread replicas on one PostgreSQL database: what one SQLite writer gave for free.

Two apps, each with its own :class:`PostgresDatabase` (its own connections, writer thread and
notification listener), share one database, as replicas behind the proxy do: a claim is still
won once, the audit trail is still one chain, a session ended through one replica is refused by
the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.audit.verify import verify_database
from service.intake.intake import (
    ConsultationRequest,
    InstanceOrigin,
    ReceivedStudy,
    file_request,
    receive_study,
)
from service.storage import facilities as facility_store
from service.storage import users as user_store
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

from . import backends
from .conftest import PASSWORD, Service, suite_settings

READERS = 20


@pytest.fixture(scope="module")
async def replicas(tmp_path_factory) -> AsyncIterator[list[Service]]:
    """Two apps on one PostgreSQL database, with a centre, twenty readers and one study."""
    base = tmp_path_factory.mktemp("replicas")
    url = backends.new_database_url(base)
    services = []
    for n in range(2):
        settings = replace(suite_settings(base / f"r{n}", None), database_url=url)
        client = TestClient(TestServer(create_app(settings, orthanc=False)))
        await client.start_server()
        services.append(Service(client, client.app, None))
    try:
        yield services
    finally:
        for service in services:
            await service.client.close()


@pytest.fixture(scope="module")
async def world(replicas) -> dict[str, int]:
    first = replicas[0]
    database = first.database
    clinic = await database.write(
        facility_store.add_facility,
        name="Clinic",
        kind="township",
        aet="CLINIC",
        timezone="Asia/Shanghai",
    )
    centre = await database.write(
        facility_store.add_facility,
        name="Centre",
        kind="regional",
        aet="CENTRE",
        timezone="Asia/Shanghai",
    )
    ids = {"clinic": clinic, "centre": centre}
    for n in range(READERS):
        ids[f"dr{n}"] = await first.add_user(f"dr{n}", "specialist", centre)
    ids["wang"] = await first.add_user("wang", "radiographer", clinic)
    now = datetime.now(UTC)
    study = ReceivedStudy(
        orthanc_id="o1",
        study_instance_uid="1.2.3.4",
        patient_id="PID-REPLICA",
        patient_name="张三",
        accession_number="ACC1",
        modalities=("CT",),
        body_part="HEAD",
        instances_count=3,
        origins=(InstanceOrigin("DicomProtocol", "CLINIC", "10.0.0.7"),),
    )
    outcome = await database.write(receive_study, study, now=now, sla=SlaPolicy())
    await database.write(
        file_request,
        ConsultationRequest(Priority.URGENT, study_instance_uid="1.2.3.4"),
        facility_id=clinic,
        user_id=ids["wang"],
        now=now,
        sla=SlaPolicy(),
    )
    ids["cid"] = outcome.consultation_ids[0]
    return ids


async def test_exactly_one_of_twenty_claims_through_two_replicas_wins(replicas, world):
    """Twenty readers claim the same study at once, half through each replica: PostgreSQL
    aborts the interleavings no serial order allows, they run again, and exactly one wins."""
    logins = [await replicas[n % 2].login(f"dr{n}") for n in range(READERS)]
    responses = await asyncio.gather(
        *(
            replicas[n % 2].client.post(f"/api/consultations/{world['cid']}/claim", headers=h)
            for n, h in enumerate(logins)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [409] * (READERS - 1)
    winner = [await r.json() for r in responses if r.status == 200][0]
    assert {(await r.json())["claimed_by"] for r in responses if r.status == 409} == {
        winner["claimed_by"]
    }
    detail = await replicas[1].client.get(f"/api/consultations/{world['cid']}", headers=logins[1])
    events = [e["type"] for e in (await detail.json())["events"]]
    assert events.count("claimed") == 1


async def test_the_audit_trail_stays_one_chain_across_replicas(replicas, world):
    """Audited reads through both replicas at once append to one hash chain: it verifies, and
    no two records follow the same one."""
    headers = [await replicas[n].login(f"dr{n + 2}") for n in range(2)]
    before = await replicas[0].database.read(_record_count)
    await asyncio.gather(
        *(replicas[n % 2].client.get("/api/worklist", headers=headers[n % 2]) for n in range(60))
    )
    database = replicas[1].database
    verification = await database.read(verify_database)
    assert verification.ok, verification
    assert await database.read(_record_count) >= before + 60
    assert await database.read(_forks) == 0


async def test_a_session_ended_on_one_replica_is_refused_by_the_other(replicas, world):
    """The other replica's session cache hears of the logout (LISTEN/NOTIFY) and asks again."""
    headers = await replicas[0].login("dr5")
    assert (await replicas[1].client.get("/api/worklist", headers=headers)).status == 200
    assert (await replicas[0].client.post("/api/logout", headers=headers)).status == 200
    deadline = time.monotonic() + 5
    while True:
        status = (await replicas[1].client.get("/api/worklist", headers=headers)).status
        if status == 401 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert status == 401


async def test_a_user_disabled_through_one_replica_cannot_log_in_through_the_other(replicas, world):
    await replicas[0].database.write(user_store.update_user, world["dr6"], disabled=True)
    response = await replicas[1].client.post(
        "/api/login", json={"username": "dr6", "password": PASSWORD}
    )
    assert response.status in (401, 403)


def _record_count(db) -> int:
    return int(db.execute("SELECT count(*) FROM audit_log").fetchone()[0])


def _forks(db) -> int:
    return int(
        db.execute(
            "SELECT count(*) FROM (SELECT prev_hash FROM audit_log GROUP BY prev_hash"
            " HAVING count(*) > 1) AS forked"
        ).fetchone()[0]
    )
