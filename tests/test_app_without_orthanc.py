"""The app built without an image archive (``create_app(..., orthanc=False)``), which the tests of
administration, sign-in, claims and reports use: everything else works, and whatever needs
Orthanc answers as when Orthanc is down."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.http.keys import FOLLOWER, HEALTH, ORTHANC
from service.intake.intake import InstanceOrigin, ReceivedStudy, receive_study
from service.runtime.orthanc.client import AbsentOrthanc
from worklists.sla import SlaPolicy


@pytest.fixture
def app_orthanc() -> None:
    """The subject of this module: no Orthanc."""
    return None


async def test_no_change_follower_and_no_supervisor_run(service):
    """No Orthanc process, no /changes follower, no supervisor: nothing polls an archive."""
    assert isinstance(service.app[ORTHANC], AbsentOrthanc)
    assert service.app.get(FOLLOWER) is None
    assert service.app[HEALTH].supervisor is None


async def test_healthz_says_the_archive_is_not_there(service):
    """/healthz is 503 naming Orthanc, as with an Orthanc that does not answer."""
    response = await service.client.get("/healthz")
    assert response.status == 503
    assert "Orthanc" in (await response.json())["detail"]


async def test_routes_that_need_images_answer_503_pacs_unavailable(service):
    """The viewer of a received study answers the JSON error shape of an unreachable archive."""
    centre = await service.add_facility("Centre", "regional", "CENTRE")
    await service.add_user("reader", "specialist", centre)
    study = ReceivedStudy(
        orthanc_id="o-absent",
        study_instance_uid="1.2.3.9",
        patient_id="PID-ABSENT",
        patient_name="ABSENT^STUDY",
        accession_number="ACC-ABSENT",
        modalities=("CT",),
        body_part="HEAD",
        instances_count=1,
        origins=(InstanceOrigin("DicomProtocol", "CENTRE", "10.0.0.7"),),
    )
    outcome = await service.database.write(
        receive_study, study, now=datetime.now(UTC), sla=SlaPolicy()
    )
    headers = await service.login("reader")
    response = await service.client.get(
        f"/api/consultations/{outcome.consultation_ids[0]}/viewer", headers=headers
    )
    assert response.status == 503, await response.text()
    assert (await response.json())["error"] == "pacs_unavailable"


async def test_a_facility_is_created_but_not_registered(service):
    """The database is the truth: the facility exists, its AE title is not registered."""
    regional = await service.add_facility("Centre", "regional", "CENTRE")
    await service.add_user("root", "admin", regional)
    response = await service.client.post(
        "/api/admin/facilities",
        headers=await service.login("root"),
        json={"name": "Hexi Township", "kind": "township", "aet": "HEXI_CR"},
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["registered"] is False
