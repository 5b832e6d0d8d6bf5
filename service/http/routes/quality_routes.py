"""QC scores and the mutual-recognition list (issue 20 items 2 and 3): the API and the page.

Scores and the list's history are aggregates with no patient data (counts and shares per
facility × exam item × month), scoped in the query to the caller's facilities
(service/quality/access.py); another facility's figures answer 404 when asked by id. The
on-demand recomputation changes stored figures and is audited.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, Field

from ...clock import from_iso, to_iso, utc_now
from ...quality import recompute as qc
from ...quality.access import may_see_facility, qc_facilities
from ...quality.labels import change_labels, exam_item_label, reason_text, status_labels
from ...storage import quality as scores_store
from ...storage import recognition as list_store
from ..access import AUTHENTICATED, allow, at_centre
from ..answers import PeriodItems
from ..auditing import audit_context, audited, not_audited
from ..errors import ApiError
from ..keys import DATABASE, RECOGNITION_RULES, RENDERER, current_user
from ..models import Strict
from ..requests import read_model, read_query
from .openapi import JSON, documented, page
from .pages import page_locale, render

routes = web.RouteTableDef()

QC_ROLES = ("radiographer", "clinician", "requester", "specialist", "manager")
AGGREGATES = (
    "QC aggregates (counts and shares per facility, exam item and month) scoped to the "
    "caller's facilities; no patient data"
)
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
PAGE_CHANGES = 100
"""The page shows the latest changes; the whole history is GET /api/recognition/history."""


class ScoresQuery(Strict):
    from_month: str | None = Field(default=None, pattern=MONTH, description="YYYY-MM, inclusive")
    to_month: str | None = Field(default=None, pattern=MONTH, description="YYYY-MM, inclusive")
    facility_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


class ListQuery(Strict):
    format: Literal["json", "csv"] = "json"
    include_suspended: bool = False


class HistoryQuery(Strict):
    facility_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    limit: int = Field(default=200, ge=1, le=1000)


class RecomputeRequest(Strict):
    month: str | None = Field(default=None, pattern=MONTH, description="YYYY-MM; default: "
                              "the month just closed and the current one")  # fmt: skip
    all: bool = Field(default=False, description="every month with studies")


class RecognitionList(BaseModel):
    """The list now: facility × exam item, status, since (UTC)."""

    at: str
    items: list[dict[str, Any]]


class RecognitionHistory(BaseModel):
    """Changes, latest first: change, at (UTC), reasons, totals, rules and months behind it."""

    items: list[dict[str, Any]]


class RecomputeAnswer(BaseModel):
    """Rows stored per month recomputed, and the changes the list made."""

    months: dict[str, int]
    changes: list[dict[str, Any]]


def _facilities(request: web.Request, facility_id: int | None) -> tuple[int, ...] | None:
    user = current_user(request)
    if facility_id is None:
        return qc_facilities(user)
    if not may_see_facility(user, facility_id):
        raise ApiError(404, "not_found", f"no QC figures of facility {facility_id} for you")
    return (facility_id,)


@routes.get("/api/quality/scores")
@allow(*QC_ROLES)
@not_audited(AGGREGATES)
@documented("Stored QC scores per facility, exam item and month (default the last 12 months)",
            query=ScoresQuery, response=PeriodItems)  # fmt: skip
async def get_scores(request: web.Request) -> web.Response:
    query = read_query(request, ScoresQuery)
    facilities = _facilities(request, query.facility_id)
    last = query.to_month or utc_now().strftime("%Y-%m")
    first = query.from_month or qc.shift(last, -11)
    items = await request.app[DATABASE].read(scores_store.read_scores_json, facilities, first, last)
    head = json.dumps({"from": first, "to": last})[:-1]
    return web.Response(text=f'{head}, "items": {items}}}', content_type="application/json")


@routes.post("/api/quality/recompute")
@allow(at_centre("manager"))
@audited("quality.recompute", "quality")
@documented("Recompute QC scores (a month, the last two, or all) and then the recognition list",
            body=RecomputeRequest, response=RecomputeAnswer)  # fmt: skip
async def post_recompute(request: web.Request) -> web.Response:
    body = await read_model(request, RecomputeRequest)
    database, rules = request.app[DATABASE], request.app[RECOGNITION_RULES]
    months = await qc.all_months(database) if body.all else ([body.month] if body.month else None)
    outcome = await qc.recompute(database, rules, utc_now(), months, current_user(request).id)
    answer = outcome.as_dict()
    audit_context(request).detail |= {"months": sorted(answer["months"]),
                                      "changes": len(answer["changes"])}  # fmt: skip
    return web.json_response(answer)


def _list_csv(items: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["facility_id", "facility", "aet", "modality", "body_part", "status", "since"])
    for i in items:
        writer.writerow([i["facility_id"], i["facility"], i["aet"], i["modality"],
                         i["body_part"], i["status"], i["since"]])  # fmt: skip
    return out.getvalue()


@routes.get("/api/recognition")
@allow(AUTHENTICATED)
@not_audited("the published recognition list: facilities and exam items, no patient data")
@documented("The mutual-recognition list (facility × exam item, since when); format=csv or "
            "Accept: text/csv for CSV", query=ListQuery, response=RecognitionList,
            response_media_type=(JSON, "text/csv"))  # fmt: skip
async def get_recognition(request: web.Request) -> web.Response:
    query = read_query(request, ListQuery)
    items = await request.app[DATABASE].read(list_store.listing, query.include_suspended)
    if query.format == "csv" or request.headers.get("Accept", "").startswith("text/csv"):
        response = web.Response(text=_list_csv(items), content_type="text/csv", charset="utf-8")
        response.headers["Content-Disposition"] = 'attachment; filename="recognition.csv"'
        return response
    return web.json_response({"at": to_iso(utc_now()), "items": items})


@routes.get("/api/recognition/history")
@allow(*QC_ROLES)
@not_audited(AGGREGATES)
@documented("Changes to the recognition list, latest first, with reasons and the QC totals "
            "behind them (the caller's facilities)", query=HistoryQuery,
            response=RecognitionHistory)  # fmt: skip
async def get_history(request: web.Request) -> web.Response:
    query = read_query(request, HistoryQuery)
    facilities = _facilities(request, query.facility_id)
    items = await request.app[DATABASE].read(list_store.history, facilities, query.limit)
    return web.json_response({"items": items})


def _local(at: str, zone: str) -> str:
    try:
        tz = ZoneInfo(zone)
    except (KeyError, ValueError):
        tz = UTC
    moment: datetime = from_iso(at).astimezone(tz)
    return moment.strftime("%Y-%m-%d %H:%M")


async def recognition_changes(request: web.Request, limit: int = 200) -> list[dict[str, Any]]:
    """The latest changes the caller may see, worded in the page's language, with times in
    each facility's zone (the recognition page and the dashboard)."""
    user = current_user(request)
    if user.role not in QC_ROLES:
        return []
    locale = page_locale(request)
    _ = request.app[RENDERER].gettext(locale)
    changes = await request.app[DATABASE].read(list_store.history, qc_facilities(user), limit)
    kinds = change_labels(_)
    return [
        {**c, "exam": exam_item_label(c["modality"], c["body_part"], locale),
         "at_local": _local(c["at"], c["timezone"]), "change_label": kinds[c["change"]],
         "reasons_text": "; ".join(reason_text(r, _) for r in c["reasons"])}
        for c in changes
    ]  # fmt: skip


@routes.get("/recognition")
@allow(AUTHENTICATED)
@page("The mutual-recognition list and its changes")
async def recognition_page(request: web.Request) -> web.Response:
    """Server-rendered: times in each listed facility's zone, words in the reader's language."""
    locale = page_locale(request)
    statuses = status_labels(request.app[RENDERER].gettext(locale))
    listed = await request.app[DATABASE].read(list_store.listing, True)
    rows = [
        {**i, "exam": exam_item_label(i["modality"], i["body_part"], locale),
         "since_local": _local(i["since"], i["timezone"]), "status_label": statuses[i["status"]]}
        for i in listed
    ]  # fmt: skip
    history = await recognition_changes(request, PAGE_CHANGES)
    return render(request, "recognition.html", rows=rows, history=history)
