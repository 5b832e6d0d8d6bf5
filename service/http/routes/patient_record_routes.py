"""The consortium record over HTTP (issue 21 item 4): the page, its print view, its JSON twin,
the stated reason, a signed report from the record, and the per-patient access log.

URLs name the local identity by its number (``patient_identities.id``), never by a Patient ID,
which may itself be a national identity number. The rules (care relationship, reason, who reads
the log) are service/patients/record.py's; every call is audited here with each linked
identity, so it shows in every identity's access log.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ...audit.labels import action_labels
from ...auth.access import consultation_scope
from ...clock import utc_now
from ...patients import record as domain
from ...patients.record import RecordRefused, Subject
from ...quality.labels import exam_item_label
from ...storage import patient_record as store
from ...storage.database import RecordNotFound
from ...worklist.notice_text import person_name
from ..access import allow
from ..auditing import AuditContext, audit_context, audited
from ..errors import ApiError
from ..keys import DATABASE, RENDERER, current_user
from ..models import Strict
from ..requests import path_id, read_model, read_query
from .openapi import JSON, documented, page
from .pages import page_locale, render

routes = web.RouteTableDef()

RECORD_ROLES = (*domain.DOCTORS, *domain.LOG_READERS)


class RecordQuery(Strict):
    beyond: bool = Field(
        default=False,
        description="Ask for the whole record (other facilities' too): 400 reason_required"
        " unless a reason stated in this session is in force",
    )


class ReasonBody(Strict):
    category: Literal["treatment", "referral", "emergency", "comparison", "other"]
    text: str = Field(min_length=1, max_length=500, description="Why, in a few words")


class LogQuery(Strict):
    format: Literal["json", "csv"] = "json"


class RecordAnswer(BaseModel):
    """A person's record as the caller may see it now; identifiers masked."""

    model_config = ConfigDict(extra="allow")
    identity_id: int
    complete: bool = Field(description="False: only your facility's part; state a reason")
    hidden_consultations: int
    hidden_facilities: int
    reason: dict[str, Any] | None
    identities: list[dict[str, Any]]
    consultations: list[dict[str, Any]]


class ReasonAnswer(BaseModel):
    id: int
    category: str
    text: str
    expires_at: str


class AccessLogAnswer(BaseModel):
    timezone: str = Field(description="The zone of at_local: your facility's")
    items: list[dict[str, Any]]


async def _subject(request: web.Request) -> Subject:
    """The identity of the path and its links, named in the call's audit record first (so a
    refusal is traced under every identity too)."""
    identity_id = path_id(request)
    try:
        who = await request.app[DATABASE].read(domain.subject, identity_id)
    except RecordNotFound as exc:
        raise ApiError(404, "not_found", "no such patient") from exc
    context = audit_context(request)
    context.resource_type = "patient_identity"
    context.resource_id = str(identity_id)
    context.patient_id = who.identity["patient_id"]
    context.detail |= who.audit_detail()
    return who


def _refused(exc: RecordRefused) -> ApiError:
    return ApiError(exc.status, exc.code, exc.detail)


def _note_record(context: AuditContext, record: domain.PatientRecord) -> None:
    context.detail |= {
        "complete": record.complete,
        "consultations": record.shown_ids,
        "reason": _reason_detail(record.reason),
    }


def _reason_detail(reason: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if reason is None else {"category": reason["category"], "text": reason["text"]}


async def _open(request: web.Request, beyond: bool = False) -> domain.PatientRecord:
    who = await _subject(request)
    user = current_user(request)
    try:
        record = await request.app[DATABASE].read(domain.open_record, who, user, utc_now(), beyond)
    except RecordRefused as exc:
        raise _refused(exc) from exc
    _note_record(audit_context(request), record)
    return record


def _answer(record: domain.PatientRecord) -> dict[str, Any]:
    return {
        "identity_id": record.subject.identity["id"],
        "complete": record.complete,
        "hidden_consultations": record.hidden_consultations,
        "hidden_facilities": record.hidden_facilities,
        "reason": record.reason,
        "identities": record.identities,
        "consultations": [_item(record.subject.identity["id"], c) for c in record.consultations],
    }


def _item(identity_id: int, row: dict[str, Any]) -> dict[str, Any]:
    pdf = (
        f"/api/patients/{identity_id}/reports/{row['consultation_id']}/pdf"
        if row["version"]
        else ""
    )
    return {**row, "pdf": pdf}


@routes.get(r"/api/patients/{id:\d+}")
@allow(*domain.DOCTORS)
@audited("patient_record.query", "patient_identity")
@documented(
    "A person's consortium record: every linked study and signed report (your facility's at"
    " once; others' after a stated reason), the linked identities with masked identifiers."
    " 403 no_care_relationship when your facility has no consultation for the patient",
    query=RecordQuery,
    response=RecordAnswer,
    errors=(400, 403, 404),
)
async def get_record(request: web.Request) -> web.Response:
    query = read_query(request, RecordQuery)
    record = await _open(request, query.beyond)
    return web.json_response(_answer(record))


@routes.post(r"/api/patients/{id:\d+}/reasons")
@allow(*domain.DOCTORS)
@audited("patient_record.reason", "patient_identity")
@documented(
    "State why you look beyond your facility's part of the record; it covers this patient for"
    " this session for 30 minutes (400 without a category and a text)",
    body=ReasonBody,
    response=ReasonAnswer,
    success=(201,),
    errors=(400, 403, 404),
)
async def post_reason(request: web.Request) -> web.Response:
    who = await _subject(request)
    try:
        body = await read_model(request, ReasonBody)
    except ApiError as exc:
        if exc.status != 400:
            raise
        raise ApiError(400, "reason_required", "state a category and a reason") from exc
    try:
        stated = await request.app[DATABASE].write(
            domain.state_reason, who, current_user(request), body.category, body.text, utc_now()
        )
    except RecordRefused as exc:
        raise _refused(exc) from exc
    audit_context(request).detail["reason"] = _reason_detail(stated)
    return web.json_response(stated, status=201)


@routes.get(r"/api/patients/{id:\d+}/reports/{consultation:\d+}/pdf")
@allow(*domain.DOCTORS)
@audited("patient_record.report", "patient_identity")
@documented(
    "The latest signed PDF of a consultation in the record (another facility's only while a"
    " stated reason is in force; opening it here is not the clinic's acknowledgement)",
    response_media_type="application/pdf",
    errors=(403, 404),
)
async def get_report_pdf(request: web.Request) -> web.Response:
    who = await _subject(request)
    consultation_id = path_id(request, "consultation")
    user, now = current_user(request), utc_now()
    try:
        version, pdf = await request.app[DATABASE].read(
            domain.report_pdf, who, user, consultation_id, now
        )
    except RecordRefused as exc:
        raise _refused(exc) from exc
    reason = await request.app[DATABASE].read(domain.reason_in_force, who, user, now)
    audit_context(request).detail |= {
        "consultation": consultation_id,
        "version": version,
        "reason": _reason_detail(reason),
    }
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="report-{consultation_id}-v{version}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


LOG_COLUMNS = (
    "at", "at_local", "timezone", "user", "username", "role", "facility", "action", "outcome",
    "reason_category", "reason", "client_ip",
)  # fmt: skip


def _log_csv(items: list[dict[str, Any]], zone: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = [f"at_local ({zone})" if c == "at_local" else c for c in LOG_COLUMNS]
    writer.writerow(header)
    for item in items:
        writer.writerow([item[c] for c in LOG_COLUMNS])
    return out.getvalue()


async def _access_log(request: web.Request) -> tuple[Subject, list[dict[str, Any]]]:
    who = await _subject(request)
    try:
        items = await request.app[DATABASE].read(domain.access_log, who, current_user(request))
    except RecordRefused as exc:
        raise _refused(exc) from exc
    audit_context(request).detail["entries"] = len(items)
    return who, items


@routes.get(r"/api/patients/{id:\d+}/access-log")
@allow(*domain.LOG_READERS)
@audited("patient_record.access_log", "patient_identity")
@documented(
    "Who opened, queried or printed this person's record, when and why, newest first; times"
    " also in your facility's zone (labelled). format=csv for CSV. The centre's managers read"
    " every patient's, a facility's manager only its own patients'",
    query=LogQuery,
    response=AccessLogAnswer,
    response_media_type=(JSON, "text/csv"),
    errors=(403, 404),
)
async def get_access_log(request: web.Request) -> web.Response:
    query = read_query(request, LogQuery)
    who, items = await _access_log(request)
    zone = current_user(request).facility_timezone
    if query.format == "csv":
        audit_context(request).detail["format"] = "csv"
        response = web.Response(text=_log_csv(items, zone), content_type="text/csv")
        name = f"patient-{who.identity['id']}-access-log.csv"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        response.headers["Cache-Control"] = "private, no-store"
        return response
    return web.json_response({"timezone": zone, "items": items})


# ---- pages ---------------------------------------------------------------------------------


async def _page(request: web.Request, printing: bool) -> web.Response:
    user = current_user(request)
    locale = page_locale(request)
    gettext = request.app[RENDERER].gettext(locale)
    if user.role in domain.LOG_READERS:
        who, log = await _access_log(request)
        return render(
            request, "patient_record.html", record=None, who=_named(who.identity), log=log,
            labels=action_labels(gettext), printing=False,
        )  # fmt: skip
    record = await _open(request)
    zone = user.facility_timezone
    rows = [
        _item(record.subject.identity["id"], c)
        | {
            "exam": exam_item_label(c["modality"], c["body_part"], locale),
            "at_local": domain.local_time(c["performed_at"], zone),
            "signed_local": domain.local_time(c["signed_at"], zone) if c["signed_at"] else "",
        }
        for c in record.consultations
    ]
    return render(
        request, "patient_record.html", record=record, rows=rows,
        who=_named(record.subject.identity), identities=[_named(i) for i in record.identities],
        log=None, printing=printing, zone=zone, categories=domain.REASON_CATEGORIES,
        reason_until=domain.local_time(record.reason["expires_at"], zone)
        if record.reason else "",
    )  # fmt: skip


def _named(identity: dict[str, Any]) -> dict[str, Any]:
    """The identity with its DICOM person name as people read it ("WANG^WEI" -> "WANG WEI")."""
    return identity | {"name": person_name(identity["name"])}


@routes.get(r"/patients/{id:\d+}")
@allow(*RECORD_ROLES)
@audited("patient_record.view", "patient_identity")
@page(
    "A person's consortium record (doctors with a care relationship), or its access log (managers)"
)
async def record_page(request: web.Request) -> web.Response:
    return await _page(request, printing=False)


@routes.get(r"/patients/{id:\d+}/print")
@allow(*domain.DOCTORS)
@audited("patient_record.print", "patient_identity")
@page("The record laid out for printing (the print is audited)")
async def record_print_page(request: web.Request) -> web.Response:
    return await _page(request, printing=True)


@routes.get(r"/consultations/{id:\d+}/patient")
@allow(*RECORD_ROLES)
@audited("patient_record.find", "consultation")
@documented(
    "The record of a consultation's patient: a 303 to /patients/{identity}",
    success=(),
    redirects=(303,),
    errors=(404,),
)
async def consultation_patient(request: web.Request) -> web.Response:
    consultation_id = path_id(request)
    try:
        identity_id = await request.app[DATABASE].read(
            store.identity_of_consultation,
            consultation_id,
            consultation_scope(current_user(request)),
        )
    except RecordNotFound as exc:
        raise ApiError(404, "not_found", "no such consultation") from exc
    audit_context(request).resource_id = str(consultation_id)
    raise web.HTTPSeeOther(f"/patients/{identity_id}")
