"""Saved worklist filters: each user's named filter sets, kept on the server."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from ...clock import to_iso, utc_now
from ...storage import saved_filters as store
from ..access import allow
from ..answers import Ok
from ..auditing import audit_context, audited, not_audited
from ..keys import DATABASE, current_user
from ..models import Strict, WorklistFilters
from ..requests import path_id, read_model
from .openapi import documented
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

MAX_FILTERS_JSON = 2048


class SavedFilterBody(Strict):
    name: str = Field(min_length=1, max_length=80)
    filters: WorklistFilters = Field(description="The same keys GET /api/worklist takes")

    @field_validator("filters")
    @classmethod
    def small(cls, filters: WorklistFilters) -> WorklistFilters:
        if len(json.dumps(filters.model_dump(exclude_defaults=True))) > MAX_FILTERS_JSON:
            raise ValueError(f"at most {MAX_FILTERS_JSON} bytes of filters")
        return filters


class SavedFilter(BaseModel):
    id: int
    name: str
    filters: dict = Field(description="Only the keys that differ from the defaults")
    created_at: str


class SavedFilterList(BaseModel):
    items: list[SavedFilter]


@routes.get("/api/worklist/filters")
@allow(*WORKLIST_ROLES)
@not_audited("the caller's own filter settings: no patient data")
@documented("Your saved worklist filters, by name", response=SavedFilterList)
async def list_saved_filters(request: web.Request) -> web.Response:
    items = await request.app[DATABASE].read(store.filters_of, current_user(request).id)
    return web.json_response({"items": items})


@routes.post("/api/worklist/filters")
@allow(*WORKLIST_ROLES)
@audited("worklist.filter.save", "saved_filter")
@documented(
    "Save a named set of worklist filters (names are unique per user)",
    body=SavedFilterBody,
    response=SavedFilter,
    errors=(400, 409),
    success=(201,),
)
async def save_filter(request: web.Request) -> web.Response:
    body = await read_model(request, SavedFilterBody)
    saved = await request.app[DATABASE].write(
        store.add_filter,
        current_user(request).id,
        body.name,
        body.filters.model_dump(exclude_defaults=True),
        to_iso(utc_now()),
    )
    audit_context(request).resource_id = str(saved["id"])
    return web.json_response(saved, status=201)


@routes.delete(r"/api/worklist/filters/{id:\d+}")
@allow(*WORKLIST_ROLES)
@audited("worklist.filter.delete", "saved_filter")
@documented("Delete one of your saved filters", response=Ok, errors=(404,))
async def delete_saved_filter(request: web.Request) -> web.Response:
    filter_id = path_id(request)
    audit_context(request).resource_id = str(filter_id)
    await request.app[DATABASE].write(store.delete_filter, current_user(request).id, filter_id)
    return web.json_response({"ok": True})
