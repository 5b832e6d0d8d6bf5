"""Administration of patient identities across facilities (issue 21): the review list of
likely matches, linking, rejecting, unlinking and reversing, and the page that does it.

The regional centre's administrators only: they are the role that sees national identity
numbers in full (the linking review); every action needs a reason and is audited with the local
Patient IDs and identity ids it touched, never a national number. The rules live in
:mod:`service.patients.review`; handlers only translate HTTP.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from ...patients import review
from ..access import allow, at_centre
from ..auditing import audit_context, audited
from ..keys import DATABASE, current_user
from ..models import RecordId, Strict
from ..requests import path_id, read_model, read_query
from .openapi import documented, page
from .pages import render

routes = web.RouteTableDef()

LINKERS = at_centre("admin")
"""The regional centre's administrators: linking is consortium-wide (every facility's patients,
national numbers in full), which a clinic's administrator, whose reach is their own facility,
must not be granted for sharing the role's name."""
RESOURCE = "patient_identity"
BASE = "/api/admin/patients"


class CandidateQuery(Strict):
    status: Literal["pending", "linked", "rejected"] = "pending"


class Reason(Strict):
    reason: str = Field(min_length=1, max_length=1000, description="Why (kept in the history)")


class LinkBody(Reason):
    identity_id: RecordId
    other_identity_id: RecordId


class PatientIdentifier(BaseModel):
    system: str = Field(description="resident_id or health_card")
    value: str = Field(description="The number in full (administrators only)")
    masked: str = Field(description="1101**********1234-style, for showing where not needed")
    source: str = Field(description="Where it arrived: dicom, hl7, fhir, web")
    disputed: str = Field(description="Why it cannot be this patient's ('' when it can)")


class PatientIdentity(BaseModel):
    id: int
    facility_id: int
    facility_name: str
    patient_id: str
    person_id: int
    name: str
    birth_date: str
    sex: str
    person_identities: int = Field(description="How many local identities its person has")
    identifiers: list[PatientIdentifier]


class Candidate(BaseModel):
    id: int
    score: float
    reasons: list[str] = Field(description="birth_date, sex, ideographic_name or phonetic_name")
    status: Literal["pending", "linked", "rejected"]
    found_at: str
    decided_by_name: str | None
    decided_at: str | None
    reason: str
    change_id: int | None
    identity: PatientIdentity
    other: PatientIdentity


class CandidateList(BaseModel):
    items: list[Candidate]


class LinkChange(BaseModel):
    id: int
    action: Literal["link", "unlink"]
    method: Literal["identifier", "administrator", "reversal"]
    actor_name: str | None
    reason: str
    at: str
    reverses: int | None
    reversed_by: int | None
    identity: PatientIdentity | None
    other: PatientIdentity | None


class LinkHistory(BaseModel):
    items: list[LinkChange]


class Decided(BaseModel):
    change_id: int | None = Field(description="The link history row written (None: rejected)")
    identity_ids: list[int]


def _patients(rows: list[dict]) -> list[str]:
    """The local Patient IDs named, for the audit record's per-patient index."""
    found = {i["patient_id"] for row in rows for i in (row.get("identity"), row.get("other")) if i}
    return sorted(found)


@routes.get(BASE + "/candidates")
@allow(LINKERS)
@audited("patient_link.candidates", RESOURCE)
@documented(
    "The review list: pairs of local identities whose birth date, sex and name agree but no"
    " national identifier links (never linked automatically), with both identities side by side",
    query=CandidateQuery,
    response=CandidateList,
)
async def list_candidates(request: web.Request) -> web.Response:
    query = read_query(request, CandidateQuery)
    rows = await request.app[DATABASE].read(review.review_list, query.status)
    audit_context(request).detail["patients"] = _patients(rows)
    return web.json_response({"items": rows})


@routes.get(BASE + "/changes")
@allow(LINKERS)
@audited("patient_link.history", RESOURCE)
@documented(
    "The link history (automatic by identifier, an administrator's, reversals), newest first",
    response=LinkHistory,
)
async def link_history(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].read(review.link_history)
    audit_context(request).detail["patients"] = _patients(rows)
    return web.json_response({"items": rows})


async def _decide(
    request: web.Request, action, targets: tuple[int, ...], reason: str
) -> web.Response:
    """Run one administrator's decision on those identities (or candidate, or change: the first
    target is the audit record's resource) and answer what it changed."""
    user = current_user(request)
    decision = await request.app[DATABASE].write(action, *targets, user.id, reason)
    audit = audit_context(request)
    audit.resource_id = str(targets[0])
    audit.detail.update(
        identities=list(decision.identity_ids),
        change=decision.change_id,
        patients=list(decision.patient_ids),
    )
    answer = Decided(change_id=decision.change_id, identity_ids=list(decision.identity_ids))
    return web.json_response(answer.model_dump())


@routes.post(BASE + "/candidates/{id:\\d+}/link")
@allow(LINKERS)
@audited("patient.linked", "patient_link_candidate")
@documented(
    "Confirm a likely match: link both identities (and everyone linked with either); 409 when"
    " it was already decided or they are already one person",
    body=Reason,
    response=Decided,
)
async def link_candidate(request: web.Request) -> web.Response:
    body = await read_model(request, Reason)
    return await _decide(request, review.link_candidate, (path_id(request),), body.reason)


@routes.post(BASE + "/candidates/{id:\\d+}/reject")
@allow(LINKERS)
@audited("patient.link_rejected", "patient_link_candidate")
@documented(
    "Reject a likely match (two different people): it is not proposed again; 409 when decided",
    body=Reason,
    response=Decided,
)
async def reject_candidate(request: web.Request) -> web.Response:
    body = await read_model(request, Reason)
    return await _decide(request, review.reject_candidate, (path_id(request),), body.reason)


@routes.post(BASE + "/links")
@allow(LINKERS)
@audited("patient.linked", RESOURCE)
@documented(
    "Link two local identities as one person; 404 when one does not exist, 409 when they"
    " already are one person",
    body=LinkBody,
    response=Decided,
)
async def link_identities(request: web.Request) -> web.Response:
    body = await read_model(request, LinkBody)
    targets = (body.identity_id, body.other_identity_id)
    return await _decide(request, review.link_identities, targets, body.reason)


@routes.post(BASE + "/identities/{id:\\d+}/unlink")
@allow(LINKERS)
@audited("patient.unlinked", RESOURCE)
@documented(
    "Take a local identity out of its person; no identifier links it back to the identities"
    " it leaves. 409 when it is linked to no other",
    body=Reason,
    response=Decided,
)
async def unlink_identity(request: web.Request) -> web.Response:
    body = await read_model(request, Reason)
    return await _decide(request, review.unlink_identity, (path_id(request),), body.reason)


@routes.post(BASE + "/changes/{id:\\d+}/reverse")
@allow(LINKERS)
@audited("patient.link_reversed", "patient_link_change")
@documented(
    "Reverse a link or unlink (once): the identities it moved go back; 409 when already"
    " reversed or itself a reversal",
    body=Reason,
    response=Decided,
)
async def reverse_change(request: web.Request) -> web.Response:
    body = await read_model(request, Reason)
    return await _decide(request, review.reverse, (path_id(request),), body.reason)


@routes.get("/admin/patients")
@allow(LINKERS)
@page("Patient identities across facilities: the review list of likely matches and the history")
async def patients_page(request: web.Request) -> web.Response:
    return render(request, "admin_patients.html")
