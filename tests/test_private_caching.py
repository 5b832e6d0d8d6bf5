"""Nothing with patient data stays in a browser's (or a proxy's) cache: after logout on a shared
reading-room computer the next user must find no frame, thumbnail, PDF or JSON of the last one.

Every answer but a static file says ``no-store`` (and never ``public`` or a positive max-age);
static JS and CSS stay cacheable with their validators. The consortium (a signed CT of a township
clinic, read by the regional centre) is seeded once for the module.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from .consortium import CENTRE, Consortium, consortium

__all__ = ["consortium"]  # the module-scoped fixture, imported for pytest

# Routes whose answers may be cached, each with the reason (none carries patient data).
# The consortium fixture (tests/consortium.py) starts a real Orthanc.
pytestmark = pytest.mark.orthanc

CACHEABLE = {
    "/api/dicom/dictionary": "PS3.6 keywords by tag, the same for everyone and every study",
}


def directives(response: Any) -> dict[str, str]:
    """Cache-Control as {directive: value}, lower-cased."""
    found = {}
    for part in response.headers.get("Cache-Control", "").split(","):
        name, _, value = part.strip().lower().partition("=")
        if name:
            found[name] = value.strip('"')
    return found


def kept_by_no_cache(response: Any) -> bool:
    """``no-store``, no ``public`` and no positive max-age or s-maxage."""
    given = directives(response)
    ages = [int(given[k]) for k in ("max-age", "s-maxage") if given.get(k, "").isdigit()]
    return "no-store" in given and "public" not in given and not any(age > 0 for age in ages)


STUDY = "/dicom-web/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"
VALUES = "/api/viewer/studies/{study}/series/{series}/instances/{instance}/frames/{n}/values"
PATIENT_DATA = [
    "/api/consultations/{id}/viewer",
    STUDY + "/metadata",
    SERIES + "/metadata",
    INSTANCE + "/metadata",
    INSTANCE + "/rendered",
    INSTANCE + "/frames/{n}/rendered",
    INSTANCE + "/thumbnail",
    SERIES + "/thumbnail",
    STUDY + "/thumbnail",
    STUDY,
    INSTANCE + "/frames/{frames}",
    INSTANCE + "/bulk/{path}",
    "/dicom-web/studies",
    STUDY + "/series",
    VALUES,
    "/api/consultations/{id}/report/versions/{version}/pdf",
    "/api/consultations/{id}/report",
    "/api/consultations/{id}",
    "/api/consultations/{id}/messages",
    "/api/worklist",
    "/api/portal/reports",
    "/viewer/{id}",
    "/consultations/{id}",
    "/consultations/{id}/report",
]


@pytest.mark.parametrize("route", PATIENT_DATA)
async def test_patient_data_is_answered_no_store(consortium, route):
    """Frames, thumbnails, values, DICOMweb metadata, the PDF, report and consultation JSON, and
    the pages: 200 and never stored."""
    path = _fill(route, consortium)
    reader = consortium.caller("specialist", CENTRE).headers
    response = await consortium.client.get(path, headers=reader)
    assert response.status == 200, (path, await response.text())
    assert kept_by_no_cache(response), response.headers.get("Cache-Control")


async def test_a_revalidated_frame_is_not_stored_either(consortium):
    """A 304 to If-None-Match (API clients keep the ETag) says no-store as well."""
    path = _fill(INSTANCE + "/rendered", consortium)
    reader = consortium.caller("specialist", CENTRE).headers
    first = await consortium.client.get(path, headers=reader)
    again = await consortium.client.get(
        path, headers=reader | {"If-None-Match": first.headers["ETag"]}
    )
    assert again.status == 304
    assert kept_by_no_cache(again)


def _fill(canonical: str, world: Consortium, code: str = "") -> str:
    """A route's path with the consortium's signed study (and report code) filled in."""
    first = world.signed_study[0]
    values = {
        "id": world.signed_id,
        "study": first.StudyInstanceUID,
        "series": first.SeriesInstanceUID,
        "instance": first.SOPInstanceUID,
        "n": 1,
        "frames": "1",
        "path": "7fe00010",
        "version": 1,
        "code": code,
        "name": "queue",
        "key": 1,
        "position": 1,
        "consultation": world.signed_id,
    }
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), canonical)


async def test_every_other_get_route_is_not_stored_by_default(consortium):
    """Walk the route table: whatever a GET answers (as the centre's specialist, else its
    manager, an administrator or a radiographer), it is not cacheable unless listed in CACHEABLE
    with its reason. A new route is covered without anyone remembering to set a header."""
    client = consortium.client
    report = await client.get(
        f"/api/consultations/{consortium.signed_id}/report",
        headers=consortium.caller("specialist", CENTRE).headers,
    )
    code = (await report.json())["versions"][0]["verification_code"]
    roles = ("specialist", "manager", "admin", "radiographer")
    callers = [consortium.caller(role, CENTRE).headers for role in roles]
    stored = []
    for route in consortium.app.router.routes():
        canonical = route.resource.canonical if route.resource else ""
        if route.method != "GET" or canonical.startswith("/static") or canonical in CACHEABLE:
            continue
        for headers in callers:
            response = await client.get(_fill(canonical, consortium, code), headers=headers)
            response.close()  # the worklist's event stream never ends by itself
            if response.status not in (401, 403):
                break
        if not kept_by_no_cache(response):
            stored.append(f"{canonical} {response.status} {response.headers.get('Cache-Control')}")
    assert stored == []


@pytest.mark.parametrize("path", ["/static/app.css", "/static/viewer/viewer.js"])
async def test_static_files_stay_cacheable(consortium, path):
    """Scripts and styles carry no patient data: validators, no no-store, and a 304 when
    unchanged."""
    response = await consortium.client.get(path)
    assert response.status == 200
    assert "no-store" not in directives(response)
    modified = response.headers["Last-Modified"]
    again = await consortium.client.get(path, headers={"If-Modified-Since": modified})
    assert again.status == 304
