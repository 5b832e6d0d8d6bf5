"""The duty roster: managers of the regional centre (and admins) say who is on duty when."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, Field

from ...clock import to_iso, utc_now
from ...storage import roster as store
from ...worklist import roster
from ..access import allow
from ..answers import DutyPeople, Ok, Roster
from ..auditing import audit_context, audited, not_audited
from ..errors import ApiError
from ..keys import DATABASE, current_user
from ..models import RecordId, Strict
from ..requests import path_id, read_model
from .openapi import documented

routes = web.RouteTableDef()


class RosterEntryBody(Strict):
    user_id: RecordId
    starts_at: AwareDatetime = Field(description="ISO 8601 with a zone, e.g. ...T08:00:00+08:00")
    ends_at: AwareDatetime
    role_on_duty: Literal["reader", "manager"] = "reader"


class RosterEntryCreated(BaseModel):
    id: int


def _keeper(request: web.Request) -> None:
    """Managers keep their regional centre's roster; a county manager has none to keep."""
    user = current_user(request)
    if user.role == "manager" and user.facility_kind != "regional":
        raise ApiError(403, "forbidden", "the roster is kept by the regional centre's managers")


@routes.get("/api/roster")
@allow("manager", "admin")
@not_audited("who is on duty when: accounts and times, no patient data")
@documented("The duty roster: current and future shifts, and who is on duty now", response=Roster)
async def list_roster(request: web.Request) -> web.Response:
    _keeper(request)
    database = request.app[DATABASE]
    now = utc_now()
    entries = await database.read(store.entries, ending_after=to_iso(now))
    duty = await database.read(roster.duty_now, now)
    on_duty = [{"user_id": e.user_id, "role_on_duty": e.role_on_duty} for e in duty]
    return web.json_response({"items": entries, "on_duty": on_duty})


@routes.get("/api/roster/people")
@allow("manager", "admin")
@not_audited("the regional centre's readers and managers: accounts, no patient data")
@documented(
    "Who may go on the roster: the regional centre's enabled specialists and managers",
    response=DutyPeople,
)
async def list_duty_people(request: web.Request) -> web.Response:
    _keeper(request)
    people = await request.app[DATABASE].read(store.duty_people)
    return web.json_response({"items": people})


@routes.post("/api/roster")
@allow("manager", "admin")
@audited("roster.add", "roster_entry")
@documented(
    "Put a specialist (reader) or a manager on duty for a period",
    body=RosterEntryBody,
    response=RosterEntryCreated,
    errors=(400, 403, 404),
    success=(201,),
)
async def add_roster_entry(request: web.Request) -> web.Response:
    _keeper(request)
    body = await read_model(request, RosterEntryBody)
    starts: datetime = body.starts_at
    try:
        entry_id = await request.app[DATABASE].write(
            roster.add_to_roster,
            current_user(request),
            body.user_id,
            starts,
            body.ends_at,
            body.role_on_duty,
        )
    except roster.InvalidRosterEntry as exc:
        raise ApiError(400, "invalid_roster_entry", str(exc)) from exc
    audit = audit_context(request)
    audit.resource_id = str(entry_id)
    audit.detail.update(user_id=body.user_id, role_on_duty=body.role_on_duty)
    return web.json_response({"id": entry_id}, status=201)


@routes.delete(r"/api/roster/{id:\d+}")
@allow("manager", "admin")
@audited("roster.delete", "roster_entry")
@documented("Remove a shift from the roster", response=Ok, errors=(403, 404))
async def delete_roster_entry(request: web.Request) -> web.Response:
    _keeper(request)
    await request.app[DATABASE].write(store.delete_entry, path_id(request))
    return web.json_response({"ok": True})
