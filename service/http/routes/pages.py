"""Server-rendered pages (login, worklist, upload, administration, audit, account); their data
comes from the JSON API."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...audit.labels import action_labels, resource_labels
from ...auth import login_limits
from ...auth.access import consultation_scope
from ...auth.passwords import MIN_PASSWORD_LENGTH
from ...clock import utc_now
from ...i18n import SUPPORTED_LOCALES
from ...patients import repeats
from ...storage import repeat_alerts
from ..access import AUTHENTICATED, allow, public
from ..auditing import audit_declaration
from ..keys import DATABASE, OHIF, RENDERER, USER_KEY
from ..requests import path_id
from .openapi import documented, page
from .upload_routes import UPLOADING_ROLES
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

LANGUAGE_COOKIE = "teleread_lang"


def page_locale(request: web.Request) -> str:
    user = request.get(USER_KEY)
    chosen = request.query.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    preferred = chosen or (user.locale if user else None)
    return request.app[RENDERER].negotiate(request.headers.get("Accept-Language"), preferred)


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    locale = page_locale(request)
    user = request.get(USER_KEY)
    html = request.app[RENDERER].render(
        template,
        locale,
        user=user.public() if user else None,
        csrf_token=user.csrf_token if user else "",
        page=template.removesuffix(".html"),
        **context,
    )
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    chosen = request.query.get("lang")
    if chosen in SUPPORTED_LOCALES:
        response.set_cookie(
            LANGUAGE_COOKIE, chosen, max_age=365 * 86400, samesite="Strict", httponly=True, path="/"
        )
    return response


@routes.get("/")
@public
@documented("Home: a 303 to the caller's start page (or to /login)", success=(), redirects=(303,))
async def home(request: web.Request) -> web.Response:
    user = request.get(USER_KEY)
    if user is None:
        raise web.HTTPSeeOther("/login")
    if user.role == "admin":
        raise web.HTTPSeeOther("/admin/users")
    raise web.HTTPSeeOther("/upload" if user.role in UPLOADING_ROLES else "/worklist")


@routes.get("/login")
@public
@documented("The login page", response_media_type="text/html")
async def login_page(request: web.Request) -> web.Response:
    next_path = request.query.get("next", "/")
    if not next_path.startswith("/") or next_path.startswith("//"):
        next_path = "/"
    return render(request, "login.html", next=next_path, error=None)


@routes.get("/worklist")
@allow(*WORKLIST_ROLES)
@page("The worklist page")
async def worklist_page(request: web.Request) -> web.Response:
    return render(request, "worklist.html")


@routes.get("/upload")
@allow(*UPLOADING_ROLES)
@page("The upload page")
async def upload_page(request: web.Request) -> web.Response:
    return render(request, "upload.html")


@routes.get("/request")
@allow("requester", "radiographer")
@page("The consultation request page")
async def request_page(request: web.Request) -> web.Response:
    return render(request, "request.html")


@routes.get(r"/consultations/{id:\d+}")
@allow(*WORKLIST_ROLES)
@page("A consultation's page (its data comes from the API)")
async def consultation_page(request: web.Request) -> web.Response:
    """The shell only: the consultation's data comes from the scoped, audited JSON API; its
    repeat-exam alerts (none outside the caller's scope) are rendered here."""
    consultation_id = path_id(request)
    return render(
        request,
        "consultation.html",
        consultation_id=consultation_id,
        ohif=request.app[OHIF].installed(),
        repeat_alerts=await _repeat_alerts(request, consultation_id),
    )


async def _repeat_alerts(request: web.Request, consultation_id: int) -> list[dict[str, Any]]:
    """The consultation's repeat-exam alerts, times in the reader's facility zone."""
    user = request[USER_KEY]
    alerts = await request.app[DATABASE].read(
        repeat_alerts.of_consultation, consultation_scope(user), consultation_id
    )
    zone = repeats.zone_of({"timezone": user.facility_timezone})
    return [
        a | {"matches": repeats.with_local_times(a["matches"], zone),
             "at_local": repeats.local_time(a["decided_at"] or a["created_at"], zone)}
        for a in alerts
    ]  # fmt: skip


@routes.get("/account")
@allow(AUTHENTICATED)
@page("Your account page")
async def account_page(request: web.Request) -> web.Response:
    return render(request, "account.html", min_password_length=MIN_PASSWORD_LENGTH)


@routes.get("/roster")
@allow("manager", "admin")
@page("The duty roster page")
async def roster_page(request: web.Request) -> web.Response:
    """The shell only: shifts come from the roster API (regional managers and admins)."""
    return render(request, "roster.html")


@routes.get("/admin/users")
@allow("admin")
@page("Account administration page")
async def admin_users_page(request: web.Request) -> web.Response:
    failures = await login_limits.hammered(request.app[DATABASE], utc_now())
    return render(
        request,
        "admin_users.html",
        min_password_length=MIN_PASSWORD_LENGTH,
        login_failures=failures,
    )


@routes.get("/admin/facilities")
@allow("admin")
@page("Facility administration page")
async def admin_facilities_page(request: web.Request) -> web.Response:
    return render(request, "admin_facilities.html")


def audited_actions(app: web.Application) -> list[str]:
    """Every action some route records, for the audit page's suggestions."""
    declarations = (audit_declaration(route.handler) for route in app.router.routes())
    return sorted({d[0] for d in declarations if isinstance(d, tuple)})


@routes.get("/audit")
@allow("manager", "admin")
@page("The audit trail page")
async def audit_page(request: web.Request) -> web.Response:
    _ = request.app[RENDERER].gettext(page_locale(request))
    return render(
        request,
        "audit.html",
        actions=audited_actions(request.app),
        action_labels=action_labels(_),
        resource_labels=resource_labels(_),
    )
