"""Facility isolation: every role of another facility calls every data endpoint for a clinic's
resources and gets 403 or 404 (or an empty list), and the answers leak nothing.

Every route of the app is either exercised here or listed in NOT_PATIENT_DATA with a reason, so a
new endpoint cannot ship without joining the matrix.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.fhir.identity import patient_logical_id
from service.storage.patients import identity as patient_identity

from .conftest import Service
from .module_app import running_service
from .peer_review_world import clinic_a_peer_review

ROLES = ("radiographer", "clinician", "requester", "specialist", "manager", "admin")
SECRETS = ("SECRET_PID_A", "保密患者", "A_ACC_777", "Clinic A clinical question")

# Routes that carry no patient data of any facility (checked: every other route is in MATRIX).
NOT_PATIENT_DATA = {
    "GET /",
    # QC aggregates and the recognition list: counts and shares per facility × exam item × month,
    # no patient data; facility scoping (404 for another facility) in tests/test_quality_http.py.
    "GET /api/quality/scores",
    "POST /api/quality/recompute",
    "GET /api/recognition",
    "GET /api/recognition/history",
    "GET /recognition",
    "GET /fhir/metadata",  # the CapabilityStatement: what the server does, no data
    "GET /login",
    "GET /worklist",
    # The viewer page is a shell: its data comes from the scoped, audited viewer API (in MATRIX).
    "GET /viewer/{id}",
    # PS3.6 keywords by tag, the same for everyone.
    "GET /api/dicom/dictionary",
    "GET /upload",
    "GET /account",
    "GET /healthz",
    "GET /api/openapi.json",
    "POST /api/login",
    "POST /api/logout",
    "GET /api/me",
    "GET /api/tokens",
    "POST /api/tokens",
    "DELETE /api/tokens/{id}",
    "GET /api/facilities",
    # The bell's badge: a count of one's own notices (the list itself is in MATRIX).
    "GET /api/notifications/unread",
    # Administration (admins only) and one's own password: accounts and facilities, no patients.
    "GET /admin/users",
    "GET /admin/facilities",
    "GET /admin/patients",  # the page only; its data is GET /api/admin/patients/* (in MATRIX)
    "GET /audit",
    "GET /api/admin/users",
    "POST /api/admin/users",
    "PATCH /api/admin/users/{id}",
    "POST /api/admin/users/{id}/disable",
    "POST /api/admin/users/{id}/enable",
    "POST /api/admin/users/{id}/password",
    "GET /api/admin/facilities",
    "GET /api/admin/login-failures",
    "POST /api/admin/facilities",
    "PATCH /api/admin/facilities/{id}",
    "POST /api/me/password",
    # The duty roster (managers of the regional centre, admins): accounts and times only.
    "GET /api/roster",
    "POST /api/roster",
    "DELETE /api/roster/{id}",
    "GET /api/roster/people",
    "GET /roster",
    # One's own saved worklist filters: filter codes and facility ids, no patient data
    # (another user's filter is not found: tests/test_saved_filters.py).
    "GET /api/worklist/filters",
    "POST /api/worklist/filters",
    "DELETE /api/worklist/filters/{id}",
    # Page shells: the consultation's data comes from the scoped API routes in MATRIX.
    # Report templates, one's own certificates, the CA and revocation: no patient data.
    "GET /api/report-templates",
    "POST /api/report-templates",
    "PUT /api/report-templates/{id}",
    "DELETE /api/report-templates/{id}",
    "GET /api/signing/identities",
    "POST /api/signing/identities/pkcs12",
    "POST /api/certificates/{serial}/revoke",
    "GET /api/ca/certificate",
    "GET /api/ca/crl",
    # Public verification: the verdict, initials, study date, signer and facility only (the
    # unguessable code is the key; tests/test_reports.py checks no name or id comes back).
    "GET /api/verify/{code}",
    "POST /api/verify",
    "GET /verify/{code}",
    "GET /request",
    "GET /consultations/{id}",
    # The dashboard page is a shell: its charts and tables come from routes in MATRIX.
    "GET /dashboard",
    # Report page shells: their data comes from the scoped, audited report/portal API in MATRIX.
    "GET /portal",
    "GET /consultations/{id}/report",
    "GET /report-templates",
    # OHIF's page, its files and its generated configuration (no patient data: its DICOMweb
    # calls are the scoped routes in MATRIX).
    "GET /ohif",
    "GET /ohif/",
    "GET /ohif/app-config.js",
    "GET /ohif/{path}",
}


@pytest.fixture(scope="module")
async def isolated(
    tmp_path_factory, database_backend
) -> AsyncIterator[tuple[Service, dict[str, Any]]]:
    """One app and world for the module's nine tests (built for each before, ~2.5 s each): no
    caller of clinic B changes anything of clinic A's, and clinic A's own requests filed while
    an event stream is read (fresh study UIDs) change nothing the tests look at."""
    directory = tmp_path_factory.mktemp("isolation")
    async with running_service(directory) as (service, _):
        yield service, await seed(service)


@pytest.fixture
def service(isolated) -> Service:
    """The module's app (replaces conftest's app-per-test fixture of the same name)."""
    return isolated[0]


@pytest.fixture
def world(isolated) -> dict[str, Any]:
    return isolated[1]


async def seed(service: Service) -> dict[str, Any]:
    """Clinic A with a consultation (request + images); clinic B with a user of every role."""
    a = await service.add_facility("Clinic A", "township", "CLINIC_A")
    b = await service.add_facility("Clinic B", "township", "CLINIC_B")
    await service.add_user("wang_a", "radiographer", a)
    for role in ROLES:
        await service.add_user(f"{role}_b", role, b)
    study = make_study(
        StudySpec(
            "SECRET_PID_A", "保密患者", "CT", "HEAD", instances=2, accession_number="A_ACC_777"
        )
    )
    await service.c_store(study, "CLINIC_A")
    wang = await service.login("wang_a")
    uid = str(study[0].StudyInstanceUID)

    async def ingested():
        items = (await service.worklist(wang))["items"]
        return items and items[0]["received_at"] and items

    items = await service.wait_for(ingested)
    filed = await service.client.post(
        "/api/consultations",
        headers=wang,
        json={
            "study_instance_uid": uid,
            "priority": "urgent",
            "clinical_question": "Clinic A clinical question",
        },
    )
    assert filed.status == 200, await filed.text()
    notification = await _notify_clinic_a(service, a, items[0]["id"])
    repeat_alert = await _repeat_alert_of_clinic_a(service, a)
    posted = await service.client.post(
        f"/api/consultations/{items[0]['id']}/messages",
        headers=wang,
        json={"body": "Clinic A clinical question in the thread"},
    )
    assert posted.status == 201, await posted.text()
    return {
        "consultation": items[0]["id"],
        "uid": uid,
        "study": study,
        "a": a,
        "b": b,
        "notification": notification,
        "repeat_alert": repeat_alert,
    }


async def _repeat_alert_of_clinic_a(service, facility_a: int) -> int:
    """A repeat-exam alert clinic A's requester has not answered yet."""
    from service.storage.repeat_alerts import insert_alert

    row = {
        "facility_id": facility_a,
        "patient_id": "SECRET_PID_A",
        "modality": "CT",
        "body_part": "HEAD",
        "window_days": 7,
        "matches": [{"facility_name": "Clinic A", "impression": "保密患者"}],
        "source": "web",
        "decision": "pending",
        "created_at": "2026-01-01T00:00:00.000000Z",
    }
    return await service.database.write(insert_alert, row)


async def _notify_clinic_a(service, facility_a: int, consultation_id: int) -> int:
    """An in-app notice for clinic A's radiographer about A's consultation."""
    from service.storage.notifications import add_notifications
    from service.storage.users import user_by_username

    user = await service.database.read(user_by_username, "wang_a")
    row = {
        "user_id": user["id"],
        "kind": "stat",
        "consultation_id": consultation_id,
        "title": f"STAT #{consultation_id}",
        "created_at": "2026-01-01T00:00:00.000000Z",
    }
    [notification_id] = await service.database.write(add_notifications, [row])
    return notification_id


def assert_no_leak(text: str, secrets: tuple[str, ...] = SECRETS) -> None:
    """No secret in the body, raw or JSON-escaped (json_response escapes non-ASCII)."""
    for secret in secrets:
        for form in (secret, json.dumps(secret)[1:-1]):
            assert form not in text, f"leaked {secret!r}"


def upload_form(study) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(
        "files",
        io.BytesIO(dataset_bytes(study[0])),
        filename="a.dcm",
        content_type="application/dicom",
    )
    return form


def stow_body(study) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("related", boundary="teleread-isolation")
    writer.headers["Content-Type"] = (
        'multipart/related; type="application/dicom"; boundary=teleread-isolation'
    )
    part = writer.append(dataset_bytes(study[0]))
    part.headers["Content-Type"] = "application/dicom"
    return writer


FRESH_UIDS = itertools.count(1)


class StreamRead:
    """What an event stream sent during a short window (status and text, like a response)."""

    def __init__(self, status: int, body: str) -> None:
        self.status, self.body = status, body

    async def text(self) -> str:
        return self.body


async def read_events_while_clinic_a_changes(service, headers, world) -> StreamRead:
    """Open the worklist event stream, have clinic A file a stat request, read for a while."""
    response = await service.client.get("/api/worklist/events", headers=headers)
    if response.status != 200:
        return StreamRead(response.status, await response.text())
    changed = await service.client.post(
        "/api/consultations",
        headers=await service.login("wang_a"),
        json={
            "study_instance_uid": f"1.2.826.0.1.3680043.10.9.{next(FRESH_UIDS)}",
            "priority": "stat",
        },
    )
    assert changed.status == 201, await changed.text()
    received = b""
    try:
        async with asyncio.timeout(0.7):
            while chunk := await response.content.readany():
                received += chunk
    except TimeoutError:
        pass
    response.close()
    return StreamRead(200, received.decode())


def fhir_order_of_clinic_a_study(uid: str) -> dict:
    """A FHIR order naming clinic A's study UID (what ``POST /api/consultations`` is tried with)."""
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "contained": [
            {"resourceType": "Patient", "id": "p",
             "identifier": [{"value": "SECRET_PID_A"}], "name": [{"family": "X"}]}
        ],
        "subject": {"reference": "#p"},
        "identifier": [{"system": "urn:his:orders", "value": "ISO-1"}],
        "code": {"text": "CT head"},
        "reasonCode": [{"text": "Clinic B asks"}],
        "supportingInfo": [{"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}}],
    }  # fmt: skip


async def call(service, headers, route: str, world):
    """Call one route as the caller would to reach clinic A's data."""
    c = service.client
    cid, uid = world["consultation"], world["uid"]
    match route:
        case "GET /api/worklist":
            return await c.get(
                "/api/worklist", headers=headers, params={"facility": str(world["a"])}
            )
        case "GET /api/consultations/{id}":
            return await c.get(f"/api/consultations/{cid}", headers=headers)
        case "GET /ohif/consultations/{id}":  # "Open in OHIF": a redirect naming the study
            return await c.get(f"/ohif/consultations/{cid}", headers=headers, allow_redirects=False)
        case "POST /api/consultations":
            return await c.post(
                "/api/consultations",
                headers=headers,
                json={"study_instance_uid": uid, "priority": "stat"},
            )
        case "POST /api/studies":
            return await c.post("/api/studies", headers=headers, data=upload_form(world["study"]))
        case "POST /dicom-web/studies" | "POST /dicom-web/studies/{study}":
            return await c.post(
                f"/dicom-web/studies/{uid}", headers=headers, data=stow_body(world["study"])
            )
        case "GET /api/worklist/events":
            return await read_events_while_clinic_a_changes(service, headers, world)
        case "GET /api/admin/quarantine" | "GET /api/admin/hl7-outbox":
            return await c.get(route.split(" ", 1)[1], headers=headers)
        case "POST /api/admin/hl7-outbox/{id}/retry":
            return await c.post("/api/admin/hl7-outbox/1/retry", headers=headers)
        case "GET /api/admin/patient-merges":
            return await c.get("/api/admin/patient-merges", headers=headers)
        case "POST /api/repeat-alerts/{id}/withdraw":
            alert = world["repeat_alert"]
            return await c.post(f"/api/repeat-alerts/{alert}/withdraw", headers=headers)
        case "GET /api/admin/patients/candidates" | "GET /api/admin/patients/changes":
            return await c.get(route.split(" ", 1)[1], headers=headers)
        case (
            "POST /api/admin/patients/candidates/{id}/link"
            | "POST /api/admin/patients/candidates/{id}/reject"
            | "POST /api/admin/patients/identities/{id}/unlink"
            | "POST /api/admin/patients/changes/{id}/reverse"
        ):
            path = route.split(" ", 1)[1].replace("{id}", "1")
            return await c.post(path, headers=headers, json={"reason": "isolation"})
        case "POST /api/admin/patients/links":
            body = {"identity_id": 1, "other_identity_id": 2, "reason": "isolation"}
            return await c.post("/api/admin/patients/links", headers=headers, json=body)
        case "POST /api/admin/patient-merges/{id}/reverse":
            return await c.post("/api/admin/patient-merges/1/reverse", headers=headers)
        case "GET /fhir/Patient/{id}":
            logical = patient_logical_id(world["a"], "SECRET_PID_A")
            return await c.get(f"/fhir/Patient/{logical}", headers=headers)
        case "GET /fhir/ServiceRequest/{id}" | "GET /fhir/ImagingStudy/{id}":
            return await c.get(route.split(" ", 1)[1].replace("{id}", str(cid)), headers=headers)
        case "GET /fhir/DiagnosticReport/{id}":
            return await c.get(f"/fhir/DiagnosticReport/{cid}", headers=headers)
        case "GET /fhir/Patient":
            return await c.get(
                "/fhir/Patient", headers=headers, params={"identifier": "SECRET_PID_A"}
            )
        case "GET /fhir/ServiceRequest" | "GET /fhir/ImagingStudy" | "GET /fhir/DiagnosticReport":
            patient = f"Patient/{patient_logical_id(world['a'], 'SECRET_PID_A')}"
            return await c.get(route.split(" ", 1)[1], headers=headers, params={"patient": patient})
        case "POST /fhir/ServiceRequest":
            return await c.post(
                "/fhir/ServiceRequest",
                headers={**headers, "Content-Type": "application/fhir+json"},
                json=fhir_order_of_clinic_a_study(uid),
            )
        case "PUT /fhir/ServiceRequest/{id}":
            return await c.put(
                f"/fhir/ServiceRequest/{cid}",
                headers={**headers, "Content-Type": "application/fhir+json"},
                json={
                    "resourceType": "ServiceRequest",
                    "id": str(cid),
                    "status": "revoked",
                    "intent": "order",
                    "subject": {"identifier": {"value": "SECRET_PID_A"}},
                },
            )
        case (
            "POST /api/consultations/{id}/claim"
            | "POST /api/consultations/{id}/release"
            | "POST /api/consultations/{id}/reassign"
        ):
            path = route.split(" ", 1)[1].replace("{id}", str(cid))
            return await c.post(path, headers=headers, json={"user_id": 1})
        case "GET /api/audit" | "GET /api/audit.csv" | "GET /api/audit/atna":
            path = route.split(" ", 1)[1]
            return await c.get(path, headers=headers, params={"patient_id": "SECRET_PID_A"})
        case "GET /api/notifications":
            return await c.get("/api/notifications", headers=headers)
        case "GET /api/consultations/{id}/assignees":
            return await c.get(f"/api/consultations/{cid}/assignees", headers=headers)
        case "POST /api/notifications/{id}/read":
            owned = world.get("notification")
            return await c.post(f"/api/notifications/{owned}/read", headers=headers)
        case "GET /api/consultations/{id}/messages":
            return await c.get(f"/api/consultations/{cid}/messages", headers=headers)
        case "POST /api/consultations/{id}/messages":
            return await c.post(
                f"/api/consultations/{cid}/messages", headers=headers, json={"body": "hello"}
            )
        case "GET /api/portal/reports":
            return await c.get("/api/portal/reports", headers=headers)
        case (
            "GET /api/consultations/{id}/report"
            | "GET /api/consultations/{id}/report/priors"
            | "GET /api/consultations/{id}/report/versions/{version}/pdf"
        ):
            path = route.split(" ", 1)[1].replace("{id}", str(cid)).replace("{version}", "1")
            return await c.get(path, headers=headers)
        case "PUT /api/consultations/{id}/report/draft":
            return await c.put(
                f"/api/consultations/{cid}/report/draft", headers=headers, json={"findings": "x"}
            )
        case "POST /api/consultations/{id}/report/sign":
            return await c.post(
                f"/api/consultations/{cid}/report/sign", headers=headers, json={"password": "x"}
            )
        case (
            "POST /api/consultations/{id}/report/review/approve"
            | "POST /api/consultations/{id}/report/review/edit"
        ):
            path = route.split(" ", 1)[1].replace("{id}", str(cid))
            return await c.post(path, headers=headers, json={"password": "x"})
        case "POST /api/consultations/{id}/report/review/return":
            return await c.post(
                f"/api/consultations/{cid}/report/review/return",
                headers=headers,
                json={"comment": "x"},
            )
        case (
            "POST /api/consultations/{id}/report/correction"
            | "POST /api/consultations/{id}/report/versions/{version}/print"
            | "POST /api/consultations/{id}/report/acknowledgement"
            | "POST /api/consultations/{id}/report/critical-acknowledgement"
        ):
            path = route.split(" ", 1)[1].replace("{id}", str(cid)).replace("{version}", "1")
            return await c.post(path, headers=headers)
        case (
            "GET /api/consultations/{id}/report/key-images"
            | "GET /api/consultations/{id}/report/key-images/{key}/image"
            | "GET /api/consultations/{id}/report/versions/{version}/figures"
            | "GET /api/consultations/{id}/report/versions/{version}/figures/{position}"
        ):
            path = route.split(" ", 1)[1].replace("{id}", str(cid)).replace("{version}", "1")
            return await c.get(
                path.replace("{key}", "1").replace("{position}", "1"), headers=headers
            )
        case "POST /api/consultations/{id}/report/key-images":
            first = world["study"][0]
            body = {
                "series_instance_uid": str(first.SeriesInstanceUID),
                "sop_instance_uid": str(first.SOPInstanceUID),
                "view": {"viewport": [100, 100]},
            }
            return await c.post(
                f"/api/consultations/{cid}/report/key-images", headers=headers, json=body
            )
        case "DELETE /api/consultations/{id}/report/key-images/{key}":
            return await c.delete(f"/api/consultations/{cid}/report/key-images/1", headers=headers)
        case "POST /api/consultations/{id}/preliminary":
            return await c.post(
                f"/api/consultations/{cid}/preliminary", headers=headers, json={"text": "ok"}
            )
        case "GET /wado":
            first = world["study"][0]
            params = {
                "requestType": "WADO",
                "studyUID": uid,
                "seriesUID": str(first.SeriesInstanceUID),
                "objectUID": str(first.SOPInstanceUID),
                "contentType": "application/dicom",
            }
            return await c.get("/wado", headers=headers, params=params)
        case route if route in DICOMWEB_SEARCHES:
            path = route.split(" ", 1)[1]
            return await c.get(path, headers=headers, params={"PatientID": "SECRET_PID_A"})
        case route if route in VIEWER_ROUTES:
            first = world["study"][0]
            path = route.split(" ", 1)[1].replace("{id}", str(cid)).replace("{study}", uid)
            path = path.replace("{series}", str(first.SeriesInstanceUID)).replace("{n}", "1")
            path = path.replace("{frames}", "1").replace("{path}", "7fe00010")
            # The batch of values names its frames in the query (a real frame of clinic A's).
            batch = route.endswith("{series}/values")
            params = {"frames": f"{first.SOPInstanceUID}:1"} if batch else {}
            return await c.get(
                path.replace("{instance}", str(first.SOPInstanceUID)),
                headers=headers,
                params=params,
            )
        case route if route in TURNAROUND_ROUTES:
            path = route.split(" ", 1)[1].replace("{name}", "queue")
            return await c.get(
                path,
                headers=headers,
                params={"group_by": "facility"}
                if path in ("/api/turnaround", "/api/turnaround/sla")
                else {},
            )
        case (
            "GET /api/peer-reviews"
            | "GET /api/peer-reviews/discrepancies"
            | "GET /api/peer-reviews/figures"
            | "GET /peer-reviews"
        ):
            await clinic_a_peer_review(service, world)
            return await c.get(route.split(" ", 1)[1], headers=headers)
        case "POST /api/consultations/{id}/peer-review":
            return await c.post(f"/api/consultations/{cid}/peer-review", headers=headers)
        case route if route in PEER_REVIEW_ROUTES:
            rid = await clinic_a_peer_review(service, world)
            method, path = route.split(" ", 1)
            body = PEER_REVIEW_ROUTES[route]
            return await c.request(
                method, path.replace("{id}", str(rid)), headers=headers, json=body
            )
        case route if route in PATIENT_RECORD_ROUTES:
            found = await service.database.read(patient_identity, world["a"], "SECRET_PID_A")
            method, path = route.split(" ", 1)
            path = path.replace(
                "{id}", str(cid if path.startswith("/consultations") else found["id"])
            )
            return await c.request(
                method,
                path.replace("{consultation}", str(cid)),
                headers=headers,
                json=PATIENT_RECORD_ROUTES[route],
                allow_redirects=False,
            )
    raise AssertionError(f"{route} has no isolation case: add one")


# The consortium record (issue 21 item 4) of clinic A's patient, by its identity: clinic B has
# no consultation for the patient, so no care relationship (403); the access log is the
# managers' of the patient's facilities (403); the redirect from A's consultation is 404.
PATIENT_RECORD_ROUTES: dict[str, Any] = {
    "GET /patients/{id}": None,
    "GET /patients/{id}/print": None,
    "GET /api/patients/{id}": None,
    "POST /api/patients/{id}/reasons": {"category": "treatment", "text": "x"},
    "GET /api/patients/{id}/reports/{consultation}/pdf": None,
    "GET /api/patients/{id}/access-log": None,
    "GET /consultations/{id}/patient": None,
}


# Peer review (issue 20 item 1): clinic A's review by id, with the body each route takes.
PEER_REVIEW_ROUTES: dict[str, Any] = {
    "GET /peer-reviews/{id}": None,
    "GET /peer-reviews/{id}/discrepancy": None,
    "GET /api/peer-reviews/{id}": None,
    "POST /api/peer-reviews/{id}/claim": None,
    "POST /api/peer-reviews/{id}/release": None,
    "POST /api/peer-reviews/{id}/score": {"score": 1},
    "GET /api/peer-reviews/{id}/discrepancy": None,
    "POST /api/peer-reviews/{id}/answer": {"answer": "x"},
    "POST /api/peer-reviews/{id}/close": {"outcome": "x"},
}
PEER_REVIEW_LISTS = (
    "GET /api/peer-reviews",
    "GET /api/peer-reviews/discrepancies",
    "GET /api/peer-reviews/figures",
)


VIEWER_INSTANCE = "/dicom-web/studies/{study}/series/{series}/instances/{instance}"
VIEWER_ROUTES = (
    "GET /api/consultations/{id}/viewer",
    "GET /dicom-web/studies/{study}/metadata",
    "GET /dicom-web/studies/{study}/series/{series}/metadata",
    f"GET {VIEWER_INSTANCE}/metadata",
    f"GET {VIEWER_INSTANCE}/frames/{{n}}/rendered",
    f"GET {VIEWER_INSTANCE}/rendered",
    "GET /dicom-web/studies/{study}/thumbnail",
    "GET /dicom-web/studies/{study}/series/{series}/thumbnail",
    f"GET {VIEWER_INSTANCE}/thumbnail",
    "GET /api/viewer/studies/{study}/series/{series}/instances/{instance}/frames/{n}/values",
    "GET /api/viewer/studies/{study}/series/{series}/instances/{instance}/frames/{n}/overlay",
    "GET /api/viewer/studies/{study}/series/{series}/values",
    # DICOMweb naming clinic A's study (docs/dicomweb.md): 404, like a study that does not exist.
    "GET /dicom-web/studies/{study}/series",
    "GET /dicom-web/studies/{study}/instances",
    "GET /dicom-web/studies/{study}/series/{series}/instances",
    "GET /dicom-web/studies/{study}",
    "GET /dicom-web/studies/{study}/series/{series}",
    f"GET {VIEWER_INSTANCE}",
    f"GET {VIEWER_INSTANCE}/frames/{{frames}}",
    f"GET {VIEWER_INSTANCE}/bulk/{{path}}",
    f"GET {VIEWER_INSTANCE}/frames/{{n}}/thumbnail",
    "GET /dicom-web/studies/{study}/rendered",
    "GET /dicom-web/studies/{study}/series/{series}/rendered",
)

# QIDO-RS over all of the caller's studies: an empty list for a reader elsewhere.
DICOMWEB_SEARCHES = ("GET /dicom-web/studies", "GET /dicom-web/series", "GET /dicom-web/instances")

TURNAROUND_ROUTES = (
    "GET /api/turnaround",
    "GET /api/turnaround/sla",
    "GET /api/turnaround/breaches",
    "GET /api/turnaround/workload",
    "GET /api/turnaround/workload.csv",
    "GET /api/turnaround/quality",
    "GET /api/turnaround/queue",
    "GET /dashboard/charts/{name}.svg",
)

# FHIR by clinic A's logical ids (404 elsewhere) and searches naming A's patient (an empty
# Bundle elsewhere).
FHIR_READS = (
    "GET /fhir/Patient/{id}",
    "GET /fhir/ServiceRequest/{id}",
    "GET /fhir/ImagingStudy/{id}",
    "GET /fhir/DiagnosticReport/{id}",
)
FHIR_SEARCHES = (
    "GET /fhir/Patient",
    "GET /fhir/ServiceRequest",
    "GET /fhir/ImagingStudy",
    "GET /fhir/DiagnosticReport",
)

MATRIX = (
    *TURNAROUND_ROUTES,
    *DICOMWEB_SEARCHES,
    "GET /wado",
    *VIEWER_ROUTES,
    "GET /api/worklist",
    "GET /api/worklist/events",
    "GET /api/consultations/{id}",
    "GET /ohif/consultations/{id}",
    "POST /api/consultations",
    "POST /api/repeat-alerts/{id}/withdraw",
    "POST /api/studies",
    "POST /dicom-web/studies/{study}",
    "GET /api/admin/quarantine",
    "GET /api/admin/hl7-outbox",
    "POST /api/admin/hl7-outbox/{id}/retry",
    "GET /api/admin/patient-merges",
    "POST /api/admin/patient-merges/{id}/reverse",
    # Patient linking (issue 21): the regional centre's administrators only, so clinic B's
    # administrator is refused like every other role of clinic B.
    "GET /api/admin/patients/candidates",
    "GET /api/admin/patients/changes",
    "POST /api/admin/patients/candidates/{id}/link",
    "POST /api/admin/patients/candidates/{id}/reject",
    "POST /api/admin/patients/links",
    "POST /api/admin/patients/identities/{id}/unlink",
    "POST /api/admin/patients/changes/{id}/reverse",
    *FHIR_READS,
    *FHIR_SEARCHES,
    "POST /fhir/ServiceRequest",
    "PUT /fhir/ServiceRequest/{id}",
    "POST /api/consultations/{id}/claim",
    "POST /api/consultations/{id}/release",
    "POST /api/consultations/{id}/reassign",
    "GET /api/consultations/{id}/assignees",
    "GET /api/audit",
    "GET /api/audit.csv",
    "GET /api/audit/atna",
    "GET /api/notifications",
    "POST /api/notifications/{id}/read",
    "GET /api/consultations/{id}/messages",
    "POST /api/consultations/{id}/messages",
    "POST /api/consultations/{id}/preliminary",
    "GET /api/portal/reports",
    "GET /api/consultations/{id}/report",
    "GET /api/consultations/{id}/report/priors",
    "PUT /api/consultations/{id}/report/draft",
    "POST /api/consultations/{id}/report/sign",
    "POST /api/consultations/{id}/report/correction",
    "POST /api/consultations/{id}/report/review/approve",
    "POST /api/consultations/{id}/report/review/edit",
    "POST /api/consultations/{id}/report/review/return",
    "GET /api/consultations/{id}/report/versions/{version}/pdf",
    "POST /api/consultations/{id}/report/versions/{version}/print",
    "POST /api/consultations/{id}/report/acknowledgement",
    "POST /api/consultations/{id}/report/critical-acknowledgement",
    "GET /api/consultations/{id}/report/key-images",
    "POST /api/consultations/{id}/report/key-images",
    "DELETE /api/consultations/{id}/report/key-images/{key}",
    "GET /api/consultations/{id}/report/key-images/{key}/image",
    "GET /api/consultations/{id}/report/versions/{version}/figures",
    "GET /api/consultations/{id}/report/versions/{version}/figures/{position}",
    "POST /api/consultations/{id}/peer-review",
    *PEER_REVIEW_LISTS,
    "GET /peer-reviews",
    *PEER_REVIEW_ROUTES,
    *PATIENT_RECORD_ROUTES,
)


@pytest.mark.parametrize("role", ROLES)
async def test_other_facilitys_users_see_nothing_of_clinic_a(service, world, role):
    """Each role of clinic B, on each data endpoint: refused or empty, and no secret in the body."""
    headers = await service.login(f"{role}_b")
    for route in MATRIX:
        response = await call(service, headers, route, world)
        text = await response.text()
        if route == "GET /fhir/Patient":
            # The Bundle's self link repeats the identifier searched for; nothing else of A's.
            assert_no_leak(text, ("wang_a", "保密患者", "A_ACC_777"))
        elif route.startswith("GET /api/audit") and role == "admin":
            assert response.status == 200  # consortium administrators read the whole trail
            continue
        elif route.startswith("GET /api/audit"):
            # The searcher's own records repeat the patient id they searched for; nothing of
            # clinic A's records (its users, names, accession) may come back.
            assert_no_leak(text, ("wang_a", "保密患者", "A_ACC_777"))
        else:
            assert_no_leak(text)
        if route == "GET /api/portal/reports" and response.status == 200:
            assert (await response.json())["items"] == []
        elif route == "GET /api/notifications":
            # One's own notices only: clinic A's reader was told about A's consultation.
            assert response.status == 200
            assert (await response.json())["items"] == []
        elif route == "GET /api/worklist":
            if response.status == 200:
                body = await response.json()
                assert body["items"] == [] and body["counts"]["total"] == 0
            else:
                assert response.status == 403
        elif route == "GET /api/worklist/events":
            # Worklist roles subscribe, but nothing about clinic A's change reaches them.
            if response.status == 200:
                assert "event: change" not in text
                assert str(world["consultation"]) not in text.replace("retry: 3000", "")
            else:
                assert response.status == 403, (route, role, response.status)
        elif route == "POST /api/consultations":
            # A request naming clinic A's study UID is refused: the study belongs to A.
            assert response.status in (403, 409), (route, response.status)
        elif route in ("POST /api/studies", "POST /dicom-web/studies/{study}"):
            assert response.status in (400, 403, 409), (route, role, response.status, text)
        elif route.startswith("GET /api/audit"):
            # Clinic B's manager searches B's own trail only: nothing of clinic A comes back.
            assert response.status == (200 if role == "manager" else 403), (route, role)
        elif route in TURNAROUND_ROUTES:
            # Facility users and clinic B's readers get their own facility's aggregates only.
            assert response.status in (200, 403), (route, role, response.status)
            assert "Clinic A" not in text, (route, role)
            if route == "GET /api/turnaround/breaches" and response.status == 200:
                assert (await response.json())["items"] == []
            if route == "GET /api/turnaround/queue" and response.status == 200:
                assert sum(i["open"] for i in (await response.json())["items"]) == 0
        elif route in DICOMWEB_SEARCHES:
            if response.status == 200:
                assert await response.json(content_type=None) == [], (route, role)
            else:
                assert response.status == 403, (route, role, response.status)
        elif route == "GET /api/admin/quarantine" and role == "admin":
            assert response.status == 200  # admins of any facility review unknown senders
        elif route in FHIR_SEARCHES:
            if response.status == 200:
                assert (await response.json(content_type=None)).get("entry", []) == [], route
            else:
                assert response.status == 403, (route, role, response.status)
        elif route == "POST /fhir/ServiceRequest":
            # An order naming clinic A's study UID is refused: the study belongs to A.
            assert response.status in (403, 409), (route, role, response.status, text)
        elif route == "GET /api/admin/patient-merges" and role == "admin":
            assert response.status == 200 and (await response.json())["items"] == []
        elif route == "GET /peer-reviews":
            # The page of clinic B's readers lists nothing of clinic A's (no leak, above).
            assert response.status in (200, 403), (route, role, response.status)
            assert f'data-review="{world["peer_review"]}"' not in text, (route, role)
        elif route in PEER_REVIEW_LISTS:
            # Clinic B's readers get their own reviews, discrepancies and figures: none.
            if response.status == 200:
                assert (await response.json())["items"] == [], (route, role)
            else:
                assert response.status == 403, (route, role, response.status)
        elif route == "GET /api/admin/hl7-outbox" and role == "admin":
            assert response.status == 200  # and every HIS's results (clinic A has no HIS)
        else:
            assert response.status in (403, 404), (route, role, response.status)


async def test_clinic_a_still_sees_its_own_consultation(service, world):
    """The matrix is meaningful: the owner does get the data the others are refused."""
    response = await service.client.get(
        f"/api/consultations/{world['consultation']}", headers=await service.login("wang_a")
    )
    assert response.status == 200
    assert (await response.json())["patient_name"] == "保密患者"


async def test_uploading_into_another_facilitys_study_is_refused(service, world):
    """One file with clinic A's study UID must not credit clinic B with A's whole study."""
    headers = await service.login("radiographer_b")
    response = await service.client.post(
        "/api/studies", headers=headers, data=upload_form(world["study"])
    )
    body = await response.json()
    assert response.status == 400
    assert body["files"][0]["reason"] == "this study was sent by another facility"


async def test_every_route_is_in_the_matrix_or_declared_free_of_patient_data(service):
    """A new endpoint must join the isolation matrix (or say why it holds no patient data)."""
    routes = set()
    for route in service.app.router.routes():
        canonical = route.resource.canonical if route.resource else ""
        if canonical.startswith("/static") or route.method == "HEAD":
            continue
        path = re.sub(r"\{(\w+):\\d\+\}", r"{\1}", canonical)
        routes.add(f"{route.method} {path}")
    covered = set(MATRIX) | NOT_PATIENT_DATA | {"POST /dicom-web/studies"}
    assert sorted(routes - covered) == []
