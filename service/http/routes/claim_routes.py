"""Claiming consultations before reading: take or renew, release, reassign (managers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from aiohttp import web
from pydantic import BaseModel, Field

from ...clock import utc_now
from ...worklist import claims
from ...worklist.review_claims import ReviewRefused
from ..access import allow
from ..auditing import audit_context, audited
from ..errors import ApiError
from ..keys import DATABASE, EFFECTS, SETTINGS, current_user
from ..models import RecordId, Strict
from ..requests import path_id, read_model
from ..review_policy import review_policy
from .openapi import NO_BODY, documented

routes = web.RouteTableDef()


class ClaimResponse(BaseModel):
    consultation_id: int
    claimed_by: str | None = Field(description="The holder's display name (else username)")
    claimed_by_id: int | None
    claim_expires_at: str | None = Field(description="Renew by claiming again before this")


class ReassignBody(Strict):
    user_id: RecordId = Field(description="An enabled specialist who reads for the consultation")


class AssigneeItem(BaseModel):
    id: int
    name: str = Field(description="Display name, else username")
    username: str
    subspecialties: list[str]
    on_duty: bool = Field(description="On the roster as a reader right now")
    claims: int = Field(description="Open consultations the specialist holds a live claim on")
    holder: bool = Field(description="Holds this consultation's claim now")


class AssigneeList(BaseModel):
    items: list[AssigneeItem]


@routes.get(r"/api/consultations/{id:\d+}/assignees")
@allow("manager")
@audited("claim.assignees", "consultation")
@documented(
    "Who a manager can hand the consultation to: on-duty readers first, then the least busy",
    response=AssigneeList,
    errors=(404,),
)
async def list_assignees(request: web.Request) -> web.Response:
    found = await request.app[DATABASE].read(
        claims.assignees, path_id(request), current_user(request), utc_now()
    )
    return web.json_response({"items": [asdict(a) for a in found]})


@routes.post(r"/api/consultations/{id:\d+}/claim")
@allow("specialist")
@audited("claim.take", "consultation")
@documented(
    "Claim a consultation before reading it, or renew one's own claim (a lease)",
    body=NO_BODY,
    response=ClaimResponse,
    errors=(403, 404, 409),
)
async def take_claim(request: web.Request) -> web.Response:
    user = current_user(request)
    try:
        outcome = await _write(
            request, claims.claim, user, utc_now(), _lease(request), review_policy(request.app)
        )
    except ReviewRefused as exc:
        raise ApiError(403, exc.code, exc.detail) from exc
    except claims.ClaimHeld as held:
        raise ApiError(
            409,
            held.code,
            held.detail,
            claimed_by=held.holder,
            claimed_by_id=held.holder_id,
            claim_expires_at=held.expires_at,
        ) from held
    return _answer(request, outcome)


@routes.post(r"/api/consultations/{id:\d+}/release")
@allow("specialist", "manager")
@audited("claim.release", "consultation")
@documented(
    "Release a claim (its holder, or a manager of the holder's facility or of the regional centre)",
    body=NO_BODY,
    response=ClaimResponse,
    errors=(403, 404, 409),
)
async def release_claim(request: web.Request) -> web.Response:
    try:
        outcome = await _write(request, claims.release, current_user(request), utc_now())
    except claims.NotHolder as exc:
        raise ApiError(403, "not_holder", str(exc)) from exc
    return _answer(request, outcome)


@routes.post(r"/api/consultations/{id:\d+}/reassign")
@allow("manager")
@audited("claim.reassign", "consultation")
@documented(
    "Hand a consultation to another specialist (managers: their own facility's readers; the"
    " regional centre's managers: anyone's)",
    body=ReassignBody,
    response=ClaimResponse,
    errors=(400, 403, 404),
)
async def reassign_claim(request: web.Request) -> web.Response:
    body = await read_model(request, ReassignBody)
    audit_context(request).detail["to"] = body.user_id
    try:
        outcome = await _write(
            request,
            claims.reassign,
            current_user(request),
            body.user_id,
            utc_now(),
            _lease(request),
            review_policy(request.app),
        )
    except claims.InvalidAssignee as exc:
        raise ApiError(400, "invalid_assignee", str(exc)) from exc
    except ReviewRefused as exc:  # the report awaits review: not its writer, not a low grade
        raise ApiError(400, "invalid_assignee", f"{exc.code}: {exc.detail}") from exc
    except claims.NotYourReader as exc:
        raise ApiError(403, "not_your_reader", str(exc)) from exc
    return _answer(request, outcome)


async def _write(
    request: web.Request, fn: Callable[..., claims.ClaimOutcome], *args: object
) -> claims.ClaimOutcome:
    consultation_id = path_id(request)
    return await request.app[EFFECTS].write(request.app[DATABASE], fn, consultation_id, *args)


def _lease(request: web.Request) -> float:
    return request.app[SETTINGS].claim_lease_minutes


def _answer(request: web.Request, outcome: claims.ClaimOutcome) -> web.Response:
    audit = audit_context(request)
    audit.touches(outcome.patient_id, outcome.study_instance_uid)
    audit.detail["claimed_by_id"] = outcome.claimed_by_id
    answer = ClaimResponse(
        consultation_id=outcome.consultation_id,
        claimed_by=outcome.claimed_by,
        claimed_by_id=outcome.claimed_by_id,
        claim_expires_at=outcome.claim_expires_at,
    )
    return web.json_response(answer.model_dump())
