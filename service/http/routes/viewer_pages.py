"""The specialists' image viewer page: a shell whose data comes from the scoped, audited viewer API
(`GET /api/consultations/{id}/viewer` and the frame routes), so the page itself carries no
patient data and needs no audit entry of its own."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..access import allow
from ..keys import OHIF
from ..requests import path_id
from .openapi import page
from .pages import render
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

VIEWER_STATIC_DIR = Path(__file__).resolve().parents[3] / "viewer" / "static"


@routes.get(r"/viewer/{id:\d+}")
@allow(*WORKLIST_ROLES)
@page(
    "The viewer page of a consultation's study (?embed=1: without the site header)",
    parameters=({"name": "embed", "in": "query", "required": False, "schema": {"enum": ["1"]}},),
)
async def viewer_page(request: web.Request) -> web.Response:
    """The shell only; a consultation outside the user's scope answers 404 from the API.

    ``?embed=1`` (the report editor's frame) leaves out the site header and the way back, which
    the page around it already has."""
    return render(
        request,
        "viewer.html",
        consultation_id=path_id(request),
        embedded=request.query.get("embed") == "1",
        ohif=request.app[OHIF].installed(),
    )


def add_static(app: web.Application) -> None:
    """Serve viewer/static at /static/viewer/ (registered before the generic /static/ route)."""
    app.router.add_static(
        "/static/viewer/", VIEWER_STATIC_DIR, name="viewer_static", append_version=True
    )
