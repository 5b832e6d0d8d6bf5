"""Personal API tokens: named, expiring, revocable bearer tokens for scripts and gateways."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel, Field

from ...auth import sessions
from ...clock import to_iso, utc_now
from ...storage import tokens as token_store
from ..access import AUTHENTICATED, allow
from ..answers import Ok, TokenList
from ..auditing import audit_context, audited, not_audited
from ..keys import DATABASE, current_user
from ..models import Strict
from ..requests import path_id, read_model
from .openapi import documented

routes = web.RouteTableDef()


class TokenRequest(Strict):
    name: str = Field(min_length=1, max_length=100)
    days: int = Field(default=90, ge=1, le=365)


class TokenCreated(BaseModel):
    id: int
    token: str = Field(description="Shown once: send as 'Authorization: Bearer <token>'")
    expires_at: str


@routes.get("/api/tokens")
@allow(AUTHENTICATED)
@not_audited("the caller's own tokens, no patient data")
@documented("Your API tokens (never the secret)", response=TokenList)
async def list_tokens(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].read(token_store.tokens_of, current_user(request).id)
    return web.json_response({"items": rows})


@routes.post("/api/tokens")
@allow(AUTHENTICATED)
@audited("token.create", "api_token")
@documented("Create an API token", body=TokenRequest, response=TokenCreated, success=(201,))
async def create_token(request: web.Request) -> web.Response:
    body = await read_model(request, TokenRequest)
    created = await sessions.create_api_token(
        request.app[DATABASE],
        current_user(request),
        body.name,
        now=utc_now(),
        lifetime=timedelta(days=body.days),
    )
    audit = audit_context(request)
    audit.resource_id = str(created.id)
    audit.detail["name"] = body.name
    answer = TokenCreated(id=created.id, token=created.token, expires_at=to_iso(created.expires_at))
    return web.json_response(answer.model_dump(), status=201)


@routes.delete("/api/tokens/{id:\\d+}")
@allow(AUTHENTICATED)
@audited("token.revoke", "api_token")
@documented("Revoke one of your API tokens", response=Ok)
async def revoke_token(request: web.Request) -> web.Response:
    await request.app[DATABASE].write(
        token_store.revoke_token,
        current_user(request).id,
        path_id(request),
        to_iso(utc_now()),
    )
    return web.json_response({"ok": True})
