"""HL7 v2 over MLLP, inbound: a county HIS's orders, cancels and patient updates, sent with
python-hl7's own MLLP client (``hl7.mllp.open_hl7_connection``) to a running teleread, and
every answer read back as an ACK with that library.

The world (one app for the module, no Orthanc: no image is involved): the county hospital
(HL7 code COUNTY-HIS, AE title COUNTY_CT) and a township clinic (known to HL7 by its AE title
DONGXIANG_DR, GB 18030 modalities), a specialist at the county to read the API with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import hl7
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hl7.mllp import open_hl7_connection

from service.app import create_app
from service.hl7 import listener
from service.hl7.retention import forget_old_control_ids
from service.storage import facilities as facility_store
from tests.conftest import Service, free_port, suite_settings

ORM = (
    "MSH|^~\\&|HIS|COUNTY-HIS|TELEREAD|REGIONAL|20261203091500+0800||ORM^O01^ORM_O01|{id}|P|2.5"
    "|||||CHN|UNICODE UTF-8\r"
    "PID|1||CY9001^^^COUNTY^MR||陈^国强^^^^^L^I~Chen^Guoqiang^^^^^L^A||19590920|M\r"
    "PV1|1|E\r"
    "ORC|NW|PO-77|||||||20261203091200+0800|||||0731-5550123\r"
    "OBR|1|PO-77||CT-HEAD^CT head without contrast^L|S||||||||Fall at home \\T\\ dizzy"
    "|||||CY-ACC-77||||||CT|||||||^Haemorrhage?\r"
    "NTE|1||On warfarin\r"
)
OMI = (
    "MSH|^~\\&|HIS|DONGXIANG_DR|TELEREAD|REGIONAL|20261203100000+0800||OMI^O23^OMI_O23|OMI-1"
    "|P|2.5|||||CHN|GB 18030\r"
    "PID|1||DX7001||张^伟||19580312|M\r"
    "ORC|NW|DX-PO-1\r"
    "TQ1|1||||||||A\r"
    "OBR|1|DX-PO-1||CR-CHEST^胸部正位^L|||||||||咳嗽三周\r"
    "IPC|DX-ACC-1|RP1|1.2.826.0.1.3680043.10.1.77|SPS1|CR\r"
)


def order(control_id: str, number: int = 77) -> str:
    """The ORM above with another control ID, placer order and accession number."""
    return (
        ORM.format(id=control_id)
        .replace("PO-77", f"PO-{number}")
        .replace("CY-ACC-77", f"CY-ACC-{number}")
    )


async def send(port: int, text: str, encoding: str = "utf-8") -> hl7.Message:
    """One message over MLLP with python-hl7's client; its ACK, parsed."""
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding=encoding)
    try:
        writer.writemessage(hl7.parse(text))
        await writer.drain()
        return await asyncio.wait_for(reader.readmessage(), 10)
    finally:
        writer.close()
        await writer.wait_closed()


async def exchange(port: int, *blocks: bytes) -> list[bytes]:
    """Raw MLLP frames sent one after another on one connection; the raw answers."""
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    answers = []
    try:
        for block in blocks:
            writer.writeblock(block)
            await writer.drain()
            answers.append(await asyncio.wait_for(reader.readblock(), 10))
    finally:
        writer.close()
        await writer.wait_closed()
    return answers


def ack_code(ack: hl7.Message) -> str:
    return str(ack.segment("MSA")(1))


def err_text(ack: hl7.Message) -> str:
    return ack.unescape(str(ack.segment("ERR")(8)))


@dataclass
class World:
    service: Service
    port: int
    county: int
    township: int

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        def read(db):
            return [dict(r) for r in db.execute(sql, list(params))]

        return await self.service.database.read(read)

    async def state(self) -> tuple[Any, ...]:
        """What a refused message must leave as it was."""
        consultations = await self.rows("SELECT * FROM consultations ORDER BY id")
        events = await self.rows("SELECT count(*) AS n FROM consultation_events")
        received = await self.rows("SELECT count(*) AS n FROM hl7_received")
        return consultations, events[0]["n"], received[0]["n"]


@pytest.fixture(scope="module")
async def world(tmp_path_factory, database_backend) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp("hl7")
    port = free_port()
    settings = replace(suite_settings(directory, None), hl7_port=port)
    client = TestClient(TestServer(create_app(settings, orthanc=False)))
    await client.start_server()
    try:
        service = Service(client, client.app, None)
        county = await service.database.write(
            facility_store.add_facility, name="County People's Hospital", kind="county",
            aet="COUNTY_CT", timezone="Asia/Shanghai", hl7_code="COUNTY-HIS",
        )  # fmt: skip
        township = await service.database.write(
            facility_store.add_facility, name="Dongxiang", kind="township",
            aet="DONGXIANG_DR", timezone="Asia/Shanghai", character_set="GB18030",
        )  # fmt: skip
        await service.add_user("zhao", "clinician", county)
        yield World(service, port, county, township)
    finally:
        await client.close()


async def test_an_orm_order_in_utf8_becomes_a_consultation_with_every_field(world):
    """ORM^O01 NW from the county HIS: AA, and a consultation requested via HL7 with the
    patient (Han and pinyin name groups), order, procedure, STAT priority from OBR-5, history
    (OBR-13 and NTE) and question (OBR-31); the timeline and the audit trail show it."""
    ack = await send(world.port, order("ORM-1"))
    assert ack_code(ack) == "AA" and str(ack.segment("MSA")(2)) == "ORM-1"
    assert str(ack.segment("MSH")(9)) == "ACK^O01^ACK"
    assert str(ack.segment("MSH")(7)).endswith("+0800")  # the county's local time
    assert str(ack.segment("MSH")(18)) == "UNICODE UTF-8"
    [row] = await world.rows("SELECT * FROM consultations WHERE accession_number = 'CY-ACC-77'")
    assert row["facility_id"] == world.county
    assert (row["patient_id"], row["patient_name"]) == ("CY9001", "Chen^Guoqiang=陈^国强")
    assert (row["patient_birth_date"], row["patient_sex"]) == ("19590920", "M")
    assert (row["placer_order_number"], row["requested_via"]) == ("PO-77", "hl7")
    assert (row["requested_procedure_code"], row["requested_procedure"]) == (
        "CT-HEAD",
        "CT head without contrast",
    )
    assert (row["priority"], row["modality"], row["status"]) == ("stat", "CT", "awaiting_images")
    assert row["clinical_history"] == "Fall at home & dizzy\nOn warfarin"
    assert row["clinical_question"] == "Haemorrhage?"
    assert row["callback_phone"] == "0731-5550123" and row["requested_by"] is None

    headers = await world.service.login("zhao")
    response = await world.service.client.get(f"/api/consultations/{row['id']}", headers=headers)
    assert response.status == 200, await response.text()
    events = (await response.json())["events"]
    assert [(e["type"], e["detail"]["via"]) for e in events] == [("requested", "hl7")]
    [audit] = await world.rows("SELECT * FROM audit_log WHERE action = 'hl7.order'")
    assert (audit["resource_type"], audit["resource_id"], audit["patient_id"]) == (
        "hl7_message",
        "ORM-1",
        "CY9001",
    )
    assert audit["facility_id"] == world.county and audit["client_ip"] == "127.0.0.1"
    assert f'"consultations": [{row["id"]}]' in audit["detail"]
    assert '"ordered_at": "2026-12-03T01:12:00.000000Z"' in audit["detail"]  # +0800 honoured


async def test_an_omi_order_in_gb18030_is_decoded_and_answered_in_gb18030(world):
    """OMI^O23 in GB 18030 from a clinic known by its AE title: the Chinese name, procedure
    and history read right; IPC gives the accession number, Study UID and modality, TQ1-9
    the priority; the ACK comes back in GB 18030."""
    ack = await send(world.port, OMI, encoding="gb18030")
    assert ack_code(ack) == "AA" and str(ack.segment("MSH")(18)) == "GB 18030"
    [row] = await world.rows("SELECT * FROM consultations WHERE accession_number = 'DX-ACC-1'")
    assert row["facility_id"] == world.township
    assert (row["patient_name"], row["requested_procedure"]) == ("张^伟", "胸部正位")
    assert row["clinical_history"] == "咳嗽三周"
    assert row["study_instance_uid"] == "1.2.826.0.1.3680043.10.1.77"
    assert (row["modality"], row["priority"]) == ("CR", "urgent")


async def test_a_control_id_sent_twice_is_applied_once_and_answered_the_same(world):
    first = await send(
        world.port,
        order("ORM-2", 78),
    )
    second = await send(
        world.port,
        order("ORM-2", 78),
    )
    assert ack_code(first) == "AA" and str(first) == str(second)
    rows = await world.rows("SELECT id FROM consultations WHERE accession_number = 'CY-ACC-78'")
    assert len(rows) == 1
    audits = await world.rows("SELECT id FROM audit_log WHERE resource_id = 'ORM-2'")
    assert len(audits) == 1


async def test_cancel_then_patient_update_changes_only_open_consultations(world):
    """ORC-1 CA cancels the open order (by placer number); ADT^A08 then renames the patient on
    the facility's open consultation only: the cancelled one keeps the name it had."""
    await send(
        world.port,
        order("ORM-3", 79),
    )
    cancel = (
        "MSH|^~\\&|HIS|COUNTY-HIS|TELEREAD|REGIONAL|20261203093000+0800||ORM^O01|CAN-1|P|2.5\r"
        "PID|1||CY9001\r"
        "ORC|CA|PO-79||||||||||||||^Patient transferred\r"
    )
    ack = await send(world.port, cancel)
    assert ack_code(ack) == "AA"
    [cancelled] = await world.rows("SELECT * FROM consultations WHERE placer_order_number='PO-79'")
    assert cancelled["status"] == "cancelled"
    [event] = await world.rows(
        "SELECT detail FROM consultation_events WHERE consultation_id = ? AND type = 'cancelled'",
        cancelled["id"],
    )
    assert (
        '"reason": "Patient transferred"' in event["detail"] and '"via": "hl7"' in event["detail"]
    )

    update = (
        "MSH|^~\\&|HIS|COUNTY-HIS|TELEREAD|REGIONAL|20261203094000+0800||ADT^A08^ADT_A01|A08-1"
        "|P|2.5|||||CHN|UNICODE UTF-8\r"
        "EVN|A08|20261203094000+0800\r"
        "PID|1||CY9001^^^COUNTY^MR||陈^国庆^^^^^L^I~Chen^Guoqing^^^^^L^A||19590921|M\r"
    )
    assert ack_code(await send(world.port, update)) == "AA"
    rows = await world.rows(
        "SELECT id, placer_order_number, patient_name, patient_birth_date, status"
        " FROM consultations"
        " WHERE patient_id = 'CY9001' ORDER BY id"
    )
    by_order = {r["placer_order_number"]: r for r in rows}
    assert by_order["PO-77"]["patient_name"] == "Chen^Guoqing=陈^国庆"
    assert by_order["PO-77"]["patient_birth_date"] == "19590921"
    assert by_order["PO-79"]["patient_name"] == "Chen^Guoqiang=陈^国强"  # cancelled: as it was
    [audit] = await world.rows("SELECT * FROM audit_log WHERE action = 'hl7.patient_update'")
    assert audit["patient_id"] == "CY9001" and '"patient_birth_date"' in audit["detail"]
    events = await world.rows(
        "SELECT consultation_id FROM consultation_events WHERE type = 'patient_updated'"
    )
    open_ids = [r["id"] for r in rows if r["status"] != "cancelled"]
    assert [e["consultation_id"] for e in events] == open_ids
    assert cancelled["id"] not in open_ids


async def test_bad_messages_are_refused_with_a_reason_and_change_nothing(world):
    """Malformed, unknown facility, missing PID-3, unsupported type, another facility's order,
    too large: AE or AR with an ERR saying why, an ``hl7.refused`` audit record, no change."""
    before = await world.state()
    unknown = order("BAD-1").replace("COUNTY-HIS", "NOBODY")
    no_pid3 = order("BAD-2", 80).replace("CY9001^^^COUNTY^MR", "")
    a40 = (
        "MSH|^~\\&|HIS|COUNTY-HIS|TELEREAD|REGIONAL|20261203094000||ADT^A40|BAD-3|P|2.5\r"
        "PID|1||CY9001\rMRG|\r"
    )
    foreign_cancel = (
        "MSH|^~\\&|HIS|DONGXIANG_DR|TELEREAD|REGIONAL|20261203094000||ORM^O01|BAD-4|P|2.5\r"
        "ORC|CA|PO-77\r"
    )
    cases = [
        (unknown, "AR", "unknown sending facility 'NOBODY'"),
        (no_pid3, "AE", "PID-3 (patient identifier) is missing"),
        (a40, "AE", "MRG-1 (prior patient identifier list) is empty"),
        (foreign_cancel, "AE", "no open order with placer order 'PO-77'"),
    ]
    for text, code, reason in cases:
        ack = await send(world.port, text)
        assert ack_code(ack) == code and err_text(ack).startswith(reason), str(ack)
        assert ack.unescape(str(ack.segment("MSA")(3))) == err_text(ack)
    assert str((await send(world.port, no_pid3)).segment("ERR")(2)) == "PID^1^3"

    [garbage] = await exchange(world.port, b"this is not HL7\r")
    assert b"MSA|AR|" in garbage and b"does not begin with an MSH segment" in garbage
    other_charset = ORM.format(id="BAD-5").replace("UNICODE UTF-8", "ISO IR87").encode()
    [answer] = await exchange(world.port, other_charset)
    assert b"MSA|AR|BAD-5|unsupported character set 'ISO IR87' in MSH-18" in answer
    huge = (
        "MSH|^~\\&|HIS|COUNTY-HIS|||20261203||ORM^O01|BIG-1|P|2.5\rNTE|1||" + "x" * (1 << 20) + "\r"
    ).encode()
    big, after = await exchange(world.port, huge, order("ORM-1").encode())
    assert b"MSA|AR|BIG-1|" in big and b"larger than 1048576 bytes" in big
    assert b"MSA|AA|ORM-1" in after  # the same connection goes on with the next frame

    assert await world.state() == before
    refused = await world.rows("SELECT outcome, detail FROM audit_log WHERE action='hl7.refused'")
    assert len(refused) >= 7
    assert {r["outcome"] for r in refused} == {"denied", "failed"}


async def test_a_patient_merge_moves_open_and_closed_consultations_and_is_audited(world):
    """ADT^A40 from the county HIS: the prior id's consultation takes the surviving id, the
    merge is recorded for an administrator to reverse, and both audit records name it."""
    prior = order("MRG-ORDER", 91).replace("CY9001", "CY9500")
    assert ack_code(await send(world.port, prior)) == "AA"
    a40 = (
        "MSH|^~\\&|HIS|COUNTY-HIS|TELEREAD|REGIONAL|20261203110000+0800||ADT^A40^ADT_A39"
        "|MRG-1|P|2.5|||||CHN|UNICODE UTF-8\r"
        "EVN|A40|20261203110000+0800\r"
        "PID|1||CY9501^^^COUNTY^MR||陈^国强^^^^^L^I||19590920|M\r"
        "MRG|CY9500^^^COUNTY^MR\r"
    )
    ack = await send(world.port, a40)
    assert ack_code(ack) == "AA", str(ack)
    [row] = await world.rows(
        "SELECT patient_id FROM consultations WHERE placer_order_number = 'PO-91'"
    )
    assert row["patient_id"] == "CY9501"
    [merge] = await world.rows("SELECT * FROM patient_merges WHERE prior_patient_id = 'CY9500'")
    assert (merge["surviving_patient_id"], merge["facility_id"]) == ("CY9501", world.county)
    actions = {r["action"] for r in await world.rows("SELECT action FROM audit_log")}
    assert {"hl7.patient_merge", "patient.merged"} <= actions
    assert ack_code(await send(world.port, a40)) == "AA"  # the same control id: applied once
    assert len(await world.rows("SELECT id FROM patient_merges")) == 1


async def test_a_connection_that_sends_nothing_is_closed(world, monkeypatch):
    """An idle or half-sent connection is closed after IDLE_SECONDS, not held for ever."""
    monkeypatch.setattr(listener, "IDLE_SECONDS", 0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", world.port)
    try:
        writer.write(b"\x0bMSH|^~\\&|HIS|COUNTY-HIS")  # a frame started and never finished
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the listener
    finally:
        writer.close()


async def test_control_ids_older_than_a_month_are_forgotten(world):
    """The duplicate check remembers a month of control IDs; older ones are dropped (the audit
    trail keeps what each message did)."""
    database = world.service.database

    def remember_old(db):
        db.execute(
            "INSERT INTO hl7_received (facility_id, control_id, message_type, ack, received_at)"
            " VALUES (?, 'OLD-1', 'ORM^O01', 'MSH|', '2026-01-01T00:00:00Z')",
            [world.county],
        )

    await database.write(remember_old)
    kept = len(await world.rows("SELECT control_id FROM hl7_received")) - 1
    assert await forget_old_control_ids(database) == 1
    assert len(await world.rows("SELECT control_id FROM hl7_received")) == kept


async def test_the_ordering_provider_is_the_requester_when_the_hospital_knows_them(world):
    """ORC-12.1 naming a requesting user of the sending facility makes the order theirs (a
    county requester sees what they ordered in the HIS); anyone else's name leaves it the
    facility's."""
    zhao = await world.rows("SELECT id FROM users WHERE username = 'zhao'")
    known = order("PROV-1", 93).replace("+0800|||||0731", "+0800|||zhao^Zhao^Wei||0731")
    stranger = order("PROV-2", 94).replace("+0800|||||0731", "+0800|||nobody^No^Body||0731")
    assert ack_code(await send(world.port, known)) == "AA"
    assert ack_code(await send(world.port, stranger)) == "AA"
    rows = await world.rows(
        "SELECT placer_order_number, requested_by FROM consultations"
        " WHERE placer_order_number IN ('PO-93', 'PO-94') ORDER BY placer_order_number"
    )
    assert [(r["placer_order_number"], r["requested_by"]) for r in rows] == [
        ("PO-93", zhao[0]["id"]),
        ("PO-94", None),
    ]
