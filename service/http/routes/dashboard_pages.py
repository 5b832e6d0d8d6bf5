"""The centre's dashboard page and its charts (server-side SVG, scoped like the API)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ...auth.access import consultation_scope
from ...clock import utc_now
from ...dashboard import charts, qc_charts, turnaround
from ...dashboard.repeats import MONTHS, repeat_figures
from ...patients.repeats import zone_of
from ...peer_review.figures import reader_figures
from ...quality.access import qc_facilities
from ...quality.labels import exam_item_label
from ...quality.recompute import shift
from ...storage import quality as qc_scores
from ...storage.turnaround import Period
from ..access import allow
from ..auditing import not_audited
from ..errors import ApiError
from ..keys import DATABASE, RENDERER, current_user
from ..requests import read_query
from .openapi import documented, page
from .pages import page_locale, render
from .quality_routes import recognition_changes
from .turnaround_routes import AGGREGATES, DASHBOARD_ROLES, WindowQuery, _period

routes = web.RouteTableDef()

SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
"""An SVG shown through <img> runs no script; its own inline <style> is all it needs."""


@routes.get("/dashboard")
@allow(*DASHBOARD_ROLES)
@page("The turnaround dashboard page")
async def dashboard_page(request: web.Request) -> web.Response:
    """The shell: charts are <img> of the chart route, tables come from the turnaround API;
    the recognition list's latest changes (of the caller's facilities) are rendered here."""
    changes = await recognition_changes(request, limit=10)
    user = current_user(request)
    peer = None
    if user.role in ("specialist", "manager"):
        peer = await reader_figures(request.app[DATABASE], user)
    return render(
        request,
        "dashboard.html",
        recognition_changes=changes,
        peer_figures=peer,
        repeat_figures=await _repeat_figures(request),
        repeat_months=MONTHS,
    )


async def _repeat_figures(request: web.Request) -> list[dict[str, Any]]:
    """Repeat exams per facility and exam item (the caller's scope), exam items worded in
    the page's language, months in the caller's facility zone."""
    user = current_user(request)
    zone = zone_of({"timezone": user.facility_timezone})
    rows = await repeat_figures(request.app[DATABASE], consultation_scope(user), utc_now(), zone)
    locale = page_locale(request)
    return [r | {"exam": exam_item_label(r["modality"], r["body_part"], locale)} for r in rows]


async def _figures(request: web.Request, name: str, period: Period) -> Any:
    database = request.app[DATABASE]
    scope = consultation_scope(current_user(request))
    now = utc_now()
    match name:
        case "tat":
            return await turnaround.turnaround(database, scope, period, ["priority"])
        case "sla":
            return await turnaround.sla(database, scope, period, ["week", "priority"], now)
        case "queue":
            return await turnaround.queue_now(database, scope, now)
        case "workload":
            return await turnaround.workload(database, scope, period)
        case "quality":
            return await turnaround.quality(database, scope, period, "month")
        case "qc":  # stored QC scores: the 12 months up to the period's end, the caller's own
            last = period.until[:7]
            facilities = qc_facilities(current_user(request))
            first, top = shift(last, -11), qc_charts.TOP
            return await database.read(qc_scores.trend_rows, facilities, first, last, top)
    raise ApiError(404, "not_found", f"no chart named {name!r}")


DRAW = {
    "tat": charts.tat_by_priority,
    "sla": charts.sla_over_time,
    "queue": charts.queue_now,
    "workload": charts.workload_by_reader,
    "quality": charts.quality_by_facility,
    "qc": qc_charts.qc_trend,
}


@routes.get(r"/dashboard/charts/{name:[a-z]+}.svg")
@allow(*DASHBOARD_ROLES)
@not_audited(AGGREGATES)
@documented(
    "One of the dashboard's charts as SVG, over the period asked",
    query=WindowQuery,
    response_media_type="image/svg+xml",
)
async def chart(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    query = read_query(request, WindowQuery)
    figures = await _figures(request, name, _period(query))
    gettext = request.app[RENDERER].gettext(page_locale(request))
    svg = await asyncio.to_thread(DRAW[name], figures, gettext)
    response = web.Response(body=svg, content_type="image/svg+xml")
    response.headers["Content-Security-Policy"] = SVG_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response
