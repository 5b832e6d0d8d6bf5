"""GET /api/worklist for the worklist page: per-queue counts, ``assigned=me``, ``mine_first``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.intake.intake import ConsultationRequest, file_request
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
async def consortium(service):
    """A clinic, a centre, a neuro reader, a chest reader and a manager."""
    ids = {
        "clinic": await service.add_facility("Clinic A", "township", "CLINIC_A"),
        "centre": await service.add_facility("Centre", "regional", "CENTRE"),
    }
    ids["wang"] = await service.add_user("wang", "radiographer", ids["clinic"])
    ids["neuro"] = await service.add_user("dr.neuro", "specialist", ids["centre"])
    ids["chest"] = await service.add_user("dr.chest", "specialist", ids["centre"])
    await service.add_user("boss", "manager", ids["centre"])
    await set_subspecialties(service, ids["neuro"], "Neuro, paeds")
    await set_subspecialties(service, ids["chest"], "chest")
    return ids


async def set_subspecialties(service, user_id: int, text: str) -> None:
    def update(db):
        db.execute("UPDATE users SET subspecialties = ? WHERE id = ?", [text, user_id])

    await service.database.write(update)


async def file(service, ids, accession: str, queue: str, minutes: int) -> int:
    """A routine request filed ``minutes`` after T0, put on ``queue``, images marked arrived."""
    request = ConsultationRequest(
        Priority("routine"), accession_number=accession, modality="CT", body_part="HEAD"
    )
    at = T0 + timedelta(minutes=minutes)
    consultation_id, _ = await service.database.write(
        file_request,
        request,
        facility_id=ids["clinic"],
        user_id=ids["wang"],
        now=at,
        sla=SlaPolicy(),
    )

    def route(db):
        db.execute(
            "UPDATE consultations SET queue = ?, status = 'ready', received_at = ? WHERE id = ?",
            [queue, at.isoformat(), consultation_id],
        )

    await service.database.write(route)
    return consultation_id


async def all_pages(service, headers, **params) -> list[str]:
    accessions, cursor = [], None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        page = await service.worklist(headers, **query)
        accessions += [i["accession_number"] for i in page["items"]]
        cursor = page["next"]
        if not cursor:
            return accessions


async def test_counts_give_the_load_of_every_queue(service, consortium):
    """Managers see each queue's load; the counts follow the filters like the other counts."""
    await file(service, consortium, "N1", "neuro", 0)
    await file(service, consortium, "N2", "neuro", 1)
    await file(service, consortium, "C1", "chest", 2)
    boss = await service.login("boss")
    assert (await service.worklist(boss))["counts"]["queue"] == {"neuro": 2, "chest": 1}
    chest_only = await service.worklist(boss, queue="chest")
    assert chest_only["counts"]["queue"] == {"chest": 1}


async def test_assigned_to_me_lists_only_what_the_caller_holds(service, consortium):
    """Another reader's claim, or none, keeps an item out of ``assigned=me``."""
    mine = await file(service, consortium, "N1", "neuro", 0)
    theirs = await file(service, consortium, "N2", "neuro", 1)
    await file(service, consortium, "N3", "neuro", 2)
    neuro, chest = await service.login("dr.neuro"), await service.login("dr.chest")
    for headers, consultation_id in ((neuro, mine), (chest, theirs)):
        response = await service.client.post(
            f"/api/consultations/{consultation_id}/claim", headers=headers
        )
        assert response.status == 200, await response.text()
    page = await service.worklist(neuro, assigned="me")
    assert [i["accession_number"] for i in page["items"]] == ["N1"]
    assert page["counts"]["total"] == 1


async def test_assigned_to_me_leaves_out_lapsed_claims(service, consortium):
    """A lease that ran out no longer counts as assigned."""
    consultation_id = await file(service, consortium, "N1", "neuro", 0)
    neuro = await service.login("dr.neuro")
    await service.client.post(f"/api/consultations/{consultation_id}/claim", headers=neuro)

    def lapse(db):
        db.execute(
            "UPDATE consultations SET claim_expires_at = ? WHERE id = ?",
            ["2000-01-01T00:00:00.000000Z", consultation_id],
        )

    await service.database.write(lapse)
    assert (await service.worklist(neuro, assigned="me"))["items"] == []


async def test_mine_first_puts_the_readers_queues_first_then_due_order(service, consortium):
    """Neuro and paeds (the reader's subspecialties) come first, each part in due order."""
    await file(service, consortium, "C1", "chest", 0)
    await file(service, consortium, "N1", "neuro", 1)
    await file(service, consortium, "G1", "general", 2)
    await file(service, consortium, "P1", "paeds", 3)
    await file(service, consortium, "N2", "neuro", 4)
    neuro = await service.login("dr.neuro")
    page = await service.worklist(neuro, order="mine_first")
    assert [i["accession_number"] for i in page["items"]] == ["N1", "P1", "N2", "C1", "G1"]
    default = await service.worklist(neuro)
    assert [i["accession_number"] for i in default["items"]] == ["C1", "N1", "G1", "P1", "N2"]


async def test_mine_first_pages_without_gaps_or_repeats(service, consortium):
    """The cursor carries the mine flag: page size 2 across the mine/rest boundary."""
    for n in range(7):
        await file(service, consortium, f"X{n}", "neuro" if n % 2 else "chest", n)
    neuro = await service.login("dr.neuro")
    assert await all_pages(service, neuro, order="mine_first", limit="2") == [
        "X1",
        "X3",
        "X5",
        "X0",
        "X2",
        "X4",
        "X6",
    ]
    chest = await service.login("dr.chest")
    assert await all_pages(service, chest, order="mine_first", limit="3") == [
        "X0",
        "X2",
        "X4",
        "X6",
        "X1",
        "X3",
        "X5",
    ]


async def test_a_cursor_from_one_order_is_refused_by_the_other(service, consortium):
    for n in range(3):
        await file(service, consortium, f"X{n}", "neuro", n)
    neuro = await service.login("dr.neuro")
    mine_cursor = (await service.worklist(neuro, order="mine_first", limit="1"))["next"]
    due_cursor = (await service.worklist(neuro, limit="1"))["next"]
    for params in ({"cursor": mine_cursor}, {"cursor": due_cursor, "order": "mine_first"}):
        response = await service.client.get("/api/worklist", headers=neuro, params=params)
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_cursor"


async def test_mine_first_for_a_reader_without_subspecialties_is_due_order(service, consortium):
    await file(service, consortium, "C1", "chest", 0)
    await file(service, consortium, "N1", "neuro", 1)
    boss = await service.login("boss")
    page = await service.worklist(boss, order="mine_first")
    assert [i["accession_number"] for i in page["items"]] == ["C1", "N1"]
