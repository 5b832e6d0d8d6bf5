"""Logins, sessions, CSRF, deny-by-default routes, error bodies and security headers."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from service.app import create_app
from service.http.access import declared_access
from service.http.middleware import CSRF_HEADER, SESSION_COOKIE

from .conftest import PASSWORD, add_specialist


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
async def clinic(service):
    facility = await service.add_facility("Dongxiang", "township", "DONGXIANG_DR")
    await service.add_user("wang", "radiographer", facility)
    return facility


async def test_login_returns_a_bearer_token_and_an_httponly_strict_cookie(service, clinic):
    """One login serves API clients (token) and pages (cookie)."""
    response = await service.client.post(
        "/api/login", json={"username": "wang", "password": PASSWORD}
    )
    assert response.status == 200
    body = await response.json()
    assert body["token"] and body["csrf_token"]
    assert body["user"]["username"] == "wang"
    assert body["user"]["facility_name"] == "Dongxiang"
    assert "password_hash" not in body["user"]
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_wrong_password_is_401_without_saying_which_part_was_wrong(service, clinic):
    """Unknown user and wrong password give the same answer."""
    wrong = await service.client.post("/api/login", json={"username": "wang", "password": "x"})
    unknown = await service.client.post("/api/login", json={"username": "nobody", "password": "x"})
    assert wrong.status == unknown.status == 401
    assert (await wrong.json()) == (await unknown.json())
    assert (await wrong.json())["error"] == "invalid_credentials"


async def test_repeated_failures_from_one_address_refuse_it_even_the_right_password(
    service, clinic
):
    """Five failures on the account from one address in the window: that address is refused
    with 429 even with the right password (other addresses: tests/test_login_limits.py)."""
    for _ in range(5):
        await service.client.post("/api/login", json={"username": "wang", "password": "bad"})
    response = await service.client.post(
        "/api/login", json={"username": "wang", "password": PASSWORD}
    )
    assert response.status == 429
    assert (await response.json())["error"] == "too_many_attempts"


async def test_logout_revokes_the_session_server_side(service, clinic):
    """After logout the same token is refused."""
    headers = await service.login("wang")
    assert (await service.client.get("/api/me", headers=headers)).status == 200
    assert (await service.client.post("/api/logout", headers=headers)).status == 200
    response = await service.client.get("/api/me", headers=headers)
    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"


async def test_disabled_user_loses_open_sessions(service, clinic):
    """Disabling an account ends its sessions at once."""
    headers = await service.login("wang")
    await service.database.write(
        lambda db: db.execute("UPDATE users SET disabled = 1 WHERE username = 'wang'")
    )
    assert (await service.client.get("/api/me", headers=headers)).status == 401


async def test_cookie_writes_need_the_csrf_header(service, clinic):
    """A cookie-authenticated POST without X-CSRF-Token is refused; with it, it passes."""
    login = await service.client.post("/api/login", json={"username": "wang", "password": PASSWORD})
    csrf = (await login.json())["csrf_token"]
    body = {"accession_number": "A1", "priority": "routine"}
    refused = await service.client.post("/api/consultations", json=body)
    assert refused.status == 403
    assert (await refused.json())["error"] == "csrf_failed"
    accepted = await service.client.post(
        "/api/consultations", json=body, headers={CSRF_HEADER: csrf}
    )
    assert accepted.status == 201


async def test_api_without_login_is_401_json_and_pages_redirect_to_login(service):
    """APIs answer JSON; pages send the browser to the login page with a return path."""
    api = await service.client.get("/api/worklist")
    assert api.status == 401
    assert (await api.json())["error"] == "unauthorized"
    page = await service.client.get("/worklist", allow_redirects=False)
    assert page.status == 303
    location = urlsplit(page.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == ["/worklist"]


async def test_every_route_declares_who_may_call_it(service):
    """Deny by default: a route with no access declaration fails this walk of the table."""
    missing = []
    for route in service.app.router.routes():
        if route.resource is not None and route.resource.canonical.startswith("/static"):
            continue
        if declared_access(route.handler) is None:
            missing.append(f"{route.method} {route.resource.canonical}")
    assert missing == []


async def test_role_not_allowed_is_403(service, clinic):
    """A radiographer may not read the admin quarantine."""
    headers = await service.login("wang")
    response = await service.client.get("/api/admin/quarantine", headers=headers)
    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"


async def test_pages_carry_security_headers(service):
    """CSP without inline scripts, no framing, nosniff, no referrer."""
    response = await service.client.get("/login")
    assert response.status == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_unknown_api_route_is_a_json_404(service):
    """Errors have the same JSON shape everywhere."""
    response = await service.client.get("/api/nothing-here")
    assert response.status == 404
    body = await response.json()
    assert body["error"] == "not_found" and body["detail"]


async def test_openapi_documents_the_api_from_the_declared_models(service):
    """/api/openapi.json lists the operations and the models they validate with."""
    response = await service.client.get("/api/openapi.json")
    document = await response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert {"/api/login", "/api/worklist", "/api/consultations", "/api/studies"} <= set(paths)
    body = paths["/api/consultations"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/ConsultationRequestBody"
    schema = document["components"]["schemas"]["ConsultationRequestBody"]
    assert set(schema["properties"]["priority"]["enum"]) == {"stat", "urgent", "routine"}
    params = {p["name"] for p in paths["/api/worklist"]["get"]["parameters"]}
    assert {"status", "priority", "modality", "facility", "body_part", "cursor"} <= params


async def test_healthz_is_public(service_with_orthanc):
    """The container health check needs no login."""
    response = await service_with_orthanc.client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_session_cookie_is_secure_behind_a_tls_proxy(settings, aiohttp_client):
    """With TELEREAD_PUBLIC_URL on https, cookies are Secure and HSTS is sent."""
    client = await aiohttp_client(
        create_app(replace(settings, public_url="https://teleread.example"), orthanc=False)
    )
    response = await client.post("/api/login", json={"username": "x", "password": "y"})
    assert response.status == 401
    assert "Strict-Transport-Security" in response.headers
    await add_specialist(client.app)
    ok = await client.post("/api/login", json={"username": "u", "password": PASSWORD})
    assert "Secure" in ok.headers["Set-Cookie"]
