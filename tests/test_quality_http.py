"""QC scores and the recognition list over HTTP, in one module world (no Orthanc: no images).

The centre's manager sees every facility's figures; a facility's own users see theirs only,
and asking for another facility's answers 404. The list is published to everyone, as JSON or
CSV; the page speaks the reader's language with times in each facility's zone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from service.quality.recompute import _evaluate_and_apply
from worklists.recognition import RecognitionRules

from .conftest import Service, suite_settings
from .module_app import TestClient, TestServer, create_app

NOW = "2026-01-01T00:00:00.000000Z"


@dataclass
class World:
    service: Service
    ids: dict[str, int]
    headers: dict[str, dict[str, str]]


def _seed(db, facility_ids: list[int]) -> None:
    for facility_id in facility_ids:
        for month in ("2025-09", "2025-10", "2025-11"):
            db.execute(
                "INSERT INTO qc_scores (facility_id, modality, body_part, month, studies, rated,"
                " good, acceptable, poor, retakes, flagged, reasons, computed_at)"
                " VALUES (?, 'CT', 'HEAD', ?, 40, 40, 38, 1, 1, 0, 0, '{\"motion\": 1}', ?)",
                [facility_id, month, NOW],
            )
    months = ["2025-09", "2025-10", "2025-11"]
    _evaluate_and_apply(db, RecognitionRules(), months, "2025-12-01T02:00:00.000000Z", None)


@pytest.fixture(scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, database_backend: str
) -> AsyncIterator[World]:
    settings = suite_settings(tmp_path_factory.mktemp("quality"), None)
    client = TestClient(TestServer(create_app(settings, orthanc=False)))
    await client.start_server()
    service = Service(client, client.app, None)
    try:
        ids = {
            "centre": await service.add_facility("Regional centre", "regional", "CENTRE"),
            "a": await service.add_facility("Township A", "township", "TOWNA"),
            "b": await service.add_facility("County B", "county", "COUNTYB"),
        }
        users = {
            "boss": ("manager", "centre"),
            "reader": ("specialist", "centre"),
            "radio_a": ("radiographer", "a"),
            "manager_b": ("manager", "b"),
            "root": ("admin", "centre"),
        }
        for name, (role, facility) in users.items():
            await service.add_user(name, role, ids[facility])
        await service.database.write(_seed, [ids["a"], ids["b"]])
        headers = {name: await service.login(name) for name in users}
        yield World(service, ids, headers)
    finally:
        await client.close()


async def _get(world: World, who: str, path: str, status: int = 200, **kw):
    response = await world.service.client.get(path, headers=world.headers[who], **kw)
    assert response.status == status, await response.text()
    return response


async def _scores(world: World, who: str, **params) -> list[dict]:
    params = {"from_month": "2025-01", "to_month": "2025-12", **params}
    response = await _get(world, who, "/api/quality/scores", params=params)
    return (await response.json())["items"]


async def test_the_centres_manager_sees_every_facilitys_scores(world):
    items = await _scores(world, "boss")
    assert {i["facility_id"] for i in items} == {world.ids["a"], world.ids["b"]}
    first = items[0]
    assert (first["modality"], first["body_part"]) == ("CT", "HEAD")
    assert first["reasons"] == {"motion": 1}
    assert first["peer_agreement"] is None


async def test_a_facilitys_user_sees_its_own_scores_only(world):
    assert {i["facility_id"] for i in await _scores(world, "radio_a")} == {world.ids["a"]}
    assert {i["facility_id"] for i in await _scores(world, "manager_b")} == {world.ids["b"]}
    assert await _scores(world, "reader") == []  # the centre's own studies: none here


async def test_another_facilitys_scores_and_history_answer_404(world):
    b = str(world.ids["b"])
    await _get(world, "radio_a", "/api/quality/scores", 404, params={"facility_id": b})
    await _get(world, "radio_a", "/api/recognition/history", 404, params={"facility_id": b})
    await _get(world, "boss", "/api/quality/scores", params={"facility_id": b})


async def test_the_history_is_scoped_like_the_scores(world):
    response = await _get(world, "manager_b", "/api/recognition/history")
    items = (await response.json())["items"]
    assert [(i["facility_id"], i["change"]) for i in items] == [(world.ids["b"], "added")]
    assert items[0]["totals"]["studies"] == 120
    everyone = (await (await _get(world, "boss", "/api/recognition/history")).json())["items"]
    assert len(everyone) == 2


async def test_the_list_is_published_to_every_signed_in_user(world):
    response = await _get(world, "radio_a", "/api/recognition")
    items = (await response.json())["items"]
    assert {(i["aet"], i["modality"], i["body_part"], i["status"]) for i in items} == {
        ("TOWNA", "CT", "HEAD", "listed"),
        ("COUNTYB", "CT", "HEAD", "listed"),
    }


@pytest.mark.parametrize("how", ["query", "accept"])
async def test_the_list_as_csv(world, how):
    kw = {"params": {"format": "csv"}} if how == "query" else {"headers": {"Accept": "text/csv"}}
    headers = {**world.headers["manager_b"], **kw.pop("headers", {})}
    response = await world.service.client.get("/api/recognition", headers=headers, **kw)
    assert response.status == 200 and response.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert sorted(r["aet"] for r in rows) == ["COUNTYB", "TOWNA"]
    assert rows[0]["since"] == "2025-12-01T02:00:00.000000Z"


async def test_the_page_speaks_chinese_with_times_in_the_facilitys_zone(world):
    response = await _get(world, "radio_a", "/recognition", params={"lang": "zh_CN"})
    html = await response.text()
    assert "互认" in html and "CT 头颅" in html
    assert "2025-12-01 10:00" in html  # 02:00 UTC in Asia/Shanghai
    english = await (await _get(world, "radio_a", "/recognition", params={"lang": "en"})).text()
    assert "Mutual recognition" in english and "CT head" in english


async def test_the_dashboards_qc_trend_draws_the_callers_facilities(world):
    params = {"from": "2025-11-01T00:00:00Z", "to": "2025-12-01T00:00:00Z"}
    svg = await (await _get(world, "boss", "/dashboard/charts/qc.svg", params=params)).text()
    assert "Township A · CT HEAD" in svg and "County B · CT HEAD" in svg and "2025-10" in svg
    own = await (await _get(world, "radio_a", "/dashboard/charts/qc.svg", params=params)).text()
    assert "Township A" in own and "County B" not in own


async def test_the_dashboard_lists_the_recognition_changes_of_the_callers_facilities(world):
    html = await (await _get(world, "manager_b", "/dashboard", params={"lang": "en"})).text()
    assert "Mutual recognition: latest changes" in html
    assert "County B" in html and "Township A" not in html and "Meets every rule" in html


async def test_only_the_centres_manager_recomputes_and_it_is_audited(world):
    client = world.service.client
    for who in ("manager_b", "reader", "radio_a"):
        refused = await client.post("/api/quality/recompute", json={}, headers=world.headers[who])
        assert refused.status == 403
    response = await client.post(
        "/api/quality/recompute", json={"month": "2025-11"}, headers=world.headers["boss"]
    )
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["months"] == {"2025-11": 0}  # no consultations here: the month is emptied
    trail = await _get(world, "root", "/api/audit", params={"action": "quality.recompute"})
    assert (await trail.json())["items"][0]["detail"]["months"] == ["2025-11"]
