"""In-app notifications: one's own, unread first; marking one read."""

from __future__ import annotations

from aiohttp import web

from ...clock import to_iso, utc_now
from ...storage import notifications as store
from ...worklist.notice_text import render_notice
from ..access import AUTHENTICATED, allow
from ..answers import NotificationList, Ok, UnreadCount
from ..auditing import audit_context, audited, not_audited
from ..keys import DATABASE, RENDERER, current_user
from ..requests import path_id
from .openapi import NO_BODY, documented
from .pages import page_locale

routes = web.RouteTableDef()


@routes.get("/api/notifications")
@allow(AUTHENTICATED)
@audited("notification.list", "notification")
@documented(
    "Your notifications (stat calls, escalations, critical findings), unread first, in your"
    " language, naming the patient and study of each consultation",
    response=NotificationList,
)
async def list_notifications(request: web.Request) -> web.Response:
    user = current_user(request)
    rows = await request.app[DATABASE].read(store.notifications_of, user.id)
    gettext = request.app[RENDERER].gettext(page_locale(request))
    items = [render_notice(row, gettext, user.facility_timezone or "UTC") for row in rows]
    audit_context(request).detail["consultations"] = sorted(
        {item["consultation_id"] for item in items if item["consultation_id"] is not None}
    )
    unread = sum(1 for item in items if item["read_at"] is None)
    return web.json_response({"items": items, "unread": unread})


@routes.get("/api/notifications/unread")
@allow(AUTHENTICATED)
@not_audited("a count of the caller's own notices: no patient data")
@documented("How many of your notifications are unread (the bell polls this)", response=UnreadCount)
async def count_unread(request: web.Request) -> web.Response:
    unread = await request.app[DATABASE].read(store.unread_count, current_user(request).id)
    return web.json_response({"unread": unread})


@routes.post(r"/api/notifications/{id:\d+}/read")
@allow(AUTHENTICATED)
@audited("notification.read", "notification")
@documented("Mark one of your notifications read", body=NO_BODY, response=Ok, errors=(404,))
async def read_notification(request: web.Request) -> web.Response:
    await request.app[DATABASE].write(
        store.mark_read, current_user(request).id, path_id(request), to_iso(utc_now())
    )
    return web.json_response({"ok": True})
