"""Reviewing reports over HTTP (two-level sign-off, 报告 + 审核, issue 19): approve and co-sign,
edit and co-sign, or return to the writer with a comment. The reviewer holds the claim."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from ...auth.password_check import WrongPassword
from ...auth.sessions import LoginLocked
from ...clock import utc_now
from ...reports import review_decision
from ...reports.public_address import loopback_allowed
from ...worklist.review_claims import ReviewRefused
from ..access import allow
from ..auditing import audit_context, audited
from ..errors import ApiError, too_many_wrong_passwords
from ..keys import CA, DATABASE, EFFECTS, SETTINGS, current_user
from ..models import Strict
from ..requests import client_ip, path_id, public_base_url, read_model
from ..review_policy import review_policy
from .openapi import documented
from .report_routes import DraftBody, ReportAnswer, Signed, _audit, _report_answer, signed_answer

routes = web.RouteTableDef()

REVIEW_ERRORS = (400, 403, 404, 409, 429)


class ApproveBody(Strict):
    password: str = Field(
        min_length=1, max_length=1024, description="Re-entered: co-signing is deliberate"
    )


class EditBody(DraftBody):
    """The reviewer's text (fields not sent keep the writer's) and the reviewer's password."""

    password: str = Field(
        min_length=1, max_length=1024, description="Re-entered: co-signing is deliberate"
    )


class ReturnBody(Strict):
    comment: str = Field(min_length=1, max_length=4000, description="What the writer should change")


async def _co_sign(request: web.Request, password: str, edits: dict | None) -> web.Response:
    try:
        signed = await review_decision.co_sign(
            request.app[DATABASE],
            request.app[CA],
            current_user(request),
            path_id(request),
            password,
            now=utc_now(),
            policy=review_policy(request.app),
            public_url=public_base_url(request),
            edits=edits,
            client_ip=client_ip(request),
            tsa_url=request.app[SETTINGS].tsa_url,
            loopback_allowed=loopback_allowed(request.app[SETTINGS]),
        )
    except ReviewRefused as exc:
        raise ApiError(403, exc.code, exc.detail) from exc
    except WrongPassword as exc:
        raise ApiError(
            403, "wrong_password", "the password is wrong: the report is not co-signed"
        ) from exc
    except LoginLocked as exc:
        raise too_many_wrong_passwords(exc.retry_after) from exc
    except ValueError as exc:
        raise ApiError(400, "invalid_report", str(exc)) from exc
    _audit(request, signed.consultation)
    audit_context(request).detail |= {"version": signed.version, "code": signed.verification_code}
    await request.app[EFFECTS].apply(signed.effects)
    return web.json_response(signed_answer(signed).model_dump(), status=201)


@routes.post(r"/api/consultations/{id:\d+}/report/review/approve")
@allow("specialist")
@audited("report.review_approve", "consultation")
@documented(
    "Approve the report awaiting review and co-sign it (the reviewer holding the claim; password"
    " re-entered): the writer's signed PDF gets the reviewer's PAdES signature over the first,"
    " and the report is issued",
    body=ApproveBody,
    response=Signed,
    errors=REVIEW_ERRORS,
    success=(201,),
)
async def post_approve(request: web.Request) -> web.Response:
    body = await read_model(request, ApproveBody)
    return await _co_sign(request, body.password, None)


@routes.post(r"/api/consultations/{id:\d+}/report/review/edit")
@allow("specialist")
@audited("report.review_edit", "consultation")
@documented(
    "Edit the report awaiting review and co-sign it: the reviewer's text is issued, signed by"
    " the reviewer; the writer's signed text stays in the review history",
    body=EditBody,
    response=Signed,
    errors=REVIEW_ERRORS,
    success=(201,),
)
async def post_edit(request: web.Request) -> web.Response:
    body = await read_model(request, EditBody)
    edits = body.model_dump(exclude_unset=True, exclude={"password", "template_id"})
    audit_context(request).detail["edited"] = sorted(edits)
    return await _co_sign(request, body.password, edits)


@routes.post(r"/api/consultations/{id:\d+}/report/review/return")
@allow("specialist")
@audited("report.review_return", "consultation")
@documented(
    "Return the report awaiting review to its writer with a comment; the writer holds the"
    " claim again, edits and signs again",
    body=ReturnBody,
    response=ReportAnswer,
    errors=(400, 403, 404, 409),
)
async def post_return(request: web.Request) -> web.Response:
    body = await read_model(request, ReturnBody)
    try:
        returned = await request.app[DATABASE].write(
            review_decision.return_to_writer,
            path_id(request),
            current_user(request),
            body.comment,
            utc_now(),
            review_policy(request.app),
            request.app[SETTINGS].claim_lease_minutes,
        )
    except ReviewRefused as exc:
        raise ApiError(403, exc.code, exc.detail) from exc
    except ValueError as exc:
        raise ApiError(400, "comment_required", str(exc)) from exc
    audit_context(request).detail["to"] = returned.writer_id
    await request.app[EFFECTS].apply(returned.effects)
    return await _report_answer(request)
