"""Saved worklist filters: each user's named filter sets, kept on the server."""

from __future__ import annotations

import pytest


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
async def readers(service):
    """Two specialists of the regional centre and a clinic's radiographer."""
    centre = await service.add_facility("Centre", "regional", "CENTRE")
    clinic = await service.add_facility("Clinic A", "township", "CLINIC_A")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("dr_wu", "specialist", centre)
    await service.add_user("wang", "radiographer", clinic)
    await service.add_user("root", "admin", centre)
    return {name: await service.login(name) for name in ("dr_li", "dr_wu", "wang", "root")}


async def save(service, headers, name="Stat CT", **filters):
    return await service.client.post(
        "/api/worklist/filters",
        headers=headers,
        json={"name": name, "filters": filters or {"priority": ["stat"], "modality": ["CT"]}},
    )


class TestSavingAFilter:
    async def test_a_saved_filter_is_listed_with_its_filters(self, service, readers):
        """POST answers 201 with the id; GET lists it with only the non-default keys."""
        response = await save(service, readers["dr_li"], queue=["neuro"], assigned="me")
        assert response.status == 201, await response.text()
        saved = await response.json()
        listed = await service.client.get("/api/worklist/filters", headers=readers["dr_li"])
        assert listed.status == 200
        [item] = (await listed.json())["items"]
        assert item["id"] == saved["id"]
        assert item["name"] == "Stat CT"
        assert item["filters"] == {"queue": ["neuro"], "assigned": "me"}

    async def test_filters_are_listed_by_name(self, service, readers):
        for name in ("Neuro", "Chest", "All stat"):
            assert (await save(service, readers["dr_li"], name)).status == 201
        listed = await service.client.get("/api/worklist/filters", headers=readers["dr_li"])
        assert [i["name"] for i in (await listed.json())["items"]] == ["All stat", "Chest", "Neuro"]

    async def test_a_duplicate_name_of_the_same_user_is_a_conflict(self, service, readers):
        assert (await save(service, readers["dr_li"])).status == 201
        again = await save(service, readers["dr_li"], priority=["urgent"])
        assert again.status == 409
        assert (await again.json())["error"] == "duplicate_name"

    async def test_two_users_may_use_the_same_name(self, service, readers):
        assert (await save(service, readers["dr_li"])).status == 201
        assert (await save(service, readers["dr_wu"])).status == 201

    async def test_each_user_sees_only_their_own_filters(self, service, readers):
        assert (await save(service, readers["dr_li"])).status == 201
        listed = await service.client.get("/api/worklist/filters", headers=readers["dr_wu"])
        assert (await listed.json())["items"] == []

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "", "filters": {}},
            {"name": "   ", "filters": {}},
            {"name": "x" * 81, "filters": {}},
            {"filters": {}},
            {"name": "ok"},
            {"name": "ok", "filters": {"priority": ["soon"]}},
            {"name": "ok", "filters": {"colour": "red"}},
            {"name": "ok", "filters": {"limit": 10}},
            {"name": "ok", "filters": {"facility": ["abc"]}},
            {"name": "ok", "filters": {"modality": ["CT"] * 1000}},
            {"name": "ok", "filters": {}, "extra": 1},
        ],
    )
    async def test_bad_input_is_a_400_with_a_json_reason(self, service, readers, body):
        response = await service.client.post(
            "/api/worklist/filters", headers=readers["dr_li"], json=body
        )
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"

    async def test_a_body_that_is_not_json_is_refused(self, service, readers):
        response = await service.client.post(
            "/api/worklist/filters",
            headers={**readers["dr_li"], "Content-Type": "application/json"},
            data="{not json",
        )
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_json"

    async def test_roles_without_a_worklist_cannot_save_filters(self, service, readers):
        """Administrators have no worklist, hence no worklist filters."""
        assert (await save(service, readers["root"])).status == 403
        listed = await service.client.get("/api/worklist/filters", headers=readers["root"])
        assert listed.status == 403

    async def test_facility_users_keep_filters_too(self, service, readers):
        assert (await save(service, readers["wang"], status=["ready"])).status == 201


class TestDeletingAFilter:
    async def test_one_deletes_ones_own_filter(self, service, readers):
        saved = await (await save(service, readers["dr_li"])).json()
        response = await service.client.delete(
            f"/api/worklist/filters/{saved['id']}", headers=readers["dr_li"]
        )
        assert response.status == 200
        listed = await service.client.get("/api/worklist/filters", headers=readers["dr_li"])
        assert (await listed.json())["items"] == []

    async def test_another_users_filter_is_not_found_and_stays(self, service, readers):
        saved = await (await save(service, readers["dr_li"])).json()
        response = await service.client.delete(
            f"/api/worklist/filters/{saved['id']}", headers=readers["dr_wu"]
        )
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"
        listed = await service.client.get("/api/worklist/filters", headers=readers["dr_li"])
        assert len((await listed.json())["items"]) == 1

    async def test_an_unknown_filter_is_not_found(self, service, readers):
        response = await service.client.delete(
            "/api/worklist/filters/999", headers=readers["dr_li"]
        )
        assert response.status == 404


async def test_saved_filters_work_as_worklist_queries(service, readers):
    """What was saved is accepted by GET /api/worklist as it stands."""
    await save(
        service, readers["dr_li"], priority=["stat", "urgent"], facility=[1], order="mine_first"
    )
    [item] = (
        await (await service.client.get("/api/worklist/filters", headers=readers["dr_li"])).json()
    )["items"]
    params = [
        (key, ",".join(map(str, value)) if isinstance(value, list) else value)
        for key, value in item["filters"].items()
    ]
    response = await service.client.get("/api/worklist", headers=readers["dr_li"], params=params)
    assert response.status == 200, await response.text()
