"""OHIF at /ohif/: the installed package served under the prefix, only to logged-in users, with
its own configuration and the one relaxed Content-Security-Policy (service/viewing/ohif.py).

These read the real install (``make ohif``; ``make test`` runs it first): without it they fail,
saying so. The browser side, with images, is tests/test_browser_ohif.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from service.http.keys import OHIF
from service.http.middleware import (
    OHIF_CONTENT_SECURITY_POLICY,
    OHIF_WORKER_CONTENT_SECURITY_POLICY,
)
from service.settings import Settings

from .conftest import suite_settings

INSTALLED = Settings().ohif_files


@pytest.fixture
def app_orthanc() -> None:
    """Nothing here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
def settings(tmp_path: Path, app_orthanc: None) -> Settings:
    assert (INSTALLED / "index.html").is_file(), f"OHIF is not installed in {INSTALLED}: make ohif"
    return suite_settings(tmp_path, app_orthanc)


@pytest.fixture
async def reader(service) -> dict[str, str]:
    centre = await service.add_facility("Centre", "regional", "CENTRE")
    await service.add_user("li", "specialist", centre)
    return await service.login("li")


async def test_without_a_session_a_link_into_ohif_goes_to_the_login_and_back(service):
    response = await service.client.get(
        "/ohif/viewer?StudyInstanceUIDs=1.2.3", allow_redirects=False
    )
    assert response.status == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == ["/ohif/viewer?StudyInstanceUIDs=1.2.3"]


async def test_the_page_names_its_files_under_the_prefix_and_runs_no_inline_script(service, reader):
    response = await service.client.get("/ohif/", headers=reader)
    assert response.status == 200
    html = await response.text()
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/ohif/app-config.js" in references
    assert any(re.fullmatch(r"/ohif/app\.bundle\.[0-9a-f]+\.js", r) for r in references)
    assert [r for r in references if not r.startswith("/ohif/")] == []
    assert re.findall(r"<script>", html) == []  # the CSP allows no inline script
    assert "init-service-worker" not in html  # nothing kept offline in the browser
    assert response.headers["Content-Security-Policy"] == OHIF_CONTENT_SECURITY_POLICY
    assert "no-store" in response.headers["Cache-Control"]


async def test_only_the_ohif_pages_get_the_relaxed_policy(service, reader):
    page = OHIF_CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in page and "eval" not in page  # no eval, inline or foreign
    assert "style-src 'self' 'unsafe-inline'" in page
    assert "frame-ancestors 'none'" in page
    worklist = await service.client.get("/worklist", headers=reader)
    assert "unsafe-inline" not in worklist.headers["Content-Security-Policy"]


async def test_scripts_carry_eval_for_the_decoding_workers_they_start(service, reader):
    """A worker takes the policy of its own script: OHIF's codecs (WebAssembly, embind's
    ``new Function``) run in workers; a script the page loads runs under the page's policy."""
    response = await service.client.get("/ohif/app-config.js", headers=reader)
    worker = response.headers["Content-Security-Policy"]
    assert worker == OHIF_WORKER_CONTENT_SECURITY_POLICY
    assert "script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval';" in worker
    assert "frame-ancestors 'none'" in worker


async def test_a_client_route_gets_the_page_and_a_missing_file_is_404(service, reader):
    route = await service.client.get("/ohif/viewer?StudyInstanceUIDs=1.2.3", headers=reader)
    assert route.status == 200 and "/ohif/app-config.js" in await route.text()
    missing = await service.client.get("/ohif/no-such-chunk.js", headers=reader)
    assert missing.status == 404
    not_an_id = await service.client.get("/ohif/consultations/x", headers=reader)
    assert not_an_id.status == 404
    outside = await service.client.get("/ohif/..%2f..%2fpyproject.toml", headers=reader)
    assert outside.status == 404


async def test_the_bundles_load_chunks_workers_and_codecs_from_the_prefix(service, reader):
    [bundle] = [p.name for p in INSTALLED.glob("app.bundle.*.js")]
    response = await service.client.get(f"/ohif/{bundle}", headers=reader)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert response.headers["Content-Encoding"] == "gzip"  # 3.4 MB instead of 17
    script = await response.read()
    assert b'__webpack_require__.p = "/ohif/"' in script
    assert b'__webpack_require__.p = "/"' not in script
    css = await (await service.client.get("/ohif/app.bundle.css", headers=reader)).text()
    assert "url(/ohif/" in css and "url(/a" not in css
    [codec] = [p.name for p in INSTALLED.glob("*.wasm")][:1]
    wasm = await service.client.get(f"/ohif/{codec}", headers=reader)
    assert wasm.status == 200 and wasm.headers["Content-Type"] == "application/wasm"


async def test_the_configuration_is_teleread_dicomweb_on_the_pages_origin(service, reader):
    response = await service.client.get("/ohif/app-config.js", headers=reader)
    assert response.status == 200
    script = await response.text()
    assert 'window.PUBLIC_URL = "/ohif/";' in script
    assert '"routerBasename": "/ohif"' in script
    assert '"showStudyList": true' in script
    assert 'window.location.origin + "/dicom-web"' in script
    assert 'window.location.origin + "/wado"' in script  # WADO-URI
    assert "qidoRoot: root, wadoRoot: root, wadoUriRoot: wado" in script
    assert script.count('"namespace"') == 1  # one data source: teleread's


async def test_a_role_without_a_worklist_may_not_open_it(service):
    centre = await service.add_facility("Centre", "regional", "CENTRE")
    await service.add_user("root", "admin", centre)
    response = await service.client.get("/ohif/", headers=await service.login("root"))
    assert response.status == 403


async def test_when_not_installed_the_page_says_how_to_install_it(service, reader, tmp_path):
    service.app[OHIF].root = tmp_path  # as with TELEREAD_OHIF_DIR naming an empty folder
    for path in ("/ohif/", "/ohif/viewer"):
        response = await service.client.get(path, headers=reader)
        assert response.status == 503
        assert "make ohif" in await response.text()
    page = await service.client.get("/consultations/1", headers=reader)
    assert "open-ohif" not in await page.text()  # no link to what is not there
