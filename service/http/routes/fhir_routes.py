"""FHIR R4 (4.3.0, R4B) under ``/fhir``: docs/integration.md#fhir-r4.

Authenticated by bearer token like the API (an API token, or a session token from
``/api/login``), scoped by the caller's role and facility in SQL (another facility's resources
are 404 on read and absent from searches) and audited: ``fhir.read``, ``fhir.search``,
``fhir.create``, ``fhir.update``. ``/fhir/metadata`` is public, as FHIR servers' are. Answers and
errors are ``application/fhir+json`` (service/http/fhir_answers.py).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from ...auth.access import consultation_scope
from ...clock import to_iso, utc_now
from ...fhir import queries
from ...fhir.bundles import searchset
from ...fhir.capability import FHIR_JSON, capability_statement
from ...fhir.identity import consultation_id_of, parse_patient_logical_id
from ...fhir.orders import InvalidOrder, order_fields, parse_service_request
from ...fhir.search import InvalidSearch, Search, parse_search
from ...fhir.warnings import repeat_outcome
from ...intake.cancellation import cancel_request
from ...patients import repeats
from ...storage.fhir import Match
from ...worklist.live_feed import publish_changes
from ..access import allow, public
from ..auditing import audit_context, audited, not_audited
from ..errors import ApiError
from ..fhir_answers import fhir_json, read_resource
from ..keys import DATABASE, EFFECTS, ORTHANC, current_user
from ..models import ConsultationRequestBody
from ..requests import public_base_url
from .consultation_routes import REQUESTING_ROLES, file_consultation_request
from .openapi import documented
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

RESOURCE = {"type": "object", "required": ["resourceType"], "properties": {"resourceType": {}}}
OUTCOME = {FHIR_JSON: RESOURCE}
FHIR_ERRORS = {status: OUTCOME for status in (400, 401, 403, 404, 405, 406, 409)}
BODY_ERRORS = {status: OUTCOME for status in (413, 415)}
SEARCH_QUERY = (
    {"name": "_count", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "_format", "in": "query", "required": False, "schema": {"type": "string"}},
)


def fhir_doc(summary: str, *, body: bool = False, success: tuple[int, ...] = (200,)) -> Any:
    """``documented`` for a FHIR interaction: FHIR JSON in and out, OperationOutcome errors."""
    return documented(
        summary,
        body=RESOURCE if body else None,
        body_media_type=FHIR_JSON,
        response=RESOURCE,
        response_media_type=FHIR_JSON,
        success=success,
        errors=(405, 406),
        answers=FHIR_ERRORS | (BODY_ERRORS if body else {}),
        parameters=SEARCH_QUERY,
    )


def _base(request: web.Request) -> str:
    return f"{public_base_url(request)}/fhir"


def _search(request: web.Request, resource_type: str) -> Search:
    try:
        return parse_search(resource_type, request.query.items())
    except InvalidSearch as exc:
        raise ApiError(400, "invalid_search", str(exc)) from exc


def _read_search(request: web.Request, resource_type: str) -> Search:
    """A read as a search of one id (a read is the same scoped query): 404 if unknown."""
    logical_id = request.match_info["id"]
    if resource_type == "Patient":
        named = parse_patient_logical_id(logical_id)
        match = Match(facility_id=named[0], patient_id=named[1]) if named else None
    else:
        consultation_id = consultation_id_of(logical_id)
        match = Match(consultation_id=consultation_id) if consultation_id else None
    if match is None:
        raise ApiError(404, "not_found", f"{resource_type}/{logical_id} not found")
    return Search(match, limit=1)


def _answer_read(request: web.Request, resource_type: str, found: queries.Found) -> web.Response:
    if not found.resources:
        raise ApiError(404, "not_found", f"{resource_type}/{request.match_info['id']} not found")
    _audit(request, resource_type, found)
    return fhir_json(found.resources[0])


def _answer_search(request: web.Request, resource_type: str, found: queries.Found) -> web.Response:
    _audit(request, resource_type, found)
    audit_context(request).detail["query"] = dict(request.query)
    query = [(k, v) for k, v in request.query.items() if k != "_format"]
    return fhir_json(searchset(_base(request), resource_type, query, found.resources))


def _audit(request: web.Request, resource_type: str, found: queries.Found) -> None:
    audit = audit_context(request)
    audit.detail |= {
        "fhir_type": resource_type,
        "results": len(found.resources),
        "patients": sorted(found.patients),
    }
    if found.studies:
        audit.detail["studies"] = sorted(found.studies)
    if len(found.patients) == 1:
        audit.patient_id = next(iter(found.patients))
    if len(found.studies) == 1:
        audit.study_instance_uid = next(iter(found.studies))


@routes.get("/fhir/metadata")
@public
@not_audited("the server's CapabilityStatement: no patient data")
@documented(
    "FHIR CapabilityStatement: what this FHIR server implements (no token needed)",
    response=RESOURCE,
    response_media_type=FHIR_JSON,
    errors=(406,),
    answers={406: OUTCOME},
    parameters=SEARCH_QUERY[1:],
)
async def metadata(request: web.Request) -> web.Response:
    try:
        software = version("teleread")
    except PackageNotFoundError:  # pragma: no cover (run from a source tree not installed)
        software = "unknown"
    return fhir_json(capability_statement(_base(request), software, to_iso(utc_now())[:10]))


@routes.get("/fhir/Patient/{id}")
@allow(*WORKLIST_ROLES)
@audited("fhir.read", "patient")
@fhir_doc("FHIR read Patient (id: f<facility id>-<encoded patient ID>)")
async def read_patient(request: web.Request) -> web.Response:
    scope = consultation_scope(current_user(request))
    found = await queries.patients(request.app[DATABASE], scope, _read_search(request, "Patient"))
    return _answer_read(request, "Patient", found)


@routes.get("/fhir/Patient")
@allow(*WORKLIST_ROLES)
@audited("fhir.search", "patient")
@fhir_doc("FHIR search Patient (identifier=system|value, _id)")
async def search_patients(request: web.Request) -> web.Response:
    scope = consultation_scope(current_user(request))
    found = await queries.patients(request.app[DATABASE], scope, _search(request, "Patient"))
    return _answer_search(request, "Patient", found)


@routes.get("/fhir/ServiceRequest/{id}")
@allow(*WORKLIST_ROLES)
@audited("fhir.read", "consultation")
@fhir_doc("FHIR read ServiceRequest: a consultation request and its state (status)")
async def read_service_request(request: web.Request) -> web.Response:
    scope = consultation_scope(current_user(request))
    search = _read_search(request, "ServiceRequest")
    found = await queries.service_requests(request.app[DATABASE], scope, search)
    return _answer_read(request, "ServiceRequest", found)


@routes.get("/fhir/ServiceRequest")
@allow(*WORKLIST_ROLES)
@audited("fhir.search", "consultation")
@fhir_doc("FHIR search ServiceRequest (patient, status, requester, identifier, _id)")
async def search_service_requests(request: web.Request) -> web.Response:
    scope = consultation_scope(current_user(request))
    search = _search(request, "ServiceRequest")
    found = await queries.service_requests(request.app[DATABASE], scope, search)
    return _answer_search(request, "ServiceRequest", found)


@routes.post("/fhir/ServiceRequest")
@allow(*REQUESTING_ROLES)
@audited("fhir.create", "consultation")
@fhir_doc("FHIR create ServiceRequest: file a consultation request", body=True, success=(200, 201))
async def create_service_request(request: web.Request) -> web.Response:
    user = current_user(request)
    try:
        resource = parse_service_request(await read_resource(request))
        fields = order_fields(resource, user.facility_id)
    except InvalidOrder as exc:
        raise ApiError(400, "invalid_order", str(exc), expression=exc.expression) from exc
    body = ConsultationRequestBody.model_validate(fields)  # the JSON API's limits and rules
    filing = await file_consultation_request(request, body, via="fhir")
    consultation_id = filing.consultation_id
    assert consultation_id is not None  # an order is never stopped: a repeat is recorded
    # 200 when the order completed a consultation already here (its images came first), as the
    # JSON API answers; the same order twice is a 409 (request_exists).
    status = 201 if filing.created else 200
    answer = await _answer_order(request, consultation_id, status)
    if filing.alert is None or "return=representation" in request.headers.get("Prefer", ""):
        return answer
    audit_context(request).detail["repeat_alert"] = filing.alert["id"]
    user = current_user(request)
    text = repeats.note(
        filing.alert["matches"], repeats.zone_of({"timezone": user.facility_timezone})
    )
    filed = f"ServiceRequest/{consultation_id}"
    outcome = repeat_outcome(text, filing.alert["id"], filed)
    return fhir_json(outcome, status, Location=answer.headers["Location"])


async def _answer_order(request: web.Request, consultation_id: int, status: int) -> web.Response:
    scope = consultation_scope(current_user(request))
    search = Search(Match(consultation_id=consultation_id), limit=1)
    found = await queries.service_requests(request.app[DATABASE], scope, search)
    audit = audit_context(request)
    audit.resource_id = str(consultation_id)
    _audit(request, "ServiceRequest", found)
    resource = found.resources[0]
    location = f"{_base(request)}/ServiceRequest/{consultation_id}"
    return fhir_json(resource, status, Location=location)


@routes.put("/fhir/ServiceRequest/{id}")
@allow(*REQUESTING_ROLES)
@audited("fhir.update", "consultation")
@fhir_doc("FHIR update ServiceRequest: status revoked cancels the open request", body=True)
async def update_service_request(request: web.Request) -> web.Response:
    user = current_user(request)
    search = _read_search(request, "ServiceRequest")
    database = request.app[DATABASE]
    found = await queries.service_requests(database, consultation_scope(user), search)
    if not found.resources:
        raise ApiError(404, "not_found", f"ServiceRequest/{request.match_info['id']} not found")
    try:
        resource = parse_service_request(await read_resource(request))
    except InvalidOrder as exc:
        raise ApiError(400, "invalid_order", str(exc), expression=exc.expression) from exc
    if resource.id != request.match_info["id"]:
        raise ApiError(400, "invalid_order", "the resource's id must be the one in the URL")
    current = found.resources[0]
    if resource.status == current["status"]:
        return await _answer_order(request, int(current["id"]), 200)
    if resource.status != "revoked":
        raise ApiError(400, "invalid_order", "only a change of status to revoked is supported")
    consultation_id = int(current["id"])
    await database.write(
        cancel_request,
        consultation_id,
        user_id=user.id,
        reason="ServiceRequest revoked",
        now=utc_now(),
        via="fhir",
    )
    await publish_changes(database, request.app[EFFECTS], [consultation_id])
    return await _answer_order(request, consultation_id, 200)


@routes.get("/fhir/ImagingStudy/{id}")
@allow(*WORKLIST_ROLES)
@audited("fhir.read", "study")
@fhir_doc("FHIR read ImagingStudy: a received study, its series and DICOMweb endpoint")
async def read_imaging_study(request: web.Request) -> web.Response:
    found = await _studies(request, _read_search(request, "ImagingStudy"))
    return _answer_read(request, "ImagingStudy", found)


@routes.get("/fhir/ImagingStudy")
@allow(*WORKLIST_ROLES)
@audited("fhir.search", "study")
@fhir_doc("FHIR search ImagingStudy (patient, based-on, _id)")
async def search_imaging_studies(request: web.Request) -> web.Response:
    found = await _studies(request, _search(request, "ImagingStudy"))
    return _answer_search(request, "ImagingStudy", found)


async def _studies(request: web.Request, search: Search) -> queries.Found:
    app = request.app
    scope = consultation_scope(current_user(request))
    dicomweb = f"{public_base_url(request)}/dicom-web"
    return await queries.imaging_studies(app[DATABASE], app[ORTHANC], scope, search, dicomweb)


@routes.get("/fhir/DiagnosticReport/{id}")
@allow(*WORKLIST_ROLES)
@audited("fhir.read", "report")
@fhir_doc("FHIR read DiagnosticReport: the signed report, its PDF by URL")
async def read_diagnostic_report(request: web.Request) -> web.Response:
    scope = consultation_scope(current_user(request))
    search = _read_search(request, "DiagnosticReport")
    found = await queries.diagnostic_reports(
        request.app[DATABASE], scope, search, public_base_url(request)
    )
    return _answer_read(request, "DiagnosticReport", found)


@routes.get("/fhir/DiagnosticReport")
@allow(*WORKLIST_ROLES)
@audited("fhir.search", "report")
@fhir_doc("FHIR search DiagnosticReport (patient, based-on, _id)")
async def search_diagnostic_reports(request: web.Request) -> web.Response:
    scope = consultation_scope(current_user(request))
    search = _search(request, "DiagnosticReport")
    found = await queries.diagnostic_reports(
        request.app[DATABASE], scope, search, public_base_url(request)
    )
    return _answer_search(request, "DiagnosticReport", found)
