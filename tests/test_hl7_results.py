"""Signed reports reach the facility's HIS as HL7 v2 ORU^R01 over MLLP, through the durable
outbox: the county HIS is python-hl7's own asyncio MLLP server, and what it receives must parse
with ``hl7.parse`` and carry the report, the accession number, the verification code and the
signed PDF. An HIS that is down or answers AE leaves the reason for the administrator to see.

One world for the module, without Orthanc (nothing here needs an image): facilities with HL7
endpoints, consultations filed as HIS orders whose images arrived, a specialist who signs."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import hl7
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hl7.mllp import start_hl7_server
from playwright.async_api import Page, Playwright, expect

from service.app import create_app
from service.hl7.results_outbox import NotAccepted, ack_verdict
from service.intake.intake import (
    ConsultationRequest,
    InstanceOrigin,
    ReceivedStudy,
    file_request,
    receive_study,
)
from service.settings import Settings
from service.storage import facilities as facility_store
from tests.browser import log_in
from tests.conftest import PASSWORD, Service, free_port
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

PORTS = {"his": free_port(), "down": free_port(), "ae": free_port()}


class CountyHis:
    """An MLLP receiver built on python-hl7's asyncio server: keeps the raw bytes of every
    message and answers each with ``ack_code`` (AE with an ERR segment saying why)."""

    def __init__(self, ack_code: str = "AA") -> None:
        self.ack_code = ack_code
        self.received: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self, port: int) -> None:
        # A signed PDF is larger than asyncio's default 64 KiB line limit.
        self.server = await start_hl7_server(self._serve, "127.0.0.1", port, limit=1 << 24)

    async def _serve(self, reader, writer) -> None:
        try:
            while not writer.is_closing():
                raw = await reader.readblock()
                self.received.append(raw)
                charset = str(hl7.parse(raw.decode("latin-1")).segment("MSH")(18))
                encoding = "gb18030" if charset == "GB 18030" else "utf-8"
                message = hl7.parse(raw.decode(encoding))
                ack = str(message.create_ack(self.ack_code)).rstrip("\r")
                if self.ack_code != "AA":
                    ack += "\rERR||PID^1^3|204^Unknown key identifier^HL70357|E||||患者未登记"
                writer.writeblock(ack.encode(encoding))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def messages(self) -> list[hl7.Message]:
        return [hl7.parse(raw.decode(_encoding(raw))) for raw in self.received]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def _encoding(raw: bytes) -> str:
    return "gb18030" if b"|GB 18030" in raw.split(b"\r")[0] else "utf-8"


@dataclasses.dataclass
class World:
    service: Service
    his: CountyHis
    ae_his: CountyHis
    admin: dict[str, str]
    li: dict[str, str]
    cids: dict[str, int]


FACILITIES = {
    # key: (name, AE title, HL7 code, endpoint port key, character set)
    "county": ("县人民医院", "COUNTY_CT", "COUNTY_HIS", "his", "ISO_IR 192"),
    "gb": ("青山镇卫生院", "QS_DR", None, "his", "GB18030"),
    "down": ("Hexi Township", "HEXI_DR", None, "down", "ISO_IR 192"),
    "ae": ("Beishan Township", "BS_DR", None, "ae", "ISO_IR 192"),
    "none": ("Nanshan Township", "NS_DR", None, None, "ISO_IR 192"),
}


async def _order(service: Service, key: str, facility_id: int, aet: str, n: int) -> int:
    """An HIS order whose images then arrived from the facility's modality."""
    now = datetime.now(UTC)
    uid = f"1.2.826.0.1.3680043.10.999.{n}"
    study = ReceivedStudy(
        orthanc_id=f"o-{key}",
        study_instance_uid=uid,
        patient_id=f"PID-{key.upper()}",
        patient_name="Wang^Xiaoming=王^小明",
        patient_birth_date="19580301",
        patient_sex="M",
        accession_number=f"ACC-{key.upper()}",
        study_date="20261202",
        modalities=("CT",),
        body_part="HEAD",
        instances_count=1,
        origins=(InstanceOrigin("DicomProtocol", aet, "10.0.0.7"),),
    )
    database = service.database
    outcome = await database.write(receive_study, study, now=now, sla=SlaPolicy())
    request = ConsultationRequest(
        Priority.URGENT,
        study_instance_uid=uid,
        placer_order_number=f"PO-{key.upper()}",
        requested_procedure="CT 头颅平扫",
        requested_procedure_code="CTHEAD",
        via="hl7",
    )
    await database.write(
        file_request, request, facility_id=facility_id, user_id=None, now=now, sla=SlaPolicy()
    )
    return outcome.consultation_ids[0]


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    directory: Path = tmp_path_factory.mktemp("hl7results")
    settings = Settings(
        data_dir=directory / "var",
        hl7_retry_seconds=0.1,
        # 25.5 s of backoff: the HIS that is down must still be pending when its correction is
        # signed, a few seconds later on a busy machine (with 7 attempts, 6.3 s, a CI run once
        # failed the original before the correction came).
        hl7_max_attempts=9,
        delivery_retry_seconds=600,  # no archive here: the archive copy just waits
    )
    his, ae_his = CountyHis(), CountyHis("AE")
    await his.start(PORTS["his"])
    await ae_his.start(PORTS["ae"])
    client = TestClient(TestServer(create_app(settings, orthanc=False)))
    await client.start_server()
    service = Service(client, client.app, None)
    try:
        database = service.database
        centre = await service.add_facility("县域影像中心", "regional", "CENTRE")
        await service.add_user("dr_li", "specialist", centre)
        await service.add_user("root", "admin", centre)
        cids = {}
        for n, (key, (name, aet, code, port, charset)) in enumerate(FACILITIES.items()):
            facility_id = await database.write(
                facility_store.add_facility,
                name=name,
                kind="township",
                aet=aet,
                timezone="Asia/Shanghai",
                hl7_code=code,
                hl7_endpoint=f"127.0.0.1:{PORTS[port]}" if port else None,
                character_set=charset,
            )
            cids[key] = await _order(service, key, facility_id, aet, n)
        li, admin = await service.login("dr_li"), await service.login("root")
        yield World(service, his, ae_his, admin, li, cids)
    finally:
        await client.close()
        await his.stop()
        await ae_his.stop()


async def _sign(
    world: World, key: str, findings: str, *, correction: bool = False, critical: bool = False
) -> dict:
    client, base = world.service.client, f"/api/consultations/{world.cids[key]}"
    if correction:
        opened = await client.post(f"{base}/report/correction", headers=world.li)
    else:
        opened = await client.post(f"{base}/claim", headers=world.li)
    assert opened.status == 200, await opened.text()
    draft = {"findings": findings, "impression": "未见颅内出血。\nNo bleed.", "critical": critical}
    saved = await client.put(f"{base}/report/draft", headers=world.li, json=draft)
    assert saved.status == 200, await saved.text()
    signed = await client.post(f"{base}/report/sign", headers=world.li, json={"password": PASSWORD})
    assert signed.status == 201, await signed.text()
    return await signed.json()


async def _outbox(world: World, **params: str) -> list[dict]:
    response = await world.service.client.get(
        "/api/admin/hl7-outbox", headers=world.admin, params=params
    )
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


async def _row(world: World, key: str, **params: str) -> list[dict]:
    return [r for r in await _outbox(world, **params) if r["consultation_id"] == world.cids[key]]


async def a_signed_report_reaches_the_his_as_an_oru_r01_with_the_pdf(world: World) -> None:
    """ORU^R01 with MSH-18 UTF-8, the patient, placer and accession numbers, the text, F,
    the verification code, the signer, times with the facility's offset, and the PDF."""
    # The result step 4 expects refused backs off meanwhile (its waits would add seconds).
    await _sign(world, "ae", "Normal.")
    signed = await _sign(world, "county", "脑实质未见异常密度影。\nMidline | centred ^ ok.")
    await world.service.wait_for(lambda: _received(world.his, 1), timeout=10)
    raw = world.his.received[0]
    raw.decode("utf-8")
    message = hl7.parse(raw.decode("utf-8"))
    msh, pid = message.segment("MSH"), message.segment("PID")
    orc, obr = message.segment("ORC"), message.segment("OBR")
    assert str(msh(9)) == "ORU^R01^ORU_R01" and str(msh(18)) == "UNICODE UTF-8"
    assert str(msh(6)) == "COUNTY_HIS" and str(msh(12)) == "2.5.1"
    assert str(pid(3)(1)(1)) == "PID-COUNTY" and str(pid(7)) == "19580301"
    assert "王^小明" in str(pid(5)) and str(pid(8)) == "M"
    assert str(orc(2)) == str(obr(2)) == "PO-COUNTY"
    assert str(orc(3)) == str(obr(3)) == str(obr(18)) == "ACC-COUNTY"
    assert str(obr(4)) == "CTHEAD^CT 头颅平扫^L"
    assert str(obr(25)) == "F" and str(obr(22)).endswith("+0800")
    assert "dr_li" in str(obr(32))
    observations = message.segments("OBX")
    assert {str(obx(11)) for obx in observations} == {"F"}
    text = [message.unescape(str(obx(5))) for obx in observations if str(obx(2)) == "TX"]
    assert text[:2] == ["脑实质未见异常密度影。", "Midline | centred ^ ok."]
    assert "No bleed." in text
    code = [str(obx(5)) for obx in observations if str(obx(3)).startswith("VERIFY")]
    assert code == [signed["verification_code"]]
    (document,) = [obx for obx in observations if str(obx(2)) == "ED"]
    assert str(document(5)(1)(2)) == "AP" and str(document(5)(1)(4)) == "Base64"
    assert base64.b64decode(str(document(5)(1)(5))).startswith(b"%PDF")

    async def sent():
        rows = await _row(world, "county", status="sent")
        return rows[0] if rows else None

    row = await world.service.wait_for(sent, timeout=5)
    assert row["result_status"] == "F" and row["ack_code"] == "AA" and row["attempts"] == 1
    # A facility without an HIS endpoint gets nothing queued.
    await _sign(world, "none", "Normal.")
    assert await _row(world, "none") == []
    await _audited(world, "hl7.result_sent", "county")


async def his_down_then_back_gets_the_original_then_the_correction(world: World) -> None:
    """While the HIS is away the result waits (pending, with the reason) and so does the
    correction behind it; once it listens, F arrives first and C after it."""
    await _sign(world, "down", "First reading.")

    async def waiting():
        rows = await _row(world, "down", status="pending")
        return rows[0] if rows and rows[0]["attempts"] >= 1 else None

    row = await world.service.wait_for(waiting, timeout=5)
    assert "refused" in row["reason"].lower() or "connect" in row["reason"].lower()
    assert row["next_attempt_at"]
    await _sign(world, "down", "Corrected reading.", correction=True)
    rows = await _row(world, "down")
    assert [(r["result_status"], r["status"]) for r in rows] == [
        ("C", "pending"),
        ("F", "pending"),
    ]
    assert rows[0]["attempts"] == 0  # held behind the original, never tried
    his = CountyHis()
    await his.start(PORTS["down"])
    try:  # the next attempt may be 12.8 s away (after 8 failed ones)
        await world.service.wait_for(lambda: _received(his, 2), timeout=30)
        statuses = [str(m.segment("OBR")(25)) for m in his.messages()]
        assert statuses == ["F", "C"]
        corrected = his.messages()[1]
        assert {str(obx(11)) for obx in corrected.segments("OBX")} == {"C"}

        async def both_sent():
            rows = await _row(world, "down", status="sent")
            return len(rows) == 2

        await world.service.wait_for(both_sent, timeout=5)
    finally:
        await his.stop()
    await _audited(world, "hl7.result_failed", "down")


async def an_his_answering_ae_fails_the_result_with_its_reason_and_retry(world: World) -> None:
    """AE is retried with backoff, then failed; the administrator sees the HIS's ERR text and
    may send it again; a sent result cannot be retried. (Signed in step 1.)"""

    async def failed():
        rows = await _row(world, "ae", status="failed")
        return rows[0] if rows else None

    row = await world.service.wait_for(failed, timeout=40)
    assert row["ack_code"] == "AE" and row["attempts"] == 9
    assert "患者未登记" in row["reason"] and "Unknown key identifier" in row["reason"]
    assert len(world.ae_his.received) == 9
    client = world.service.client
    retried = await client.post(f"/api/admin/hl7-outbox/{row['id']}/retry", headers=world.admin)
    assert retried.status == 200, await retried.text()
    assert (await retried.json())["status"] == "pending"
    (sent,) = await _row(world, "county", status="sent")
    again = await client.post(f"/api/admin/hl7-outbox/{sent['id']}/retry", headers=world.admin)
    assert again.status == 409 and (await again.json())["error"] == "already_sent"
    denied = await client.get("/api/admin/hl7-outbox", headers=world.li)
    assert denied.status == 403
    bad = await client.get("/api/admin/hl7-outbox?status=lost", headers=world.admin)
    assert bad.status == 400


async def a_gb18030_facility_gets_gb18030_bytes(world: World) -> None:
    """MSH-18 GB 18030, and the bytes decode as GB 18030 (not UTF-8) with the name right; this
    report's critical finding flags the impression's lines AA."""
    before = len(world.his.received)
    await _sign(world, "gb", "两肺纹理清晰。", critical=True)
    await world.service.wait_for(lambda: _received(world.his, before + 1), timeout=10)
    raw = world.his.received[before]
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    message = hl7.parse(raw.decode("gb18030"))
    assert str(message.segment("MSH")(18)) == "GB 18030"
    assert str(message.segment("PID")(5)).split("~")[1] == "王^小明"
    lines = [obx for obx in message.segments("OBX") if str(obx(2)) == "TX"]
    assert str(lines[0](5)) == "两肺纹理清晰。" and str(lines[0](8)) == ""
    assert [str(obx(8)) for obx in lines if str(obx(4)) == "2"] == ["AA", "AA"]  # critical


async def _received(his: CountyHis, count: int) -> bool:
    return len(his.received) >= count


async def _audited(world: World, action: str, key: str) -> None:
    response = await world.service.client.get(
        "/api/audit", headers=world.admin, params={"action": action}
    )
    assert response.status == 200, await response.text()
    items = (await response.json())["items"]
    mine = [i for i in items if i["resource_id"] == str(world.cids[key])]
    assert mine and mine[0]["patient_id"] == f"PID-{key.upper()}"
    assert mine[0]["resource_type"] == "consultation"


@pytest.mark.browser
async def test_signed_results_reach_the_his_in_order_and_the_administrator_sees_them(
    world: World, playwright: Playwright, browser_type_launch_args: dict
):
    """One scenario, in this order (each step needs the results of the ones before it, so it
    is one test, which pytest-xdist cannot split across workers):

    1. a signed report reaches the county HIS as an ORU^R01 with the PDF (and a facility with
       no HIS endpoint gets nothing queued);
    2. an HIS that is down gets the original, then the correction, once it is back;
    3. a GB 18030 facility gets GB 18030 bytes;
    4. an HIS that answers AE fails the result with its reason; the administrator retries;
    5. the facilities page lists all of it in a real browser (its own browser: the ``page``
       fixture is parametrized for the session, and pytest would reorder the test for it)."""
    await a_signed_report_reaches_the_his_as_an_oru_r01_with_the_pdf(world)
    await his_down_then_back_gets_the_original_then_the_correction(world)
    await a_gb18030_facility_gets_gb18030_bytes(world)  # while the AE result backs off
    await an_his_answering_ae_fails_the_result_with_its_reason_and_retry(world)
    browser = await playwright.chromium.launch(**browser_type_launch_args)
    try:
        await _outbox_page(world, await browser.new_page())
    finally:
        await browser.close()


async def _outbox_page(world: World, page: Page) -> None:
    base = str(world.service.client.make_url("/")).rstrip("/")
    await log_in(page, base, "root", "/admin/facilities")
    await expect(page.locator("#hl7-outbox-title")).to_have_text("HL7 results outbox")
    rows = page.locator("#hl7-outbox tr.hl7-row")
    await expect(rows).to_have_count(5)  # county, down F and C, ae, gb; none for "none"
    await page.select_option("#hl7-status", "sent")
    await expect(rows).to_have_count(4)
    await expect(rows.first.locator(".col-status")).to_have_text("Sent")
    await expect(rows.locator(".hl7-retry")).to_have_count(0)
    await expect(page.locator("#hl7-outbox")).to_contain_text("Wang Xiaoming = 王小明")
    await page.select_option("#hl7-status", "")
    refused = page.locator("#hl7-outbox tr.hl7-row", has_text="患者未登记")
    await expect(refused).to_have_count(1)
    async with page.expect_response(lambda r: r.url.endswith("/retry")) as answer:
        await refused.locator(".hl7-retry").click()
    assert (await answer.value).status == 200
    await expect(page.locator("#hl7-error")).to_have_text("")


@pytest.mark.parametrize(
    ("segments", "refusal"),
    [
        ("MSA|AA|TR0000000002", "answers message 'TR0000000002'"),
        ("MSA|AR|TR0000000001\rERR|PID^1^3^Patient unknown", "AR: ERR|PID^1^3^Patient unknown"),
        ("MSA|AE|TR0000000001|Order not found", "AE: Order not found"),
        ("PID|1", "no MSA segment"),
    ],
)
def test_only_an_aa_for_this_message_counts_as_sent(segments, refusal):
    """AA naming our control ID is sent; anything else is refused with what the HIS said."""
    header = "MSH|^~\\&|HIS|COUNTY|TELEREAD||20261203||ACK^R01^ACK|A1|P|2.5.1\r"
    accepted = hl7.parse(header + "MSA|AA|TR0000000001")
    assert ack_verdict(accepted, "TR0000000001") == "AA"
    with pytest.raises(NotAccepted, match=re.escape(refusal)):
        ack_verdict(hl7.parse(header + segments), "TR0000000001")
