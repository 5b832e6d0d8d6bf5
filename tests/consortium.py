"""A consortium seeded once per test module: a township clinic, a county hospital and the regional
centre, a user of every role at each, consultations of the clinic in three states (open, waiting
for a claim, signed with a critical finding), a report template and two signers' certificates.

Built through the real app, a real Orthanc (C-STORE from the clinic's AE title) and real SQLite;
sessions are written straight into the session table (what a login writes), so that eighteen
users cost no eighteen argon2 hashes. Modules that share it (the authorisation matrix, the cache
headers) import :func:`consortium` as a module-scoped fixture.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.auth import identities, sessions
from service.clock import to_iso, utc_now
from service.demo.synthetic import StudySpec, make_study
from service.http.keys import CA
from service.settings import Settings
from service.storage import consultations as consultation_store
from service.storage import reports as report_store
from service.storage import users as user_store
from service.storage.scope import EVERYTHING

from . import backends
from .conftest import CHANGES_POLL_SECONDS, PASSWORD, Service, start_orthanc

ROLES = ("admin", "manager", "specialist", "radiographer", "clinician", "requester")

# Where a caller sits, seen from the clinic whose consultations the fixtures hold.
OWN = "own"  # the township clinic that sent the study and filed the requests
OTHER = "other"  # a county hospital: another facility of the consortium
CENTRE = "centre"  # the regional centre, whose readers read for everyone
PLACES = {
    OWN: ("Dongxiang Township Clinic", "township", "DONGXIANG_DR"),
    OTHER: ("Xiping County Hospital", "county", "XIPING_CT"),
    CENTRE: ("Regional Imaging Centre", "regional", "CENTRE_PACS"),
}

SIGNED_STUDY = StudySpec(
    "PID-SIGNED", "DONG^SIGNED", "CT", "HEAD", instances=2, accession_number="ACC-SIGNED"
)
CLAIM_STUDY = StudySpec("PID-CLAIM", "DONG^CLAIM", "CT", "CHEST", accession_number="ACC-CLAIM")
HELD_STUDY = StudySpec("PID-HELD", "DONG^HELD", "DX", "CHEST", accession_number="ACC-HELD")


@dataclass(frozen=True)
class Caller:
    """A user of the consortium with an open session."""

    role: str
    place: str
    user_id: int
    username: str
    headers: dict[str, str]


@dataclass
class Consortium:
    """The seeded consortium and the ids the tests address."""

    service: Service
    facilities: dict[str, int]
    callers: dict[tuple[str, str], Caller]
    open_id: int = 0
    """Filed by the clinic's requester, images pending, never claimed."""
    claim_id: int = 0
    """Images arrived, filed by the requester, unclaimed: for the claim route."""
    held_id: int = 0
    """Images arrived, claimed by the centre's specialist."""
    signed_id: int = 0
    """Signed (critical finding) by the centre's specialist; version 1."""
    signed_study: list[Any] = field(default_factory=list)
    template_id: int = 0
    centre_signer_serial: str = ""
    county_signer_serial: str = ""
    spare_user_id: int = 0
    spare_facility_id: int = 0

    @property
    def client(self) -> TestClient:
        return self.service.client

    @property
    def app(self) -> web.Application:
        return self.service.app

    def caller(self, role: str, place: str) -> Caller:
        return self.callers[(role, place)]

    async def new_session(self, user_id: int) -> dict[str, str]:
        """Bearer headers of a fresh session of ``user_id`` (what a login writes)."""
        token = secrets.token_urlsafe(32)
        await self.service.database.write(
            user_store.create_session,
            token_hash=sessions.token_hash(token),
            csrf_token=secrets.token_urlsafe(24),
            user_id=user_id,
            client_ip=None,
            expires_at=to_iso(utc_now() + timedelta(hours=8)),
        )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def consortium(
    tmp_path_factory: pytest.TempPathFactory, database_backend: str
) -> AsyncIterator[Consortium]:
    """The consortium's app on the module's engine (``database_backend``)."""
    directory: Path = tmp_path_factory.mktemp("consortium")
    orthanc = await start_orthanc(directory / "orthanc", "TELEREAD")
    credentials = orthanc.config.credentials
    on_postgresql = database_backend == "postgresql"
    settings = Settings(
        data_dir=directory / "var",
        database_url=backends.new_database_url(directory) if on_postgresql else None,
        orthanc_url=orthanc.url,
        orthanc_username=credentials.username,
        orthanc_password=credentials.password,
        orthanc_dicom_port=orthanc.config.dicom_port,
        stable_age=1,
        changes_poll_interval=CHANGES_POLL_SECONDS,
        delivery_retry_seconds=0.2,
        delivery_max_attempts=1,
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        world = await _seed(Service(client, client.app, orthanc))
        yield world
    finally:
        await client.close()
        await orthanc.kill()


async def _seed(service: Service) -> Consortium:
    facilities = {
        place: await service.add_facility(name, kind, aet)
        for place, (name, kind, aet) in PLACES.items()
    }
    world = Consortium(service, facilities, {})
    for place, facility_id in facilities.items():
        for role in ROLES:
            username = f"{role}_{place}"
            user_id = await service.add_user(username, role, facility_id)
            headers = await world.new_session(user_id)
            world.callers[(role, place)] = Caller(role, place, user_id, username, headers)
    world.spare_user_id = await service.add_user(
        "spare_radiographer", "radiographer", facilities[OTHER]
    )
    world.spare_facility_id = await service.add_facility("Spare Clinic", "township", "SPARE_CLINIC")
    await _consultations(world)
    await _sign(world)
    world.template_id = await service.database.write(
        report_store.save_template,
        {"name": "CT head normal", "modality": "CT", "body_part": "HEAD", "findings": "Normal."},
        None,
        to_iso(utc_now()),
    )
    world.centre_signer_serial = await _signer(world, "signer_centre", CENTRE)
    world.county_signer_serial = await _signer(world, "signer_county", OTHER)
    return world


async def _file(world: Consortium, **request: str) -> int:
    response = await world.client.post(
        "/api/consultations",
        headers=world.caller("requester", OWN).headers,
        json={"priority": "urgent"} | request,
    )
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def _consultations(world: Consortium) -> None:
    """The requester files four requests; the clinic's modality sends three of the studies; the
    centre's specialist claims one."""
    world.signed_study = make_study(SIGNED_STUDY)
    claim_study, held_study = make_study(CLAIM_STUDY), make_study(HELD_STUDY)
    world.signed_id = await _file(
        world, study_instance_uid=str(world.signed_study[0].StudyInstanceUID)
    )
    world.claim_id = await _file(world, study_instance_uid=str(claim_study[0].StudyInstanceUID))
    world.held_id = await _file(world, study_instance_uid=str(held_study[0].StudyInstanceUID))
    world.open_id = await _file(world, accession_number="ACC-OPEN")
    await world.service.c_store(world.signed_study + claim_study + held_study, PLACES[OWN][2])

    async def arrived() -> bool:
        rows = [
            await world.service.database.read(consultation_store.get_consultation, EVERYTHING, cid)
            for cid in (world.signed_id, world.claim_id, world.held_id)
        ]
        return all(row["received_at"] for row in rows)

    await world.service.wait_for(arrived)
    claimed = await world.client.post(
        f"/api/consultations/{world.held_id}/claim",
        headers=world.caller("specialist", CENTRE).headers,
    )
    assert claimed.status == 200, await claimed.text()


async def _sign(world: Consortium) -> None:
    """The centre's specialist claims, writes (critical finding) and signs the first study."""
    client, cid = world.client, world.signed_id
    li = world.caller("specialist", CENTRE).headers
    claimed = await client.post(f"/api/consultations/{cid}/claim", headers=li)
    assert claimed.status == 200, await claimed.text()
    draft = {"findings": "Hyperdense focus.", "impression": "Acute bleed.", "critical": True}
    saved = await client.put(f"/api/consultations/{cid}/report/draft", headers=li, json=draft)
    assert saved.status == 200, await saved.text()
    signed = await client.post(
        f"/api/consultations/{cid}/report/sign", headers=li, json={"password": PASSWORD}
    )
    assert signed.status == 201, await signed.text()


async def _signer(world: Consortium, username: str, place: str) -> str:
    """A specialist of ``place`` with a consortium certificate; its serial (hex)."""
    database = world.service.database
    user_id = await world.service.add_user(username, "specialist", world.facilities[place])
    headers = await world.new_session(user_id)
    token = headers["Authorization"].removeprefix("Bearer ")
    user = await sessions.resolve(database, token, utc_now())
    assert user is not None
    identity = await identities.unlocked_identity(
        database, world.app[CA], user, PASSWORD, utc_now()
    )
    return identity.serial_hex
