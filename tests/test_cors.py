"""CORS for the origins in TELEREAD_CORS_ORIGINS only, on /api/ and /dicom-web/, bearer tokens
only (service/http/cors.py): never Access-Control-Allow-Credentials, never a session cookie."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from service.http.middleware import SESSION_COOKIE
from service.settings import Settings, SettingsError, load_settings

from .conftest import PASSWORD, suite_settings

VIEWER = "https://viewer.example.org"
OTHER = "https://evil.example.net"
PREFLIGHT = {
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
}


@pytest.fixture
def app_orthanc() -> None:
    """No image is needed: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
def settings(tmp_path: Path, app_orthanc: None) -> Settings:
    return replace(suite_settings(tmp_path, app_orthanc), cors_origins=f"{VIEWER}, http://x:3000")


@pytest.fixture
async def reader(service) -> dict[str, str]:
    centre = await service.add_facility("Centre", "regional", "CENTRE")
    await service.add_user("li", "specialist", centre)
    return await service.login("li")


async def test_a_listed_origin_reads_the_api_with_a_bearer_token(service, reader):
    response = await service.client.get("/api/worklist", headers={**reader, "Origin": VIEWER})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == VIEWER
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_a_listed_origin_can_read_why_it_was_refused(service):
    response = await service.client.get("/api/worklist", headers={"Origin": VIEWER})
    assert response.status == 401
    assert response.headers["Access-Control-Allow-Origin"] == VIEWER


async def test_another_origin_gets_no_cors_headers(service, reader):
    response = await service.client.get("/api/worklist", headers={**reader, "Origin": OTHER})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await service.client.options(
        "/api/worklist", headers={**PREFLIGHT, "Origin": OTHER}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_the_preflight_allows_the_authorization_header_but_not_credentials(service):
    for path in ("/api/worklist", "/dicom-web/studies"):
        response = await service.client.options(path, headers={**PREFLIGHT, "Origin": VIEWER})
        assert response.status == 204
        headers = response.headers
        assert headers["Access-Control-Allow-Origin"] == VIEWER
        assert "GET" in headers["Access-Control-Allow-Methods"]
        assert "Authorization" in headers["Access-Control-Allow-Headers"]
        assert "Access-Control-Allow-Credentials" not in headers


async def test_pages_are_not_shared_with_a_listed_origin(service, reader):
    response = await service.client.get("/worklist", headers={**reader, "Origin": VIEWER})
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_a_session_cookie_does_not_authenticate_a_listed_origins_call(service, reader):
    login = await service.client.post("/api/login", json={"username": "li", "password": PASSWORD})
    cookie = {"Cookie": f"{SESSION_COOKIE}={login.cookies[SESSION_COOKIE].value}"}
    service.client.session.cookie_jar.clear()
    same_origin = await service.client.get("/api/worklist", headers=cookie)
    assert same_origin.status == 200
    cross = await service.client.get("/api/worklist", headers={**cookie, "Origin": VIEWER})
    assert cross.status == 401


async def test_cors_is_off_by_default_and_the_setting_takes_only_origins():
    assert Settings().cors_origins is None
    with pytest.raises(SettingsError, match="TELEREAD_CORS_ORIGINS"):
        load_settings({"TELEREAD_CORS_ORIGINS": "https://viewer.example.org/ohif"})
    with pytest.raises(SettingsError, match="TELEREAD_CORS_ORIGINS"):
        load_settings({"TELEREAD_CORS_ORIGINS": "*"})
