"""Filing consultation requests."""

from __future__ import annotations

from aiohttp import web

from worklists.priorities import Priority

from ...auth.access import consultation_scope
from ...clock import utc_now
from ...intake.intake import ConsultationRequest
from ...intake.repeat_check import RECORD, Filing, RepeatAnswer, file_checked_request
from ...storage import consultations as store
from ...worklist.live_feed import publish_changes
from ..access import allow
from ..auditing import audit_context, audited
from ..keys import DATABASE, EFFECTS, SLA, current_user
from ..models import ConsultationCreated, ConsultationRequestBody
from ..requests import read_model
from .openapi import documented
from .repeat_alert_routes import repeat_exam_error

routes = web.RouteTableDef()

REQUESTING_ROLES = ("radiographer", "requester", "clinician")
IDENTITY_FIELDS = {"patient_identity_number", "patient_health_card_number"}
"""The body's national identifiers: passed as checked ``identifiers``, never as columns."""


async def file_consultation_request(
    request: web.Request,
    body: ConsultationRequestBody,
    *,
    via: str,
    answer: RepeatAnswer = RECORD,
) -> Filing:
    """File the caller's request (the JSON API's and FHIR's ServiceRequest alike) after the
    repeat-exam check, and tell the live worklists; what was filed (nothing when the request
    stopped at a repeat alert) and the alert, if any."""
    user = current_user(request)
    fields = body.model_dump(exclude={"repeat_reason", "repeat_alert_id", *IDENTITY_FIELDS}) | {
        "via": via
    }
    fields["identifiers"] = body.identifiers()
    fields["priority"] = Priority(fields["priority"])
    for name in ("modality", "body_part"):
        fields[name] = (fields[name] or "").upper() or None
    database = request.app[DATABASE]
    filing = await database.write(
        file_checked_request,
        ConsultationRequest(**fields),
        facility_id=user.facility_id,
        user_id=user.id,
        now=utc_now(),
        sla=request.app[SLA],
        answer=answer,
    )
    if filing.consultation_id is not None:
        changed = [filing.consultation_id]
        await publish_changes(
            database, request.app[EFFECTS], changed, changed if filing.created else []
        )
    return filing


@routes.post("/api/consultations")
@allow(*REQUESTING_ROLES)
@audited("consultation.request", "consultation")
@documented(
    "File a consultation request (before or after the images arrive)",
    body=ConsultationRequestBody,
    response=ConsultationCreated,
    success=(200, 201),
)
async def create_consultation(request: web.Request) -> web.Response:
    body = await read_model(request, ConsultationRequestBody)
    user = current_user(request)
    database = request.app[DATABASE]
    repeat = RepeatAnswer(True, body.repeat_reason or "", body.repeat_alert_id)
    filing = await file_consultation_request(request, body, via="web", answer=repeat)
    audit = audit_context(request)
    if filing.consultation_id is None:  # stopped at a repeat alert: nothing filed
        audit.touches(body.patient_id or "", body.study_instance_uid)
        raise await repeat_exam_error(request, filing)
    consultation_id, created = filing.consultation_id, filing.created
    if filing.alert is not None:
        audit.detail["repeat_alert"] = filing.alert["id"]
        audit.detail["repeat_decision"] = filing.alert["decision"]
    row = await database.read(store.get_consultation, consultation_scope(user), consultation_id)
    audit.touches(row["patient_id"], row["study_instance_uid"], consultation_id)
    audit.detail["priority"] = row["priority"]
    answer = ConsultationCreated(id=consultation_id, status=row["status"], created=created)
    return web.json_response(answer.model_dump(), status=201 if created else 200)
