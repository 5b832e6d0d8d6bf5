"""In a real browser: Dr Zhao files a stat request and watches its status page update live."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from playwright.async_api import Page, expect

from service.intake.cancellation import cancel_request
from service.intake.intake import InstanceOrigin, ReceivedStudy, receive_study
from worklists.sla import SlaPolicy

from .browser import log_in

UID = "1.2.826.0.1.3680043.10.78.1"


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def test_requester_sees_claim_and_preliminary_answer_without_reload(service, page: Page):
    """File on /request, land on /consultations/{id}; the claim and the preliminary answer
    made through the API appear within 2 s (Server-Sent Events, then a refetch)."""
    county = await service.add_facility("County Hospital", "county", "COUNTY")
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    await service.add_user("dr_zhao", "requester", county)
    await service.add_user("dr_li", "specialist", centre)
    study = ReceivedStudy(
        orthanc_id="o-browser",
        study_instance_uid=UID,
        patient_id="PID-B1",
        patient_name="赵大爷",
        accession_number="ACC-B1",
        modalities=("CT",),
        body_part="HEAD",
        instances_count=2,
        origins=(InstanceOrigin("DicomProtocol", "COUNTY", "10.0.0.9"),),
    )
    await service.database.write(receive_study, study, now=datetime.now(UTC), sla=SlaPolicy())
    base = str(service.client.make_url("/")).rstrip("/")

    await log_in(page, base, "dr_zhao", "/request")
    await page.check("#consult-priority-stat")
    await page.fill("#consult-patient-id", "PID-B1")
    await page.fill("#consult-birth-date", "1959-09-20")
    await page.select_option("#consult-sex", "M")
    await page.fill("#consult-procedure", "CT head plain")
    await page.fill("#consult-study", UID)
    await page.fill("#consult-history", "67 y, sudden weakness, 40 min from onset")
    await page.fill("#consult-question", "haemorrhage? thrombolysis candidate?")
    await page.fill("#consult-phone", "+86 139 0000 0000")
    await page.click("#consult-submit")
    await page.wait_for_url(f"{base}/consultations/*")
    consultation_id = int(page.url.rsplit("/", 1)[1])
    stored = await service.database.read(
        lambda db: db.execute(
            "SELECT patient_birth_date, patient_sex, requested_procedure, requested_via"
            " FROM consultations WHERE id = ?",
            [consultation_id],
        ).fetchone()
    )
    assert tuple(stored) == ("19590920", "M", "CT head plain", "web")
    root = page.locator("#consultation")
    await expect(root).to_have_attribute("data-live", "on")
    await expect(page.locator("#consult-priority")).to_have_attribute("data-priority", "stat")
    await expect(page.locator("#status-claimed")).to_have_text("Not yet claimed")

    loads = []
    page.on("load", lambda _: loads.append(1))
    li = await service.login("dr_li")
    started = time.monotonic()
    claimed = await service.client.post(f"/api/consultations/{consultation_id}/claim", headers=li)
    assert claimed.status == 200, await claimed.text()
    answer = "No haemorrhage, no large infarct. Full report follows."
    sent = await service.client.post(
        f"/api/consultations/{consultation_id}/preliminary", headers=li, json={"text": answer}
    )
    assert sent.status == 201, await sent.text()

    await expect(page.locator("#status-claimed")).to_have_text("Claimed by dr_li", timeout=2000)
    await expect(page.locator("#status-preliminary")).to_contain_text(answer, timeout=2000)
    print(
        f"preliminary answer → requester's open page: {(time.monotonic() - started) * 1000:.0f} ms"
    )
    await expect(page.locator("#status-report")).to_have_text("Not yet signed")
    await expect(page.locator('#timeline li[data-type="preliminary"]')).to_have_count(1)
    assert loads == []  # no reload

    await page.fill("#message-body", "Thank you, starting thrombolysis.")
    await page.click("#message-submit")
    await expect(page.locator("#thread .message-body")).to_have_text(
        ["Thank you, starting thrombolysis."]
    )

    # The county HIS withdraws the order: the page says so, with the reason, not "Received".
    await service.database.write(
        cancel_request,
        consultation_id,
        user_id=None,
        reason="Patient transferred",
        now=datetime.now(UTC),
        via="hl7",
    )
    await page.reload()
    await expect(page.locator("#status-received")).to_contain_text("Request cancelled")
    await expect(page.locator("#status-received")).to_contain_text("Patient transferred")
    await expect(page.locator('#timeline li[data-type="cancelled"]')).to_have_count(1)
