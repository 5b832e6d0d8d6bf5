"""In-app notifications: one's own, unread first; marking one read."""

from __future__ import annotations

from aiohttp import web

from ..auth.access import AUTHENTICATED, allow
from ..clock import to_iso, utc_now
from ..storage import notifications as store
from .auditing import audited, not_audited
from .keys import DATABASE, current_user
from .openapi import documented
from .requests import path_id

routes = web.RouteTableDef()


@routes.get("/api/notifications")
@allow(AUTHENTICATED)
@not_audited("the caller's own notices; they carry no patient name or id by design")
@documented("Your notifications (stat calls, escalations), unread first")
async def list_notifications(request: web.Request) -> web.Response:
    user = current_user(request)
    items = await request.app[DATABASE].read(store.notifications_of, user.id)
    unread = sum(1 for item in items if item["read_at"] is None)
    return web.json_response({"items": items, "unread": unread})


@routes.post(r"/api/notifications/{id:\d+}/read")
@allow(AUTHENTICATED)
@audited("notification.read", "notification")
@documented("Mark one of your notifications read", errors=(404,))
async def read_notification(request: web.Request) -> web.Response:
    await request.app[DATABASE].write(
        store.mark_read, current_user(request).id, path_id(request), to_iso(utc_now())
    )
    return web.json_response({"ok": True})
