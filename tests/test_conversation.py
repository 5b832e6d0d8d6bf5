"""The consultation's message thread and preliminary answer, over HTTP against the real service."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest

from service.intake.intake import InstanceOrigin, ReceivedStudy, receive_study
from worklists.sla import SlaPolicy

UID = "1.2.826.0.1.3680043.10.77.1"


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
async def county(service):
    """A county hospital's requester filed a stat request; its images are here; a centre reads."""
    ids = {
        "county": await service.add_facility("County Hospital", "county", "COUNTY"),
        "b": await service.add_facility("Clinic B", "township", "CLINIC_B"),
        "centre": await service.add_facility("Centre", "regional", "CENTRE"),
    }
    ids["zhao"] = await service.add_user("dr_zhao", "requester", ids["county"])
    ids["other_req"] = await service.add_user("dr_qian", "requester", ids["county"])
    ids["li"] = await service.add_user("dr_li", "specialist", ids["centre"])
    ids["wu"] = await service.add_user("dr_wu", "specialist", ids["centre"])
    for role in ("requester", "specialist", "manager", "radiographer"):
        await service.add_user(f"{role}_b", role, ids["b"])
    study = ReceivedStudy(
        orthanc_id="o-county",
        study_instance_uid=UID,
        patient_id="PID-STROKE",
        patient_name="赵大爷",
        accession_number="ACC-STROKE",
        modalities=("CT",),
        body_part="HEAD",
        instances_count=3,
        origins=(InstanceOrigin("DicomProtocol", "COUNTY", "10.0.0.9"),),
    )
    await service.database.write(receive_study, study, now=datetime.now(UTC), sla=SlaPolicy())
    zhao = await service.login("dr_zhao")
    filed = await service.client.post(
        "/api/consultations",
        headers=zhao,
        json={
            "study_instance_uid": UID,
            "priority": "stat",
            "clinical_question": "haemorrhage? thrombolysis candidate?",
            "callback_phone": "+86 139 0000 0000",
        },
    )
    assert filed.status in (200, 201), await filed.text()
    ids["cid"] = (await filed.json())["id"]
    return ids


def messages_url(cid: int) -> str:
    return f"/api/consultations/{cid}/messages"


async def post(service, headers, cid, body):
    return await service.client.post(messages_url(cid), headers=headers, json={"body": body})


async def test_requester_and_specialist_share_one_thread(service, county):
    """Both sides post; both read the same thread in posting order, with authors."""
    zhao, li = await service.login("dr_zhao"), await service.login("dr_li")
    assert (await post(service, zhao, county["cid"], "Onset 40 min ago")).status == 201
    answer = await post(service, li, county["cid"], "Looking now")
    assert answer.status == 201
    assert (await answer.json())["author"] == "dr_li"
    for headers in (zhao, li):
        response = await service.client.get(messages_url(county["cid"]), headers=headers)
        assert response.status == 200
        items = (await response.json())["items"]
        assert [(m["author"], m["body"]) for m in items] == [
            ("dr_zhao", "Onset 40 min ago"),
            ("dr_li", "Looking now"),
        ]


@pytest.mark.parametrize("user", ["requester_b", "specialist_b", "manager_b", "dr_qian"])
async def test_thread_is_invisible_outside_the_scope(service, county, user):
    """Another clinic's users, and another requester of the same hospital, get 404 and no text."""
    await post(service, await service.login("dr_zhao"), county["cid"], "PRIVATE NOTE")
    headers = await service.login(user)
    response = await service.client.get(messages_url(county["cid"]), headers=headers)
    assert response.status == 404
    assert "PRIVATE NOTE" not in await response.text()
    assert (await post(service, headers, county["cid"], "intrusion")).status == 404


async def test_message_body_must_be_1_to_4000_characters(service, county):
    zhao = await service.login("dr_zhao")
    assert (await post(service, zhao, county["cid"], "")).status == 400
    assert (await post(service, zhao, county["cid"], "x" * 4001)).status == 400
    assert (await post(service, zhao, county["cid"], "x" * 4000)).status == 201


async def test_messages_are_immutable_in_the_database(service, county):
    """A trigger refuses UPDATE and DELETE on the thread, whoever asks."""
    await post(service, await service.login("dr_zhao"), county["cid"], "kept for ever")

    def tamper(db, sql):
        db.execute(sql)

    for sql in (
        "UPDATE consultation_messages SET body = 'changed'",
        "DELETE FROM consultation_messages",
    ):
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
            await service.database.write(tamper, sql)
    items = (
        await (
            await service.client.get(
                messages_url(county["cid"]), headers=await service.login("dr_li")
            )
        ).json()
    )["items"]
    assert [m["body"] for m in items] == ["kept for ever"]


async def test_preliminary_answer_only_by_the_claim_holder(service, county):
    """409 before any claim and for another specialist; the holder's answer is timestamped."""
    cid = county["cid"]
    url = f"/api/consultations/{cid}/preliminary"
    li, wu = await service.login("dr_li"), await service.login("dr_wu")
    text = {"text": "No haemorrhage, no large infarct. Full report follows."}
    assert (await service.client.post(url, headers=li, json=text)).status == 409
    claimed = await service.client.post(f"/api/consultations/{cid}/claim", headers=li)
    assert claimed.status == 200
    refused = await service.client.post(url, headers=wu, json=text)
    assert refused.status == 409
    assert (await refused.json())["error"] == "not_holder"
    zhao = await service.login("dr_zhao")
    assert (await service.client.post(url, headers=zhao, json=text)).status == 403
    sent = await service.client.post(url, headers=li, json=text)
    assert sent.status == 201
    view = await (await service.client.get(f"/api/consultations/{cid}", headers=zhao)).json()
    assert view["preliminary"]["text"] == text["text"]
    assert view["preliminary"]["by"] == "dr_li"
    assert view["preliminary"]["at"] == (await sent.json())["at"]
    assert view["claimed_by"] == "dr_li"


async def test_timeline_keeps_the_order_of_what_happened(service, county):
    cid = county["cid"]
    li, zhao = await service.login("dr_li"), await service.login("dr_zhao")
    await service.client.post(f"/api/consultations/{cid}/claim", headers=li)
    await post(service, zhao, cid, "Patient on warfarin")
    await service.client.post(
        f"/api/consultations/{cid}/preliminary", headers=li, json={"text": "No bleed"}
    )
    view = await (await service.client.get(f"/api/consultations/{cid}", headers=zhao)).json()
    types = [e["type"] for e in view["events"]]
    assert types == ["images_received", "requested", "claimed", "message", "preliminary"]
    assert [e["at"] for e in view["events"]] == sorted(e["at"] for e in view["events"])


async def test_thread_reads_posts_and_answers_are_audited_with_the_patient(service, county):
    cid = county["cid"]
    li, zhao = await service.login("dr_li"), await service.login("dr_zhao")
    await post(service, zhao, cid, "hello")
    await service.client.get(messages_url(cid), headers=li)
    await service.client.post(f"/api/consultations/{cid}/claim", headers=li)
    await service.client.post(
        f"/api/consultations/{cid}/preliminary", headers=li, json={"text": "No bleed"}
    )
    await service.client.get(messages_url(cid), headers=await service.login("requester_b"))

    def rows(db):
        return [
            dict(r)
            for r in db.execute(
                "SELECT action, outcome, username, patient_id, resource_id FROM audit_log"
                " WHERE action IN ('message.read', 'message.post', 'consultation.preliminary')"
                " ORDER BY id"
            )
        ]

    found = [
        (r["action"], r["outcome"], r["username"], r["patient_id"], r["resource_id"])
        for r in await service.database.read(rows)
    ]
    assert found == [
        ("message.post", "success", "dr_zhao", "PID-STROKE", str(cid)),
        ("message.read", "success", "dr_li", "PID-STROKE", str(cid)),
        ("consultation.preliminary", "success", "dr_li", "PID-STROKE", str(cid)),
        ("message.read", "denied", "requester_b", "", str(cid)),
    ]


async def test_posting_publishes_a_live_change_to_the_requester(service, county):
    """The requester's own event stream hears of the message (the status page refetches)."""
    zhao = await service.login("dr_zhao")
    stream = await service.client.get("/api/worklist/events", headers=zhao)
    assert stream.status == 200
    await post(service, await service.login("dr_li"), county["cid"], "any news?")
    received = b""
    async with asyncio.timeout(5):
        while b"event: change" not in received:
            received += await stream.content.readany()
    stream.close()
    assert b'"kind": "message"' in received
    assert f'"consultation_id": {county["cid"]}'.encode() in received
