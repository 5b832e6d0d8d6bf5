"""The message thread of a consultation and the preliminary answer."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from ...clock import utc_now
from ...worklist import conversation
from ..access import allow
from ..auditing import audit_context, audited
from ..keys import DATABASE, EFFECTS, current_user
from ..models import Strict
from ..requests import path_id, read_model
from .openapi import documented
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()


class MessageBody(Strict):
    body: str = Field(min_length=1, max_length=4000)


class Message(BaseModel):
    id: int
    body: str
    created_at: str
    author_id: int
    author: str
    author_role: str
    author_facility: str


class MessageList(BaseModel):
    items: list[Message]


class PreliminaryBody(Strict):
    text: str = Field(min_length=1, max_length=4000)


class Preliminary(BaseModel):
    text: str
    at: str = Field(description="When it was sent (turnaround: received -> preliminary)")
    by: str


@routes.get(r"/api/consultations/{id:\d+}/messages")
@allow(*WORKLIST_ROLES)
@audited("message.read", "consultation")
@documented("The message thread of a consultation", response=MessageList, errors=(404,))
async def get_messages(request: web.Request) -> web.Response:
    thread = await request.app[DATABASE].read(
        conversation.read_thread, path_id(request), current_user(request)
    )
    _audit(request, thread.consultation)
    audit_context(request).detail["messages"] = [m["id"] for m in thread.messages]
    answer = MessageList(items=[Message(**m) for m in thread.messages])
    return web.json_response(answer.model_dump())


@routes.post(r"/api/consultations/{id:\d+}/messages")
@allow(*WORKLIST_ROLES)
@audited("message.post", "consultation")
@documented(
    "Post a message to the consultation's thread (kept for ever)",
    body=MessageBody,
    response=Message,
    errors=(400, 404),
    success=(201,),
)
async def post_message(request: web.Request) -> web.Response:
    body = await read_model(request, MessageBody)
    said = await request.app[EFFECTS].write(
        request.app[DATABASE],
        conversation.post_message,
        path_id(request),
        current_user(request),
        body.body,
        utc_now(),
    )
    _audit(request, said.consultation)
    audit_context(request).detail["message_id"] = said.item["id"]
    return web.json_response(Message(**said.item).model_dump(), status=201)


@routes.post(r"/api/consultations/{id:\d+}/preliminary")
@allow("specialist")
@audited("consultation.preliminary", "consultation")
@documented(
    "Send a preliminary answer before the signed report (the claim holder only)",
    body=PreliminaryBody,
    response=Preliminary,
    errors=(400, 404, 409),
    success=(201,),
)
async def post_preliminary(request: web.Request) -> web.Response:
    body = await read_model(request, PreliminaryBody)
    said = await request.app[EFFECTS].write(
        request.app[DATABASE],
        conversation.send_preliminary,
        path_id(request),
        current_user(request),
        body.text,
        utc_now(),
    )
    _audit(request, said.consultation)
    return web.json_response(Preliminary(**said.item).model_dump(), status=201)


def _audit(request: web.Request, touched: conversation.Touched) -> None:
    audit_context(request).touches(touched.patient_id, touched.study_instance_uid)
