"""Liveness for the container health check and operators."""

from __future__ import annotations

from aiohttp import web

from ..auth.access import public
from .keys import FOLLOWER, ROLE

routes = web.RouteTableDef()


@routes.get("/healthz")
@public
async def healthz(request: web.Request) -> web.Response:
    """``ingest_caught_up`` comes from the primary web process, the one that follows Orthanc;
    another process answers null (its ``web_process`` says which answered)."""
    role = request.app[ROLE]
    follower = request.app.get(FOLLOWER)
    caught_up = bool(follower and follower.caught_up.is_set()) if role.primary else None
    return web.json_response(
        {
            "status": "ok",
            "ingest_caught_up": caught_up,
            "web_process": role.index,
            "web_processes": role.count,
        }
    )
