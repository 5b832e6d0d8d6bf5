"""Filing consultation requests."""

from __future__ import annotations

from aiohttp import web

from worklists.priorities import Priority

from ...auth.access import consultation_scope
from ...clock import utc_now
from ...intake.intake import ConsultationRequest, file_request
from ...storage import consultations as store
from ...worklist.live_feed import publish_changes
from ..access import allow
from ..auditing import audit_context, audited
from ..keys import DATABASE, EFFECTS, SLA, current_user
from ..models import ConsultationCreated, ConsultationRequestBody
from ..requests import read_model
from .openapi import documented

routes = web.RouteTableDef()

REQUESTING_ROLES = ("radiographer", "requester", "clinician")
IDENTITY_FIELDS = {"patient_identity_number", "patient_health_card_number"}
"""The body's national identifiers: passed as checked ``identifiers``, never as columns."""


async def file_consultation_request(
    request: web.Request, body: ConsultationRequestBody, *, via: str
) -> tuple[int, bool]:
    """File the caller's request (the JSON API's and FHIR's ServiceRequest alike) and tell the
    live worklists; the consultation id and whether it is new."""
    user = current_user(request)
    fields = body.model_dump(exclude=IDENTITY_FIELDS) | {"via": via}
    fields["identifiers"] = body.identifiers()
    fields["priority"] = Priority(fields["priority"])
    for name in ("modality", "body_part"):
        fields[name] = (fields[name] or "").upper() or None
    database = request.app[DATABASE]
    consultation_id, created = await database.write(
        file_request,
        ConsultationRequest(**fields),
        facility_id=user.facility_id,
        user_id=user.id,
        now=utc_now(),
        sla=request.app[SLA],
    )
    await publish_changes(
        database, request.app[EFFECTS], [consultation_id], [consultation_id] if created else []
    )
    return consultation_id, created


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
    consultation_id, created = await file_consultation_request(request, body, via="web")
    row = await database.read(store.get_consultation, consultation_scope(user), consultation_id)
    audit = audit_context(request)
    audit.touches(row["patient_id"], row["study_instance_uid"], consultation_id)
    audit.detail["priority"] = row["priority"]
    answer = ConsultationCreated(id=consultation_id, status=row["status"], created=created)
    return web.json_response(answer.model_dump(), status=201 if created else 200)
