"""Health for the container health check, load balancers and operators
(service/runtime/health.py)."""

from __future__ import annotations

from aiohttp import web

from ..access import public
from ..answers import Health
from ..keys import FOLLOWER, HEALTH, ROLE
from .openapi import JSON, documented

routes = web.RouteTableDef()


@routes.get("/healthz")
@public
@documented(
    "Health: 200 when Orthanc answers and ingest is not failing, else 503 naming what is wrong",
    response=Health,
    answers={503: {JSON: Health}},
)
async def healthz(request: web.Request) -> web.Response:
    """200 when Orthanc answers and ingest is not failing, else 503 with ``detail`` naming what
    is wrong. ``orthanc`` and ``ingest`` say each one's state; ``ingest_caught_up`` comes from
    the primary web process only (null elsewhere), ``web_process`` says which one answered."""
    role = request.app[ROLE]
    status, body = await request.app[HEALTH].report()
    follower = request.app.get(FOLLOWER)
    caught_up = bool(follower and follower.caught_up.is_set()) if role.primary else None
    body |= {
        "ingest_caught_up": caught_up,
        "web_process": role.index,
        "web_processes": role.count,
    }
    return web.json_response(body, status=status)
