"""Liveness for the container health check and operators."""

from __future__ import annotations

from aiohttp import web

from ..auth.access import public
from .keys import FOLLOWER

routes = web.RouteTableDef()


@routes.get("/healthz")
@public
async def healthz(request: web.Request) -> web.Response:
    follower = request.app.get(FOLLOWER)
    caught_up = bool(follower and follower.caught_up.is_set())
    return web.json_response({"status": "ok", "ingest_caught_up": caught_up})
