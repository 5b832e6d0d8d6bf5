"""GET /api/roster/people and GET /roster: who may go on the roster, for those who keep it."""

from __future__ import annotations

import pytest


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
async def centre(service):
    regional = await service.add_facility("Regional Centre", "regional", "REGIONAL")
    county = await service.add_facility("County Hospital", "county", "COUNTY_1")
    ids = {
        "li": await service.add_user("dr_li", "specialist", regional),
        "gone": await service.add_user("dr_gone", "specialist", regional),
        "boss": await service.add_user("boss", "manager", regional),
        "county_spec": await service.add_user("dr_county", "specialist", county),
        "county_boss": await service.add_user("county_boss", "manager", county),
        "root": await service.add_user("root", "admin", regional),
    }

    def disable(db):
        db.execute("UPDATE users SET disabled = 1 WHERE id = ?", [ids["gone"]])

    await service.database.write(disable)
    return ids


@pytest.mark.parametrize("keeper", ["boss", "root"])
async def test_the_regional_centres_enabled_readers_and_managers_are_offered(
    service, centre, keeper
):
    """Specialists (readers) first, then managers; no disabled account, nobody of the county."""
    response = await service.client.get("/api/roster/people", headers=await service.login(keeper))
    assert response.status == 200, await response.text()
    people = (await response.json())["items"]
    assert [(p["username"], p["role"]) for p in people] == [
        ("dr_li", "specialist"),
        ("boss", "manager"),
    ]


@pytest.mark.parametrize("user", ["dr_li", "county_boss"])
async def test_others_may_not_list_them(service, centre, user):
    """Specialists keep no roster; a county manager has none to keep."""
    response = await service.client.get("/api/roster/people", headers=await service.login(user))
    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"


async def test_the_roster_page_is_for_managers_and_admins(service, centre):
    manager = await service.client.get("/roster", headers=await service.login("boss"))
    assert manager.status == 200
    assert 'id="roster-form"' in await manager.text()
    specialist = await service.client.get("/roster", headers=await service.login("dr_li"))
    assert specialist.status == 403
