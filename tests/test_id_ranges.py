"""Ids and numbers a client sends are held to SQLite's signed 64-bit INTEGER range at the edge:
out of range answers 4xx with the JSON error shape, never 500 (a Python int of 2^63 or more
cannot even be bound as a query parameter)."""

from __future__ import annotations

import base64
import json
import re

import pytest

from service.http.access import declared_access
from service.storage.users import ROLES

TOO_BIG = str(2**63)  # 9223372036854775808, one past SQLite's largest INTEGER
LARGEST = str(2**63 - 1)


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
async def callers(service) -> dict[str, dict[str, str]]:
    """Bearer headers of one user of every role (the clinic roles at a township clinic)."""
    centre = await service.add_facility("Centre", "regional", "CENTRE")
    clinic = await service.add_facility("Clinic", "township", "CLINIC")
    headers = {}
    for role in ROLES:
        facility = clinic if role in ("radiographer", "clinician", "requester") else centre
        await service.add_user(f"user_{role}", role, facility)
        headers[role] = await service.login(f"user_{role}")
    return headers


def _id_routes(app) -> list[tuple[str, str, str]]:
    """(method, path template, a role allowed to call it) of every route with a ``{name:\\d+}``
    segment, pages included, read from the app's router."""
    found = []
    for route in app.router.routes():
        pattern = route.resource.get_info().get("pattern") if route.resource else None
        if pattern is None or r">\d+)" not in pattern.pattern:
            continue
        # a role declared at_centre ("manager@regional") is that role at the centre: as here
        declared = {r.split("@")[0] for r in declared_access(route.handler) or ()}
        roles = sorted(declared & set(ROLES)) or ["specialist"]
        found.append((route.method, route.resource.canonical, roles[0]))
    return found


async def test_every_route_answers_an_id_past_sqlite_integers_with_404(service, callers):
    """GET /api/consultations/9223372036854775808 and the other id routes: 404 with a reason."""
    operations = _id_routes(service.app)
    assert len(operations) >= 20  # consultations, reports, claims, admin, tokens, roster...
    wrong = []
    for method, template, role in operations:
        # 4400 digits: past int()'s own limit of 4300 (and within the request line's 8190).
        for value in (TOO_BIG, "0", "9" * 4400):
            url = re.sub(r"\{\w+\}", "1", re.sub(r"\{\w+\}", value, template, count=1))
            response = await service.client.request(
                method, url, headers=callers[role], json={} if method != "GET" else None
            )
            ok = response.status in (400, 404)
            if ok and method != "HEAD":
                ok = set(await response.json()) >= {"error", "detail"}
            if not ok:
                wrong.append((method, template, value[:20], response.status))
    assert wrong == [], wrong


async def test_the_largest_sqlite_integer_is_an_id_that_is_simply_not_found(service, callers):
    response = await service.client.get(
        f"/api/consultations/{LARGEST}", headers=callers["specialist"]
    )
    assert response.status == 404 and (await response.json())["error"] == "not_found"


async def test_an_out_of_range_facility_filter_is_400(service, callers):
    for path, role in (("/api/worklist", "specialist"), ("/api/audit", "admin")):
        for value in (TOO_BIG, "0", "-1"):
            response = await service.client.get(
                path, headers=callers[role], params={"facility": value}
            )
            assert response.status == 400, (path, value, await response.text())
            assert (await response.json())["error"] == "invalid_request"


async def test_a_worklist_cursor_naming_an_id_past_sqlite_integers_is_400(service, callers):
    forged = json.dumps(["2026-01-01T00:00:00Z", 0, "2026-01-01T00:00:00Z", 2**63]).encode()
    cursor = base64.urlsafe_b64encode(forged).decode().rstrip("=")
    response = await service.client.get(
        "/api/worklist", headers=callers["specialist"], params={"cursor": cursor}
    )
    assert response.status == 400 and (await response.json())["error"] == "invalid_cursor"


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("manager", "POST", "/api/consultations/1/reassign", {"user_id": 2**63}),
        ("specialist", "PUT", "/api/consultations/1/report/draft", {"template_id": 2**63}),
        (
            "manager",
            "POST",
            "/api/roster",
            {
                "user_id": 2**63,
                "starts_at": "2026-01-01T08:00:00Z",
                "ends_at": "2026-01-01T16:00:00Z",
            },
        ),
        (
            "admin",
            "POST",
            "/api/admin/users",
            {
                "username": "new_user",
                "role": "specialist",
                "facility_id": 2**63,
                "password": "a-long-enough-password",
            },
        ),
        ("admin", "PATCH", "/api/admin/users/1", {"facility_id": 2**63}),
    ],
    ids=["reassign", "draft-template", "roster", "new-user", "user-update"],
)
async def test_an_id_past_sqlite_integers_in_a_body_is_400(
    service, callers, role, method, path, body
):
    response = await service.client.request(method, path, headers=callers[role], json=body)
    assert response.status == 400, await response.text()
    assert (await response.json())["error"] == "invalid_request"
