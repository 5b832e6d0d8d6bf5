"""Authentication, access declarations, CSRF and security headers for every request."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from ..auth import sessions
from ..clock import utc_now
from .access import PUBLIC, declared_access, permits
from .cors import cookie_allowed
from .errors import ApiError
from .keys import AUTH_VIA_KEY, DATABASE, SESSION_CACHE, USER_KEY
from .requests import served_over_tls

SESSION_COOKIE = "teleread_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

# Every answer but a static file is kept out of caches unless its handler says otherwise: pages,
# API JSON, DICOMweb metadata, rendered frames and PDFs carry patient data, and a browser's disk
# cache (or a shared proxy's) would keep them after logout on a shared reading-room computer.
# Static JS/CSS keep the validators aiohttp sends (Last-Modified, ETag) and stay cacheable.
PRIVATE_NO_STORE = "private, no-store"
STATIC_PREFIX = "/static/"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

OHIF_PREFIX = "/ohif"
# OHIF (service/viewing/ohif.py) injects <style> elements: the only violations of the policy
# above while it lists studies and draws them (tests/test_browser_ohif.py collects them).
OHIF_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)
# Its decoders of compressed frames (JPEG-LS, JPEG 2000, HTJ2K...) are emscripten WebAssembly run
# in web workers, whose glue builds functions from strings (embind's `new Function`). A worker
# takes the policy of its own script's response; a script the page loads does not (the page's
# applies). So the scripts under /ohif/ carry eval and WebAssembly for the workers that run
# them, and the page itself runs no eval.
OHIF_WORKER_CONTENT_SECURITY_POLICY = OHIF_CONTENT_SECURITY_POLICY.replace(
    "script-src 'self'", "script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval'"
)


def _bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _resolve(request: web.Request, token: str, via: str) -> sessions.CurrentUser | None:
    """The session's user; GET and HEAD may take it from the short-lived session cache."""
    cache = request.app[SESSION_CACHE] if request.method in ("GET", "HEAD") else None
    if cache is not None and (user := cache.get(token)) is not None:
        return user
    database = request.app[DATABASE]
    version = database.version() if cache is not None else 0
    user = await sessions.resolve(database, token, utc_now(), bearer=via == "bearer")
    if cache is not None and user is not None:
        cache.put(token, user, version)
    return user


@web.middleware
async def access_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Resolve the caller, enforce the route's declared roles and CSRF on cookie writes."""
    match_info = request.match_info
    if match_info.http_exception is not None:
        return await handler(request)
    token = _bearer_token(request)
    via = "bearer" if token else "cookie"
    if not token and cookie_allowed(request):
        token = request.cookies.get(SESSION_COOKIE)
    user = await _resolve(request, token, via) if token else None
    request[USER_KEY] = user
    request[AUTH_VIA_KEY] = via if user else None
    declared = declared_access(match_info.handler)
    if declared is None and not request.path.startswith("/static/"):
        raise ApiError(403, "forbidden", "this route declares no access rule")
    if declared is not None and not permits(declared, user):
        if user is None:
            api = request.path.startswith(("/api/", "/dicom-web/", "/fhir/"))
            if request.method == "GET" and not api:
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
            raise ApiError(401, "unauthorized", "log in first (session missing or expired)")
        raise ApiError(403, "forbidden", "your role may not do this")
    writes_as_user = declared is not None and PUBLIC not in declared
    if writes_as_user and user and via == "cookie" and request.method not in SAFE_METHODS:
        if request.headers.get(CSRF_HEADER) != user.csrf_token:
            raise ApiError(403, "csrf_failed", f"missing or wrong {CSRF_HEADER} header")
    return await handler(request)


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every answer carries (pages, API and errors alike)."""
    headers = response.headers
    # The report editor embeds the viewer page in an iframe: only /viewer/ may be framed, and
    # only by this origin.
    framable = request.path.startswith("/viewer/")
    policy = CONTENT_SECURITY_POLICY
    if framable:
        policy = policy.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
    elif request.path == OHIF_PREFIX or request.path.startswith(OHIF_PREFIX + "/"):
        worker_script = request.path.endswith(".js")
        policy = (
            OHIF_WORKER_CONTENT_SECURITY_POLICY if worker_script else OHIF_CONTENT_SECURITY_POLICY
        )
    headers.setdefault("Content-Security-Policy", policy)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "SAMEORIGIN" if framable else "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if not request.path.startswith(STATIC_PREFIX):
        headers.setdefault("Cache-Control", PRIVATE_NO_STORE)
    if served_over_tls(request):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
