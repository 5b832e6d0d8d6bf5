"""FHIR R4 under /fhir (docs/integration.md#fhir-r4), driven over HTTP against the seeded
consortium (tests/consortium.py: real Orthanc, real SQLite, a signed report): every answer and
every body sent parses with the ``fhir.resources`` R4B models, and a search goes through
``fhirclient``, a FHIR R4 client nobody here wrote.

Scope is the API's: the clinic's staff see the clinic's patients, orders, studies and reports;
another facility's are 404 on read and absent from searches; the regional centre reads them all.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhirclient.models.servicerequest import ServiceRequest as ClientServiceRequest
from fhirclient.server import FHIRServer

from service.fhir.identity import parse_patient_logical_id, patient_logical_id
from service.storage import consultations as consultation_store
from service.storage.audit import audit_rows

from .conftest import PASSWORD
from .consortium import CENTRE, OTHER, OWN, SIGNED_STUDY, Consortium, consortium

__all__ = ["consortium"]  # the module-scoped fixture, imported for pytest

pytestmark = pytest.mark.orthanc

FHIR_JSON = "application/fhir+json"
CLINIC_SYSTEM = "urn:teleread:patient-id:DONGXIANG_DR"


async def _get(world: Consortium, path: str, headers: dict[str, str] | None = None, **params):
    response = await world.client.get(path, headers=headers or {}, params=params)
    assert response.content_type == FHIR_JSON, (path, response.status, await response.text())
    return response.status, await response.json()


def _outcome(body: dict[str, Any]) -> OperationOutcome:
    return OperationOutcome.model_validate(body)


def _bundle(body: dict[str, Any], model: Any) -> list[Any]:
    bundle = Bundle.model_validate(body)
    assert bundle.type == "searchset"
    return [model.model_validate(e.resource.model_dump()) for e in bundle.entry or []]


def _order(**extra: Any) -> dict[str, Any]:
    """A county HIS's order as it would post it: a contained patient with a Chinese name."""
    return {
        "resourceType": "ServiceRequest",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "p",
                "identifier": [{"system": "urn:his:mrn", "value": "FHIR-PID-1"}],
                "name": [{"family": "王", "given": ["小明"]}],
                "birthDate": "1970-03-04",
                "gender": "male",
            }
        ],
        "identifier": [
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                     "code": "PLAC"}]},
                "system": "urn:his:orders",
                "value": "HIS-ORD-77",
            },
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                     "code": "ACSN"}]},
                "value": "ACC-FHIR-1",
            },
        ],
        "status": "active",
        "intent": "order",
        "priority": "stat",
        "code": {
            "coding": [
                {"code": "CTHEAD", "display": "CT head without contrast"},
                {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"},
            ]
        },
        "bodySite": [{"text": "HEAD"}],
        "subject": {"reference": "#p"},
        "reasonCode": [{"text": "Haemorrhage?"}],
        "note": [{"text": "Fell from a ladder, GCS 13."}],
    } | extra  # fmt: skip


async def test_metadata_formats_and_errors_speak_fhir(consortium: Consortium):
    """The CapabilityStatement needs no token and lists exactly the four resources; XML is 406,
    no token 401, an unknown type 404, a wrong method 405, each an OperationOutcome."""
    status, body = await _get(consortium, "/fhir/metadata")
    assert status == 200
    statement = CapabilityStatement.model_validate(body)
    assert statement.fhirVersion == "4.3.0"
    served = {r.type: r for r in statement.rest[0].resource}
    assert set(served) == {"Patient", "ServiceRequest", "ImagingStudy", "DiagnosticReport"}
    assert {p.name for p in served["ServiceRequest"].searchParam} >= {
        "patient", "status", "requester"
    }  # fmt: skip
    status, _ = await _get(consortium, "/fhir/metadata", _format="json")
    assert status == 200
    status, body = await _get(consortium, "/fhir/metadata", _format="xml")
    assert status == 406 and _outcome(body).issue[0].code == "not-supported"
    status, _ = await _get(consortium, "/fhir/metadata", {"Accept": "application/fhir+xml"})
    assert status == 406
    response = await consortium.client.get("/fhir/Patient")
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert _outcome(await response.json()).issue[0].code == "login"
    headers = consortium.caller("radiographer", OWN).headers
    status, body = await _get(consortium, "/fhir/Observation", headers)
    assert status == 404 and _outcome(body).issue[0].code == "not-found"
    response = await consortium.client.delete("/fhir/Patient/f1-QQ", headers=headers)
    assert response.status == 405 and _outcome(await response.json())
    status, body = await _get(consortium, "/fhir/Patient", headers, name="DONG")
    assert status == 400 and "name" in _outcome(body).issue[0].diagnostics


async def test_patients_are_read_and_found_only_in_scope(consortium: Consortium):
    """The clinic and the centre find the clinic's patient by identifier and read it by id;
    a county hospital gets 404 and an empty search; each call is audited as fhir.*."""
    pid = SIGNED_STUDY.patient_id
    logical_id = patient_logical_id(consortium.facilities[OWN], pid)
    for place in (OWN, CENTRE):
        headers = consortium.caller("specialist" if place == CENTRE else "clinician", place).headers
        status, body = await _get(
            consortium, "/fhir/Patient", headers, identifier=f"{CLINIC_SYSTEM}|{pid}"
        )
        assert status == 200
        (patient,) = _bundle(body, Patient)
        assert patient.id == logical_id and patient.identifier[0].value == pid
        status, body = await _get(consortium, f"/fhir/Patient/{logical_id}", headers)
        assert status == 200 and Patient.model_validate(body).name[0].family == "DONG"
    county = consortium.caller("clinician", OTHER).headers
    status, body = await _get(consortium, f"/fhir/Patient/{logical_id}", county)
    assert status == 404 and _outcome(body).issue[0].code == "not-found"
    status, body = await _get(consortium, "/fhir/Patient", county, identifier=pid)
    assert status == 200 and _bundle(body, Patient) == []
    rows = await consortium.service.database.read(lambda db: list(audit_rows(db)))
    reads = [r for r in rows if r["action"] == "fhir.read" and r["resource_id"] == logical_id]
    assert {r["outcome"] for r in reads} == {"success", "denied"}
    assert any(r["patient_id"] == pid for r in reads)


async def test_a_posted_order_is_a_consultation_and_revoking_it_cancels_it(
    consortium: Consortium,
):
    """POST ServiceRequest files a request the worklist API shows with the order's fields; an
    invalid one is a 400 that names the problem and files nothing; naming another facility's
    study is 409; fhirclient finds the order; PUT status=revoked cancels it."""
    world, database = consortium, consortium.service.database
    requester = world.caller("requester", OWN).headers
    before = await database.read(consultation_store.count_consultations)
    response = await world.client.post(
        "/fhir/ServiceRequest", json=_order(), headers=requester | {"Content-Type": FHIR_JSON}
    )
    assert response.status == 201, await response.text()
    created = ServiceRequest.model_validate(await response.json())
    assert response.headers["Location"].endswith(f"/fhir/ServiceRequest/{created.id}")
    assert created.status == "active" and created.priority == "stat"
    assert created.subject.reference == "Patient/" + patient_logical_id(
        world.facilities[OWN], "FHIR-PID-1"
    )
    detail = await world.client.get(f"/api/consultations/{created.id}", headers=requester)
    item = await detail.json()
    assert (item["patient_id"], item["patient_name"], item["accession_number"]) == (
        "FHIR-PID-1", "王^小明", "ACC-FHIR-1"
    )  # fmt: skip
    assert (item["priority"], item["modality"], item["body_part"]) == ("stat", "CT", "HEAD")
    assert item["clinical_history"] == "Fell from a ladder, GCS 13."
    row = await database.read(
        consultation_store.find_by_accession, world.facilities[OWN], "ACC-FHIR-1"
    )
    assert (row["requested_via"], row["placer_order_number"]) == ("fhir", "HIS-ORD-77")
    assert (row["requested_procedure_code"], row["patient_birth_date"]) == ("CTHEAD", "19700304")

    again = await world.client.post("/fhir/ServiceRequest", json=_order(), headers=requester)
    assert again.status == 409  # the same order twice: request_exists, no second one
    assert _outcome(await again.json()).issue[0].details.coding[0].code == "request_exists"

    invalid = _order(priority="whenever")
    del invalid["subject"]  # fhir.resources: "subject  Field required"
    response = await world.client.post("/fhir/ServiceRequest", json=invalid, headers=requester)
    assert response.status == 400
    assert "subject" in _outcome(await response.json()).issue[0].diagnostics
    response = await world.client.post(
        "/fhir/ServiceRequest", json=_order(priority="whenever"), headers=requester
    )
    assert response.status == 400 and "priority" in (await response.text())
    foreign = _order(
        supportingInfo=[
            {"identifier": {"system": "urn:dicom:uid",
                            "value": f"urn:oid:{world.signed_study[0].StudyInstanceUID}"}}
        ]
    )  # fmt: skip
    county = world.caller("requester", OTHER).headers
    response = await world.client.post("/fhir/ServiceRequest", json=foreign, headers=county)
    assert response.status == 409
    assert _outcome(await response.json()).issue[0].code == "conflict"
    assert await database.read(consultation_store.count_consultations) == before + 1

    server = FHIRServer(None, base_uri=str(world.client.make_url("/fhir/")))
    server.session.headers.update(requester)
    patient = created.subject.reference
    found = await asyncio.to_thread(
        lambda: list(
            ClientServiceRequest.where(
                struct={
                    "patient": patient,
                    "status": "active",
                    "requester": f"Organization/{world.facilities[OWN]}",
                }
            ).perform_resources_iter(server)
        )
    )
    assert [r.id for r in found] == [created.id]
    assert found[0].identifier[0].value == "HIS-ORD-77"
    status, body = await _get(world, "/fhir/ServiceRequest", county, patient=patient)
    assert _bundle(body, ServiceRequest) == []
    status, body = await _get(world, f"/fhir/ServiceRequest/{created.id}", county)
    assert status == 404

    revoked = created.model_dump(mode="json", exclude_none=True) | {"status": "revoked"}
    response = await world.client.put(
        f"/fhir/ServiceRequest/{created.id}", json=revoked, headers=requester
    )
    assert response.status == 200, await response.text()
    assert ServiceRequest.model_validate(await response.json()).status == "revoked"
    detail = await world.client.get(f"/api/consultations/{created.id}", headers=requester)
    assert (await detail.json())["status"] == "cancelled"
    response = await world.client.put(
        f"/fhir/ServiceRequest/{created.id}", json=revoked | {"status": "active"}, headers=requester
    )
    assert response.status == 400


async def test_studies_and_signed_reports_of_a_patient(consortium: Consortium):
    """ImagingStudy lists the received study's series with a DICOMweb endpoint on teleread;
    DiagnosticReport carries the signed report's conclusion and its PDF by URL, which opens
    with the same token; a county hospital finds neither."""
    world = consortium
    patient = "Patient/" + patient_logical_id(world.facilities[OWN], SIGNED_STUDY.patient_id)
    headers = world.caller("clinician", OWN).headers
    # The CT images, and the signed report teleread stored back with them (PDF and SR) once
    # report delivery has run (it follows the signature, so wait for it).
    deadline = time.monotonic() + 30
    while True:
        status, body = await _get(world, "/fhir/ImagingStudy", headers, patient=patient)
        assert status == 200
        (study,) = _bundle(body, ImagingStudy)
        series = {s.modality.code: s.numberOfInstances for s in study.series}
        if len(series) == 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert study.identifier[0].value == f"urn:oid:{world.signed_study[0].StudyInstanceUID}"
    assert series["CT"] == SIGNED_STUDY.instances
    assert study.numberOfInstances == sum(series.values()) and len(series) == 3, series
    (endpoint,) = study.contained
    assert endpoint.address == str(world.client.make_url("/dicom-web"))
    status, body = await _get(
        world,
        "/fhir/DiagnosticReport",
        headers,
        **{"based-on": f"ServiceRequest/{world.signed_id}"},
    )
    (report,) = _bundle(body, DiagnosticReport)
    assert report.status == "final" and report.conclusion == "Acute bleed."
    assert report.subject.reference == patient
    (form,) = report.presentedForm
    assert form.contentType == "application/pdf"
    pdf = await world.client.session.get(form.url, headers=headers)  # the absolute URL
    assert pdf.status == 200 and (await pdf.read()).startswith(b"%PDF")
    county = world.caller("clinician", OTHER).headers
    for path in ("/fhir/ImagingStudy", "/fhir/DiagnosticReport"):
        status, body = await _get(world, path, county, patient=patient)
        assert status == 200 and Bundle.model_validate(body).total == 0
    status, _ = await _get(world, f"/fhir/DiagnosticReport/{world.signed_id}", county)
    assert status == 404

    reader = world.caller("specialist", CENTRE).headers
    path = f"/api/consultations/{world.signed_id}/report"
    response = await world.client.post(f"{path}/correction", headers=reader)
    assert response.status == 200, await response.text()
    draft = {"findings": "Hyperdense focus.", "impression": "Acute subdural bleed."}
    response = await world.client.put(f"{path}/draft", headers=reader, json=draft)
    assert response.status == 200, await response.text()
    response = await world.client.post(f"{path}/sign", headers=reader, json={"password": PASSWORD})
    assert response.status == 201, await response.text()
    status, body = await _get(world, f"/fhir/DiagnosticReport/{world.signed_id}", headers)
    corrected = DiagnosticReport.model_validate(body)
    assert (corrected.status, corrected.conclusion) == ("amended", "Acute subdural bleed.")
    assert corrected.presentedForm[0].url.endswith("/report/versions/2/pdf")


@pytest.mark.parametrize("patient_id", ["DX0001", "住院号-42", "a_b/c d", "x" * 45])
def test_a_patient_id_survives_its_logical_id(patient_id: str):
    """Any patient ID up to 45 bytes gives a valid FHIR id (``[A-Za-z0-9\\-.]{1,64}``) that
    reads back as the same facility and ID; ids teleread never made name nobody."""
    logical_id = patient_logical_id(7, patient_id)
    assert Patient.model_validate({"resourceType": "Patient", "id": logical_id}).id == logical_id
    assert parse_patient_logical_id(logical_id) == (7, patient_id)
    for made_up in ("7-RFgwMDAx", "f7-", "f7-RFgwMDAx=", "f7-!!", "f7-RFgwMDAxA", "f7-/w"):
        assert parse_patient_logical_id(made_up) is None, made_up
