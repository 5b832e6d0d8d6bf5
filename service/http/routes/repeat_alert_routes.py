"""Repeat-exam alerts on the request form and the JSON API: the 409 that stops a request
before anything is filed, and the requester's withdrawal (service/patients/repeats.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from ...clock import utc_now
from ...intake.repeat_check import Filing
from ...patients import repeats
from ..access import allow
from ..auditing import audit_context, audited
from ..errors import ApiError
from ..keys import DATABASE, RENDERER, current_user
from ..requests import path_id
from .openapi import NO_BODY, documented
from .pages import page_locale

routes = web.RouteTableDef()

REQUESTING_ROLES = ("radiographer", "requester", "clinician")


class RepeatAlertWithdrawn(BaseModel):
    id: int
    decision: str


def _zone(request: web.Request) -> Any:
    return repeats.zone_of({"timezone": current_user(request).facility_timezone})


def shown_matches(request: web.Request, matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prior exams as the requester sees them: times also in their facility's zone."""
    return repeats.with_local_times(matches, _zone(request))


async def repeat_exam_error(request: web.Request, filing: Filing) -> ApiError:
    """409 ``repeat_exam``: the alert and its prior exams; nothing was filed."""
    alert = filing.alert or {}
    _ = request.app[RENDERER].gettext(page_locale(request))
    audit = audit_context(request)
    audit.detail["repeat_alert"] = alert.get("id")
    audit.detail["repeat_decision"] = "pending"
    return ApiError(
        409,
        "repeat_exam",
        _(
            "The patient had this exam within {days} days. Proceed with a reason, or withdraw"
            " the request."
        ).format(days=alert.get("window_days")),
        alert_id=alert.get("id"),
        window_days=alert.get("window_days"),
        matches=shown_matches(request, alert.get("matches", [])),
    )


@routes.post(r"/api/repeat-alerts/{id:\d+}/withdraw")
@allow(*REQUESTING_ROLES)
@audited("repeat_alert.withdraw", "repeat_alert")
@documented(
    "Withdraw a request a repeat-exam alert stopped: nothing is filed, the repeat is avoided",
    body=NO_BODY,
    response=RepeatAlertWithdrawn,
)
async def withdraw_repeat_alert(request: web.Request) -> web.Response:
    user = current_user(request)
    alert_id = path_id(request)
    alert = await request.app[DATABASE].write(
        repeats.withdraw, alert_id, facility_id=user.facility_id, user_id=user.id, now=utc_now()
    )
    audit = audit_context(request)
    audit.touches(alert["patient_id"], None, alert_id)
    audit.detail["exam"] = f"{alert['modality']} {alert['body_part']}"
    return web.json_response(RepeatAlertWithdrawn(id=alert_id, decision="withdrawn").model_dump())
