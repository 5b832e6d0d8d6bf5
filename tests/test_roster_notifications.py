"""The duty roster, the stat fan-out to on-duty readers, and in-app notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.clock import to_iso, utc_now
from worklists.roster import RosterEntry, duty_managers, on_duty, readers_for_queue

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


def entry(user_id: int, start_h: float, end_h: float, role: str = "reader", subs=()) -> RosterEntry:
    return RosterEntry(
        user_id, T0 + timedelta(hours=start_h), T0 + timedelta(hours=end_h), role, tuple(subs)
    )


class TestOnDuty:
    def test_a_shift_covers_its_start_but_not_its_end(self):
        """Shifts are half-open: [starts_at, ends_at)."""
        shift = entry(1, 0, 8)
        assert on_duty([shift], T0) == [shift]
        assert on_duty([shift], T0 + timedelta(hours=8)) == []
        assert on_duty([shift], T0 - timedelta(seconds=1)) == []

    def test_overlapping_shifts_of_one_person_count_once(self):
        """Two entries of the same user and duty role: one person on duty."""
        assert [
            e.user_id for e in on_duty([entry(1, 0, 8), entry(1, 4, 12)], T0 + timedelta(hours=5))
        ] == [1]

    def test_readers_of_the_queue_first_else_the_whole_team(self):
        """Matching subspecialty only; with no match, every on-duty reader."""
        duty = [
            entry(1, 0, 8, subs=["neuro"]),
            entry(2, 0, 8, subs=["chest"]),
            entry(3, 0, 8, "manager"),
        ]
        assert readers_for_queue(duty, "neuro") == [1]
        assert readers_for_queue(duty, "msk") == [1, 2]
        assert duty_managers(duty) == [3]


async def regional_team(service):
    """A regional centre with a neuro and a chest specialist and a manager; a county hospital."""
    regional = await service.add_facility("Regional Centre", "regional", "REGIONAL")
    county = await service.add_facility("County Hospital", "county", "COUNTY_1")
    ids = {
        "neuro": await service.add_user("dr_neuro", "specialist", regional),
        "chest": await service.add_user("dr_chest", "specialist", regional),
        "boss": await service.add_user("boss", "manager", regional),
        "clinic": await service.add_user("li_county", "clinician", county),
    }

    def set_subs(db):
        db.execute("UPDATE users SET subspecialties = 'neuro' WHERE id = ?", [ids["neuro"]])
        db.execute("UPDATE users SET subspecialties = 'chest' WHERE id = ?", [ids["chest"]])

    await service.database.write(set_subs)
    return ids


async def put_on_duty(service, headers, user_id, role="reader", start=-1.0, end=8.0):
    now = utc_now()
    return await service.client.post(
        "/api/roster",
        headers=headers,
        json={
            "user_id": user_id,
            "starts_at": to_iso(now + timedelta(hours=start)).replace("Z", "+00:00"),
            "ends_at": to_iso(now + timedelta(hours=end)).replace("Z", "+00:00"),
            "role_on_duty": role,
        },
    )


async def file_stat(service, headers, uid: str, body_part: str = "HEAD") -> int:
    response = await service.client.post(
        "/api/consultations",
        headers=headers,
        json={
            "study_instance_uid": uid,
            "priority": "stat",
            "modality": "CT",
            "body_part": body_part,
            "patient_name": "保密患者",
        },
    )
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def notifications(service, username):
    response = await service.client.get("/api/notifications", headers=await service.login(username))
    assert response.status == 200
    return (await response.json())["items"]


async def test_managers_keep_the_roster_and_see_who_is_on_duty(service):
    """POST adds a shift, GET lists it with who is on duty now, DELETE removes it."""
    ids = await regional_team(service)
    boss = await service.login("boss")
    created = await put_on_duty(service, boss, ids["neuro"])
    assert created.status == 201, await created.text()
    listed = await (await service.client.get("/api/roster", headers=boss)).json()
    assert [e["user_id"] for e in listed["items"]] == [ids["neuro"]]
    assert listed["on_duty"] == [{"user_id": ids["neuro"], "role_on_duty": "reader"}]
    entry_id = (await created.json())["id"]
    deleted = await service.client.delete(f"/api/roster/{entry_id}", headers=boss)
    assert deleted.status == 200
    assert (await (await service.client.get("/api/roster", headers=boss)).json())["items"] == []


async def test_a_shift_must_end_after_it_starts(service):
    """End before start is refused with the reason."""
    ids = await regional_team(service)
    response = await put_on_duty(service, await service.login("boss"), ids["neuro"], start=2, end=1)
    assert response.status == 400
    assert "end after" in (await response.json())["detail"]


async def test_only_the_regional_centres_readers_go_on_duty(service):
    """A county clinician cannot be put on duty; a manager cannot be a reader on duty."""
    ids = await regional_team(service)
    boss = await service.login("boss")
    assert (await put_on_duty(service, boss, ids["clinic"])).status == 400
    assert (await put_on_duty(service, boss, ids["boss"], role="reader")).status == 400
    assert (await put_on_duty(service, boss, ids["boss"], role="manager")).status == 201


async def test_specialists_cannot_edit_the_roster(service):
    """Roster keeping is for managers and admins."""
    ids = await regional_team(service)
    response = await put_on_duty(service, await service.login("dr_neuro"), ids["neuro"])
    assert response.status == 403


async def test_a_stat_request_calls_the_on_duty_neuro_reader_only(service):
    """Stat CT head: the on-duty neuro specialist is notified, the chest one is not."""
    ids = await regional_team(service)
    boss = await service.login("boss")
    for reader in ("neuro", "chest"):
        assert (await put_on_duty(service, boss, ids[reader])).status == 201
    cid = await file_stat(service, await service.login("li_county"), "1.2.826.0.1.3680043.10.77.1")

    async def told():
        return await notifications(service, "dr_neuro")

    [notice] = await service.wait_for(told)
    assert notice["consultation_id"] == cid and notice["kind"] == "stat"
    assert "保密患者" not in notice["title"] + notice["body"]
    assert await notifications(service, "dr_chest") == []
    detail = await (await service.client.get(f"/api/consultations/{cid}", headers=boss)).json()
    [notified] = [e for e in detail["events"] if e["type"] == "notified"]
    assert notified["detail"]["user_ids"] == [ids["neuro"]]


async def test_a_stat_item_without_a_matching_reader_calls_the_whole_team(service):
    """Stat abdomen CT with only neuro and chest on duty: both are told."""
    ids = await regional_team(service)
    boss = await service.login("boss")
    for reader in ("neuro", "chest"):
        await put_on_duty(service, boss, ids[reader])
    await file_stat(
        service, await service.login("li_county"), "1.2.826.0.1.3680043.10.77.2", "ABDOMEN"
    )

    async def both_told():
        return await notifications(service, "dr_neuro") and await notifications(service, "dr_chest")

    await service.wait_for(both_told)


async def test_a_reader_off_duty_is_not_called(service):
    """A shift that ended yesterday calls nobody."""
    ids = await regional_team(service)
    await put_on_duty(service, await service.login("boss"), ids["neuro"], start=-30, end=-20)
    await file_stat(service, await service.login("li_county"), "1.2.826.0.1.3680043.10.77.3")
    await service.client.get("/api/worklist", headers=await service.login("boss"))
    assert await notifications(service, "dr_neuro") == []


async def test_notifications_are_read_one_by_one_unread_first(service):
    """Marking read moves a notice behind the unread ones; another's notice is not found."""
    ids = await regional_team(service)
    from service.storage.notifications import add_notifications

    rows = [
        {"user_id": ids["neuro"], "kind": "stat", "title": t, "created_at": to_iso(utc_now())}
        for t in ("first", "second")
    ]
    first, second = await service.database.write(add_notifications, rows)
    neuro = await service.login("dr_neuro")
    marked = await service.client.post(f"/api/notifications/{second}/read", headers=neuro)
    assert marked.status == 200
    body = await (await service.client.get("/api/notifications", headers=neuro)).json()
    assert [n["id"] for n in body["items"]] == [first, second] and body["unread"] == 1
    other = await service.client.post(
        f"/api/notifications/{first}/read", headers=await service.login("dr_chest")
    )
    assert other.status == 404
