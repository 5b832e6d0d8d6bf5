"""The webhook notifier against a real local HTTP receiver: signature, payload, retries."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from aiohttp import web

from service.clock import utc_now
from service.worklist.notifications import Notice, WebhookNotifier

from .conftest import free_port

SECRET = "webhook-test-secret"


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


class Receiver:
    """A real aiohttp server on a free port that records requests; fails the first ``fail``."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if len(self.requests) <= self.fail:
            return web.Response(status=503)
        return web.json_response({"ok": True})


@pytest.fixture
async def receiver():
    made: list[web.AppRunner] = []

    async def start(fail: int = 0) -> Receiver:
        target = Receiver(fail)
        app = web.Application()
        app.router.add_post("/hook", target.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", target.port).start()
        made.append(runner)
        return target

    yield start
    for runner in made:
        await runner.cleanup()


def verify(headers: dict[str, str], body: bytes) -> bool:
    """What a gateway does: recompute the HMAC of the raw body and compare in constant time."""
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Teleread-Signature"], expected)


NOTICE = Notice(
    kind="stat",
    user_ids=(7,),
    consultation_id=42,
    title="STAT #42 CT from County Hospital",
    facts={"priority": "stat", "facility": "County Hospital", "queue": "neuro", "due_at": "x"},
)


async def test_the_payload_is_signed_with_the_shared_secret(receiver):
    """Signature header over the exact body, a timestamp header, and the consultation facts."""
    target = await receiver()
    notifier = WebhookNotifier(target.url, SECRET, backoff=0.01)
    await notifier.deliver(NOTICE)
    await notifier.drain()
    await notifier.close()
    [(headers, body)] = target.requests
    assert verify(headers, body)
    assert headers["X-Teleread-Timestamp"]
    payload = json.loads(body)
    assert payload["consultation_id"] == 42 and payload["queue"] == "neuro"
    assert payload["link"] == "/consultations/42" and payload["event"] == "stat"


async def test_a_wrong_secret_does_not_verify(receiver):
    """The signature depends on the secret."""
    target = await receiver()
    notifier = WebhookNotifier(target.url, "another-secret", backoff=0.01)
    assert await notifier.post(NOTICE.payload("now"))
    await notifier.close()
    [(headers, body)] = target.requests
    assert not verify(headers, body)


async def test_a_gateway_failing_twice_gets_three_attempts(receiver):
    """503, 503, then 200: delivered on the third attempt."""
    target = await receiver(fail=2)
    notifier = WebhookNotifier(target.url, SECRET, attempts=3, backoff=0.01)
    assert await notifier.post(NOTICE.payload("now"))
    await notifier.close()
    assert len(target.requests) == 3
    assert all(verify(h, b) for h, b in target.requests)


async def test_an_unreachable_gateway_gives_up_after_the_attempts():
    """Connection refused each time: False, no exception reaches the caller."""
    notifier = WebhookNotifier(f"http://127.0.0.1:{free_port()}/hook", SECRET, backoff=0.01)
    assert not await notifier.post(NOTICE.payload("now"))
    await notifier.close()


@pytest.fixture
async def hook(receiver):
    return await receiver()


@pytest.fixture
def settings(settings, hook):
    return replace(settings, webhook_url=hook.url, webhook_secret=SECRET)


async def test_a_stat_request_reaches_the_gateway_without_the_patients_name(service, hook):
    """The running service posts the stat call; the body has no patient name or id."""
    regional = await service.add_facility("Regional Centre", "regional", "REGIONAL")
    county = await service.add_facility("County Hospital", "county", "COUNTY_1")
    reader = await service.add_user("dr_neuro", "specialist", regional)
    await service.add_user("boss", "manager", regional)
    await service.add_user("li_county", "clinician", county)
    now = utc_now()
    await service.client.post(
        "/api/roster",
        headers=await service.login("boss"),
        json={
            "user_id": reader,
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
        },
    )
    filed = await service.client.post(
        "/api/consultations",
        headers=await service.login("li_county"),
        json={
            "study_instance_uid": "1.2.826.0.1.3680043.10.79.1",
            "priority": "stat",
            "patient_name": "保密患者",
            "patient_id": "SECRET_PID",
        },
    )
    cid = (await filed.json())["id"]

    async def posted():
        return hook.requests

    [(headers, body)] = await service.wait_for(posted)
    assert verify(headers, body)
    payload = json.loads(body)
    assert payload["consultation_id"] == cid and payload["recipients"] == [reader]
    text = body.decode()
    assert "保密患者" not in text and "SECRET_PID" not in text
    assert payload["facility"] == "County Hospital"
