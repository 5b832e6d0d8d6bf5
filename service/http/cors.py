"""Cross-origin calls to ``/api/``, ``/dicom-web/`` and WADO-URI's ``/wado`` from the origins in
TELEREAD_CORS_ORIGINS.

Off unless that setting lists origins (a hospital's own OHIF or PACS web client on another
host). Those pages authenticate with a bearer token (an API token, ``Authorization: Bearer``):
the answers never carry ``Access-Control-Allow-Credentials``, so a browser never lets another
origin read an answer it got with teleread's session cookie, and the access middleware does not
take the cookie of a request a listed origin sends (:func:`cookie_allowed`). Everything else is
same-origin as before: no header is added for an unlisted origin, and its preflight is not
answered (the browser then refuses the call).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..settings import cors_origins
from .keys import SETTINGS
from .requests import public_base_url

SHARED_PREFIXES = ("/api/", "/dicom-web/", "/wado")  # /wado: WADO-URI
ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, Accept, If-None-Match"
EXPOSED_HEADERS = "Content-Type, Content-Length, Content-Location, ETag, Location, Retry-After"
PREFLIGHT_MAX_AGE = "600"


def listed_origin(request: web.Request) -> str | None:
    """The request's ``Origin`` if it is another origin listed in TELEREAD_CORS_ORIGINS and the
    path is one that is shared; else None."""
    origin = request.headers.get("Origin", "").lower()
    if not origin or not request.path.startswith(SHARED_PREFIXES):
        return None
    if origin not in cors_origins(request.app[SETTINGS].cors_origins):
        return None
    return None if origin == public_base_url(request).lower() else origin


def cookie_allowed(request: web.Request) -> bool:
    """False for a call from a listed other origin: bearer tokens only across origins."""
    return listed_origin(request) is None


@web.middleware
async def cors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer a listed origin's preflight (before access checks: it carries no credentials)."""
    origin = listed_origin(request)
    preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
    if origin is None or not preflight:
        return await handler(request)
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            "Vary": "Origin",
        },
    )


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Let a listed origin read the answer (errors too, so it can show why)."""
    origin = listed_origin(request)
    if origin is None or "Access-Control-Allow-Origin" in response.headers:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    vary = response.headers.get("Vary")
    response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
