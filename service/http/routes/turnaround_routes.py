"""Turnaround API: stage percentiles, SLA compliance, breaches, workload (CSV), quality, queue.

Aggregates only, scoped in SQL to the caller's facilities; the breach list names consultations
(ids, facility; no patient names) and is audited like a search of patient data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field, create_model, field_validator, model_validator

from ...auth.access import consultation_scope
from ...clock import to_iso, utc_now
from ...dashboard import turnaround
from ...storage.turnaround import Period
from ..access import allow
from ..answers import PeriodItems, QueueNow, TurnaroundGroups
from ..auditing import audit_context, audited, not_audited
from ..keys import DATABASE, current_user
from ..models import Strict
from ..requests import read_query
from .openapi import JSON, documented

routes = web.RouteTableDef()

DASHBOARD_ROLES = ("radiographer", "clinician", "specialist", "manager")
DEFAULT_DAYS = 30
AGGREGATES = "aggregates (counts, durations) scoped to the caller's facilities; no patient data"


class _Window(Strict):
    to: AwareDatetime | None = Field(default=None, description="ISO 8601 with a zone; exclusive")
    format: Literal["json", "csv"] = "json"

    @model_validator(mode="before")
    @classmethod
    def empty_means_absent(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v != ""} if isinstance(data, dict) else data

    def period(self) -> Period:
        """[from, to): default the last 30 days up to now."""
        until = self.to or utc_now()
        since: datetime = getattr(self, "from") or until - timedelta(days=DEFAULT_DAYS)
        if since >= until:
            raise ValueError("'from' must be earlier than 'to'")
        return Period(to_iso(since), to_iso(until))


# ``from`` is a Python keyword: declared by name, as in audit_routes (read_query matches names).
WindowQuery = create_model(
    "WindowQuery",
    __base__=_Window,
    **{"from": (AwareDatetime | None, Field(default=None, description="ISO 8601; inclusive"))},
)


class TurnaroundQuery(WindowQuery):  # type: ignore[misc,valid-type]
    group_by: list[str] = Field(default_factory=list, description=", ".join(turnaround.GROUPS))

    @field_validator("group_by")
    @classmethod
    def known_groups(cls, value: list[str]) -> list[str]:
        unknown = [g for g in value if g not in turnaround.GROUPS]
        if unknown or len(set(value)) != len(value) or len(value) > 3:
            raise ValueError(f"group_by: up to 3 distinct of {', '.join(turnaround.GROUPS)}")
        return value


class BreachQuery(WindowQuery):  # type: ignore[misc,valid-type]
    limit: int = Field(default=100, ge=1, le=1000)


class QualityQuery(WindowQuery):  # type: ignore[misc,valid-type]
    period_of: Literal["day", "week", "month"] = "month"


def _period(query: Any) -> Period:
    try:
        return query.period()
    except ValueError as exc:
        from ..errors import ApiError

        raise ApiError(400, "invalid_request", str(exc)) from exc


def _csv(text: str, name: str) -> web.Response:
    response = web.Response(text=text, content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _wants_csv(request: web.Request, query: Any) -> bool:
    return query.format == "csv" or request.headers.get("Accept", "").startswith("text/csv")


@routes.get("/api/turnaround")
@allow(*DASHBOARD_ROLES)
@not_audited(AGGREGATES)
@documented(
    "Turnaround per stage (count, p50/p90/p95/mean seconds), grouped; consultations received "
    "in [from, to) UTC; format=csv or Accept: text/csv for CSV",
    query=TurnaroundQuery,
    response=TurnaroundGroups,
    response_media_type=(JSON, "text/csv"),
)
async def get_turnaround(request: web.Request) -> web.Response:
    query = read_query(request, TurnaroundQuery)
    period = _period(query)
    scope = consultation_scope(current_user(request))
    groups = await turnaround.turnaround(request.app[DATABASE], scope, period, query.group_by)
    if _wants_csv(request, query):
        return _csv(turnaround.turnaround_csv(query.group_by, groups), "turnaround.csv")
    answer = _answer(period, query.group_by, groups)
    answer["review_stages"] = await turnaround.review_stages(request.app[DATABASE], scope, period)
    return web.json_response(answer)


def _answer(period: Period, group_by: list[str], groups: list[dict]) -> dict[str, Any]:
    return {
        "from": period.since,
        "to": period.until,
        "time_zone": "UTC",
        "group_by": group_by,
        "groups": groups,
    }


@routes.get("/api/turnaround/sla")
@allow(*DASHBOARD_ROLES)
@not_audited(AGGREGATES)
@documented("SLA compliance: share first signed by the due time, for consultations due in the "
            "period, grouped", query=TurnaroundQuery, response=TurnaroundGroups)  # fmt: skip
async def get_sla(request: web.Request) -> web.Response:
    query = read_query(request, TurnaroundQuery)
    period = _period(query)
    scope = consultation_scope(current_user(request))
    groups = await turnaround.sla(request.app[DATABASE], scope, period, query.group_by, utc_now())
    return web.json_response(_answer(period, query.group_by, groups))


@routes.get("/api/turnaround/breaches")
@allow(*DASHBOARD_ROLES)
@audited("turnaround.breaches", "consultation")
@documented("SLA breaches due in the period, latest first, with the stage where the time went",
            query=BreachQuery, response=PeriodItems)  # fmt: skip
async def get_breaches(request: web.Request) -> web.Response:
    query = read_query(request, BreachQuery)
    period = _period(query)
    scope = consultation_scope(current_user(request))
    items = await turnaround.breaches(request.app[DATABASE], scope, period, utc_now(), query.limit)
    audit_context(request).detail |= {
        "filters": {"from": period.since, "to": period.until},
        "consultations": [item["consultation_id"] for item in items],
    }
    return web.json_response({"from": period.since, "to": period.until, "items": items})


@routes.get("/api/turnaround/workload")
@allow(*DASHBOARD_ROLES)
@not_audited(AGGREGATES)
@documented("Reads per month, reader, facility and modality (first signatures in the period)",
            query=WindowQuery, response=PeriodItems,
            response_media_type=(JSON, "text/csv"))  # fmt: skip
async def get_workload(request: web.Request) -> web.Response:
    query = read_query(request, WindowQuery)
    period = _period(query)
    scope = consultation_scope(current_user(request))
    if _wants_csv(request, query):
        text = await turnaround.workload_as_csv(request.app[DATABASE], scope, period)
        return _csv(text, "workload.csv")
    rows = await turnaround.workload(request.app[DATABASE], scope, period)
    return web.json_response({"from": period.since, "to": period.until, "items": rows})


@routes.get("/api/turnaround/workload.csv")
@allow(*DASHBOARD_ROLES)
@not_audited(AGGREGATES)
@documented(
    "The workload as CSV, for settling remote-reading fees",
    query=WindowQuery,
    response_media_type="text/csv",
)
async def get_workload_csv(request: web.Request) -> web.Response:
    query = read_query(request, WindowQuery)
    scope = consultation_scope(current_user(request))
    text = await turnaround.workload_as_csv(request.app[DATABASE], scope, _period(query))
    return _csv(text, "workload.csv")


@routes.get("/api/turnaround/quality")
@allow(*DASHBOARD_ROLES)
@not_audited(AGGREGATES)
@documented("Image quality ratings per facility, modality and period, with the main reasons",
            query=QualityQuery, response=PeriodItems)  # fmt: skip
async def get_quality(request: web.Request) -> web.Response:
    query = read_query(request, QualityQuery)
    period = _period(query)
    scope = consultation_scope(current_user(request))
    rows = await turnaround.quality(request.app[DATABASE], scope, period, query.period_of)
    return web.json_response({"from": period.since, "to": period.until, "items": rows})


@routes.get("/api/turnaround/queue")
@allow(*DASHBOARD_ROLES)
@not_audited(AGGREGATES)
@documented(
    "Open consultations now per priority: count, oldest age, age buckets", response=QueueNow
)
async def get_queue(request: web.Request) -> web.Response:
    scope = consultation_scope(current_user(request))
    items = await turnaround.queue_now(request.app[DATABASE], scope, utc_now())
    return web.json_response({"at": to_iso(utc_now()), "items": items})
