"""Server-rendered pages (login, worklist, upload); their data comes from the JSON API."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..auth.access import AUTHENTICATED, allow, public
from ..i18n import SUPPORTED_LOCALES
from .keys import RENDERER, USER_KEY
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
async def home(request: web.Request) -> web.Response:
    user = request.get(USER_KEY)
    if user is None:
        raise web.HTTPSeeOther("/login")
    raise web.HTTPSeeOther("/upload" if user.role in UPLOADING_ROLES else "/worklist")


@routes.get("/login")
@public
async def login_page(request: web.Request) -> web.Response:
    next_path = request.query.get("next", "/")
    if not next_path.startswith("/") or next_path.startswith("//"):
        next_path = "/"
    return render(request, "login.html", next=next_path, error=None)


@routes.get("/worklist")
@allow(*WORKLIST_ROLES)
async def worklist_page(request: web.Request) -> web.Response:
    return render(request, "worklist.html")


@routes.get("/upload")
@allow(*UPLOADING_ROLES)
async def upload_page(request: web.Request) -> web.Response:
    return render(request, "upload.html")


@routes.get("/account")
@allow(AUTHENTICATED)
async def account_redirect(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/")
