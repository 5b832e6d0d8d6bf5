"""Administration: the quarantine of studies nobody could be credited with, facilities."""

from __future__ import annotations

from aiohttp import web

from ..auth.access import allow
from ..storage import facilities as facility_store
from ..storage import ingest as ingest_store
from .auditing import audited, not_audited
from .keys import DATABASE
from .openapi import documented

routes = web.RouteTableDef()


@routes.get("/api/admin/quarantine")
@allow("admin")
@audited("quarantine.view", "quarantine")
@documented("Studies from unknown AE titles or sent around the service, kept for review")
async def quarantine(request: web.Request) -> web.Response:
    include_resolved = request.query.get("resolved") in {"1", "true"}
    rows = await request.app[DATABASE].read(ingest_store.list_quarantine, include_resolved)
    return web.json_response({"items": rows})


@routes.get("/api/facilities")
@allow("admin", "manager", "specialist")
@not_audited("the consortium's facilities, no patient data")
@documented("Facilities of the consortium")
async def facilities(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].read(facility_store.list_facilities)
    return web.json_response({"items": rows})
