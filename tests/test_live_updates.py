"""Live worklist updates over Server-Sent Events: scoped, fast, and gone cleanly at shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import ClientResponse

from service.demo.synthetic import StudySpec, make_study
from service.http.keys import LIVE
from service.http.routes import live_routes

EVENTS = "/api/worklist/events"


async def open_stream(service, headers: dict[str, str]) -> ClientResponse:
    """An open event stream (subscribed once the headers are back)."""
    response = await service.client.get(EVENTS, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


async def next_change(response: ClientResponse, timeout: float) -> dict[str, Any] | None:
    """The next ``change`` event's data; None when none comes in time or the stream ends."""
    event = data = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                raw = await response.content.readline()
                if not raw:
                    return None
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data = json.loads(line.split(":", 1)[1])
                elif line == "" and event == "change":
                    return data
    except TimeoutError:
        return None


async def file_request(service, headers, uid: str, priority: str = "stat") -> dict[str, Any]:
    response = await service.client.post(
        "/api/consultations",
        headers=headers,
        json={"study_instance_uid": uid, "priority": priority, "clinical_question": "PE?"},
    )
    assert response.status in (200, 201), await response.text()
    return await response.json()


async def consortium(service) -> dict[str, int]:
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    a = await service.add_facility("Clinic A", "township", "CLINIC_A")
    b = await service.add_facility("Clinic B", "township", "CLINIC_B")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("req_a", "requester", a)
    await service.add_user("wang_a", "radiographer", a)
    await service.add_user("zhao_b", "radiographer", b)
    return {"centre": centre, "a": a, "b": b}


async def test_specialist_gets_a_new_stat_request_within_a_second(service):
    """A requester files a stat request; the regional specialist's stream says so in < 1 s."""
    await consortium(service)
    stream = await open_stream(service, await service.login("dr_li"))
    requester = await service.login("req_a")
    started = time.monotonic()
    filed = await file_request(service, requester, "1.2.826.0.1.3680043.10.1.1")
    change = await next_change(stream, timeout=1.0)
    latency = time.monotonic() - started
    print(f"file → event latency: {latency * 1000:.0f} ms")
    assert change == {
        "kind": "new",
        "consultation_id": filed["id"],
        "priority": "stat",
        "queue": change and change["queue"],
    }
    assert latency < 1.0


async def test_other_facility_receives_nothing_about_clinic_a(service):
    """Clinic B's radiographer, subscribed at the same time, hears nothing of clinic A."""
    await consortium(service)
    own = await open_stream(service, await service.login("wang_a"))
    other = await open_stream(service, await service.login("zhao_b"))
    await file_request(service, await service.login("req_a"), "1.2.826.0.1.3680043.10.1.2")
    assert (await next_change(own, timeout=1.0))["kind"] == "new"  # the change did go out
    assert await next_change(other, timeout=1.5) is None


async def test_a_stored_study_produces_a_new_event(service):
    """A study C-STOREd by a clinic's modality reaches its radiographer's stream as "new"."""
    await consortium(service)
    stream = await open_stream(service, await service.login("wang_a"))
    study = make_study(StudySpec("LIVE001", "LI^LEI", "CT", "CHEST", instances=2))
    await service.c_store(study, "CLINIC_A")
    change = await next_change(stream, timeout=20.0)
    assert change is not None and change["kind"] == "new"
    assert change["priority"] in ("stat", "urgent", "routine")


async def test_events_carry_no_patient_data(service):
    """Only kind, id, priority and queue: the page refetches the scoped, audited worklist."""
    await consortium(service)
    stream = await open_stream(service, await service.login("dr_li"))
    await file_request(service, await service.login("req_a"), "1.2.826.0.1.3680043.10.1.3")
    change = await next_change(stream, timeout=1.0)
    assert set(change) == {"kind", "consultation_id", "priority", "queue"}


async def test_shutdown_with_an_open_stream_is_fast(service):
    """Stopping the server ends open streams at once instead of waiting for them to time out."""
    await consortium(service)
    stream = await open_stream(service, await service.login("dr_li"))
    assert service.app[LIVE].subscribers == 1
    started = time.monotonic()
    await service.client.server.close()
    elapsed = time.monotonic() - started
    print(f"server shutdown with an open stream: {elapsed * 1000:.0f} ms")
    assert elapsed < 5.0
    assert service.app[LIVE].subscribers == 0
    assert await next_change(stream, timeout=2.0) is None


async def test_a_closed_browser_unsubscribes(service, monkeypatch):
    """When the client goes away the stream notices and leaves the hub."""
    monkeypatch.setattr(live_routes, "DISCONNECT_CHECK_SECONDS", 0.05)
    await consortium(service)
    stream = await open_stream(service, await service.login("dr_li"))
    assert service.app[LIVE].subscribers == 1
    stream.close()

    async def unsubscribed():
        return service.app[LIVE].subscribers == 0

    await service.wait_for(unsubscribed, timeout=5.0)


async def test_quiet_streams_send_heartbeats_and_a_retry_hint(service, monkeypatch):
    """``retry:`` first, then ``: ping`` comments keep proxies from closing an idle stream."""
    monkeypatch.setattr(live_routes, "DISCONNECT_CHECK_SECONDS", 0.05)
    monkeypatch.setattr(live_routes, "HEARTBEAT_SECONDS", 0.1)
    await consortium(service)
    stream = await open_stream(service, await service.login("dr_li"))
    assert stream.headers["X-Accel-Buffering"] == "no"
    assert stream.headers["Cache-Control"] == "private, no-store"  # not kept after logout
    async with asyncio.timeout(2.0):
        assert await stream.content.readline() == b"retry: 3000\n"
        lines = [await stream.content.readline() for _ in range(3)]
    assert b": ping\n" in lines


async def test_the_stream_needs_a_login(service):
    response = await service.client.get(EVENTS)
    assert response.status == 401


async def test_the_stream_is_audited_when_it_ends(service):
    """One worklist.subscribe record listing what the stream pushed."""
    await consortium(service)
    stream = await open_stream(service, await service.login("dr_li"))
    filed = await file_request(service, await service.login("req_a"), "1.2.826.0.1.3680043.10.1.4")
    assert await next_change(stream, timeout=1.0)
    service.app[LIVE].close()  # what shutdown does: the stream ends, the middleware records

    def subscriptions(db):
        sql = "SELECT * FROM audit_log WHERE action = 'worklist.subscribe'"
        return [dict(r) for r in db.query(sql)]

    rows = await service.wait_for(lambda: service.database.read(subscriptions), timeout=5.0)
    assert len(rows) == 1 and rows[0]["username"] == "dr_li"
    assert str(filed["id"]) in rows[0]["detail"]
