"""Log in, log out, who am I."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from ...auth import login_limits, sessions
from ...clock import to_iso, utc_now
from ..access import AUTHENTICATED, allow, public
from ..admin_models import LoginFailures
from ..answers import Ok
from ..auditing import audit_context, audited, not_audited
from ..errors import ApiError
from ..keys import DATABASE, SETTINGS, current_user
from ..middleware import SESSION_COOKIE
from ..models import LoginRequest, LoginResponse, UserInfo
from ..requests import client_ip, read_model, served_over_tls
from .openapi import NO_BODY, documented

routes = web.RouteTableDef()


@routes.post("/api/login")
@public
@audited("auth.login", "user")
@documented(
    "Log in: returns a bearer token and sets the session cookie",
    body=LoginRequest,
    response=LoginResponse,
    errors=(429,),
)
async def login(request: web.Request) -> web.Response:
    body = await read_model(request, LoginRequest)
    audit = audit_context(request)
    audit.detail["username"] = body.username
    audit.anonymous = True
    settings = request.app[SETTINGS]
    try:
        session = await sessions.login(
            request.app[DATABASE],
            body.username,
            body.password,
            client_ip(request),
            now=utc_now(),
            lifetime=timedelta(hours=settings.session_hours),
        )
    except sessions.LoginLocked as exc:
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed logins; try again in {exc.retry_after} s",
            retry_after=exc.retry_after,
            limit=exc.reason,
        ) from exc
    except sessions.LoginFailed as exc:
        raise ApiError(401, "invalid_credentials", "wrong username or password") from exc
    audit.actor = session.user
    audit.resource_id = str(session.user.id)
    answer = LoginResponse(
        token=session.token,
        expires_at=to_iso(session.expires_at),
        csrf_token=session.csrf_token,
        user=UserInfo(**session.user.public()),
    )
    response = web.json_response(answer.model_dump())
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        samesite="Strict",
        path="/",
        secure=served_over_tls(request),
        max_age=int(settings.session_hours * 3600),
    )
    return response


@routes.post("/api/logout")
@allow(AUTHENTICATED)
@audited("auth.logout", "user")
@documented("Log out: revokes the session server-side", body=NO_BODY, response=Ok)
async def logout(request: web.Request) -> web.Response:
    await sessions.logout(request.app[DATABASE], current_user(request))
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get("/api/me")
@allow(AUTHENTICATED)
@not_audited("the caller's own account, no patient data")
@documented("The logged-in user", response=UserInfo)
async def me(request: web.Request) -> web.Response:
    return web.json_response(current_user(request).public())


@routes.get("/api/admin/login-failures")
@allow("admin")
@audited("login_failures.view", "security")
@documented(
    "Who is being hammered: accounts and addresses with failed logins in the last 15 minutes, "
    "and which limit holds for each (docs/security.md)",
    response=LoginFailures,
    errors=(403,),
)
async def login_failures(request: web.Request) -> web.Response:
    view = await login_limits.hammered(request.app[DATABASE], utc_now())
    return web.json_response(LoginFailures(**view).model_dump())
