"""In a real browser: the worklist fits the screen. No horizontal overflow at the usual desktop
sizes in English and Chinese, Claim/Report and Due inside the viewport on every row (an
escalated stat row among them), twenty rows at 1440×900, and no specialist controls for the
clinic's roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Page, expect

from service.clock import to_iso
from service.intake.intake import (
    ConsultationRequest,
    InstanceOrigin,
    ReceivedStudy,
    file_request,
    receive_study,
)
from service.storage import consultations as consultation_store
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

from .browser import SCREENSHOTS, log_in

CLINIC = "Dongxiang Township Health Centre of the Eastern Mountain District"
QUESTION = (
    "Sudden left-sided weakness 40 minutes ago; haemorrhage? large vessel occlusion? "
    "thrombolysis candidate? previous stroke in 2019, on aspirin, blood pressure 190/100"
)
ROWS = 24
VIEWPORTS = ((1280, 800), (1440, 900), (1920, 1080))


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def seed(service) -> tuple[int, int]:
    """Two dozen consultations with images and a long question; the first is an escalated stat.

    Returns the clinic's facility id and the escalated consultation's id.
    """
    await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    clinic = await service.add_facility(CLINIC, "township", "DX_CT")
    await service.add_user("wang", "radiographer", clinic)
    requester = await service.add_user("dr_zhao", "requester", clinic)
    now = datetime.now(UTC)

    def write(db) -> int:
        escalated = 0
        for index in range(ROWS):
            uid = f"1.2.826.0.1.3680043.10.16.{index + 1}"
            study = ReceivedStudy(
                orthanc_id=f"o{index}",
                study_instance_uid=uid,
                patient_id=f"4401{index:014d}",
                patient_name=f"欧阳^晓明{index}=OUYANG^XIAOMING{index}",
                accession_number=f"ACC-2026-{index:06d}",
                modalities=("CT",),
                body_part="HEAD",
                instances_count=130,
                origins=(InstanceOrigin("DicomProtocol", "DX_CT", "10.0.0.7"),),
            )
            receive_study(db, study, now=now - timedelta(hours=2), sla=SlaPolicy())
            priority = Priority.STAT if index == 0 else Priority.ROUTINE
            consultation_id, _ = file_request(
                db,
                ConsultationRequest(priority, study_instance_uid=uid, clinical_question=QUESTION),
                facility_id=clinic,
                user_id=requester,
                now=now - timedelta(hours=2),
                sla=SlaPolicy(),
            )
            if index == 0:
                escalated = consultation_id
                consultation_store.append_event(
                    db, consultation_id, "escalated", to_iso(now), None, {"reason": "overdue"}
                )
        return escalated

    return clinic, await service.database.write(write)


FIT = """() => {
  const out = {page: document.documentElement.scrollWidth - window.innerWidth, rows: []};
  const wrap = document.querySelector('.table-wrap');
  out.wrap = wrap.scrollWidth - wrap.clientWidth;
  const inside = (node) => {
    if (!node) return null;
    const r = node.getBoundingClientRect();
    return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth;
  };
  for (const row of document.querySelectorAll('tr.worklist-row')) {
    const buttons = [...row.querySelectorAll('.col-claim .button')];
    out.rows.push({
      id: row.dataset.consultationId,
      buttons: buttons.length,
      inside: buttons.every(inside),
      due: inside(row.querySelector('.col-due .time-left')),
      escalated: Boolean(row.querySelector('.badge-escalated')),
      question: row.querySelector('.col-question').clientWidth,
      dueCut: (() => {
        const left = row.querySelector('.col-due .time-left');
        const cell = row.querySelector('.col-due');
        const padding = parseFloat(getComputedStyle(cell).paddingRight);
        return left.getBoundingClientRect().right > cell.getBoundingClientRect().right - padding;
      })(),
      priorityCut: (() => {
        const badge = row.querySelector('.col-priority .badge');
        const cell = row.querySelector('.col-priority');
        const padding = parseFloat(getComputedStyle(cell).paddingRight);
        return badge.getBoundingClientRect().right > cell.getBoundingClientRect().right - padding;
      })(),
      statusCut: (() => {
        const status = row.querySelector('.col-status .status');
        const cell = row.querySelector('.col-status');
        const padding = parseFloat(getComputedStyle(cell).paddingRight);
        return status.getBoundingClientRect().right > cell.getBoundingClientRect().right - padding;
      })(),
    });
  }
  return out;
}"""


async def test_worklist_fits_each_screen_with_claim_report_and_due_in_view(service, page: Page):
    """1280×800, 1440×900, 1920×1080, English and Chinese: nothing overflows sideways and every
    row's Claim, Report and time left are inside the viewport, the escalated stat row too."""
    clinic, escalated = await seed(service)
    centre = await service.add_facility("Regional Imaging Centre 2", "regional", "REGION2")
    await service.add_user("dr_li", "specialist", centre)
    base = str(service.client.make_url("/")).rstrip("/")
    await log_in(page, base, "dr_li")
    for lang in ("en", "zh_CN"):
        await page.goto(f"{base}/worklist?lang={lang}")
        await expect(page.locator("tr.worklist-row")).to_have_count(ROWS)
        stat_row = page.locator(f'tr.worklist-row[data-consultation-id="{escalated}"]')
        await expect(stat_row.locator(".badge-escalated")).to_be_visible()
        await expect(stat_row.locator("button.claim-claim")).to_be_visible()
        for width, height in VIEWPORTS:
            await page.set_viewport_size({"width": width, "height": height})
            fit = await page.evaluate(FIT)
            where = f"{lang} {width}×{height}"
            if width == 1280:
                await page.screenshot(path=str(SCREENSHOTS / f"worklist-1280-{lang}.png"))
            assert fit["page"] <= 0, f"{where}: the page overflows by {fit['page']} px"
            assert fit["wrap"] <= 0, f"{where}: the table overflows by {fit['wrap']} px"
            assert any(row["escalated"] for row in fit["rows"]), where
            for row in fit["rows"]:
                assert row["buttons"] == 2, f"{where}: row {row['id']} lacks Claim/Report"
                assert row["inside"], f"{where}: row {row['id']}'s buttons are off-screen"
                assert row["due"], f"{where}: row {row['id']}'s time left is off-screen"
                assert not row["dueCut"], f"{where}: row {row['id']}'s time left is cut"
                assert not row["statusCut"], f"{where}: row {row['id']}'s status is cut"
                assert not row["priorityCut"], f"{where}: row {row['id']}'s priority is cut"
                assert row["question"] >= 150, f"{where}: the question has {row['question']} px"
        await page.set_viewport_size({"width": 1280, "height": 800})


async def test_a_managers_worklist_fits_with_reassign_and_due_in_view(service, page: Page):
    """The manager's Reader column (who holds it, Reassign) and Due stay on screen too."""
    _, escalated = await seed(service)
    centre = await service.add_facility("Regional Imaging Centre 2", "regional", "REGION2")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("boss", "manager", centre)
    claimed = await service.client.post(
        f"/api/consultations/{escalated}/claim", headers=await service.login("dr_li")
    )
    assert claimed.status == 200, await claimed.text()
    base = str(service.client.make_url("/")).rstrip("/")
    await page.set_viewport_size({"width": 1280, "height": 800})
    await log_in(page, base, "boss")
    for lang in ("en", "zh_CN"):
        await page.goto(f"{base}/worklist?lang={lang}")
        await expect(page.locator("tr.worklist-row")).to_have_count(ROWS)
        held = page.locator(f'tr.worklist-row[data-consultation-id="{escalated}"] .claim-held')
        await expect(held).to_be_visible()
        await page.screenshot(path=str(SCREENSHOTS / f"worklist-manager-{lang}.png"))
        fit = await page.evaluate(FIT)
        assert fit["page"] <= 0 and fit["wrap"] <= 0, (lang, fit["page"], fit["wrap"])
        for row in fit["rows"]:
            assert row["buttons"] == 1 and row["inside"] and row["due"], (lang, row)


async def test_twenty_rows_fit_at_1440_by_900_with_the_question_readable(service, page: Page):
    """A dense list: at least 20 rows inside a 1440×900 window; the clinical question is cut with
    an ellipsis in the row and whole in its tooltip."""
    await seed(service)
    centre = await service.add_facility("Regional Imaging Centre 2", "regional", "REGION2")
    await service.add_user("dr_li", "specialist", centre)
    base = str(service.client.make_url("/")).rstrip("/")
    await page.set_viewport_size({"width": 1440, "height": 900})
    await log_in(page, base, "dr_li")
    for lang in ("en", "zh_CN"):
        await page.goto(f"{base}/worklist?lang={lang}")
        await expect(page.locator("tr.worklist-row")).to_have_count(ROWS)
        shown = await page.evaluate(
            """() => [...document.querySelectorAll('tr.worklist-row')]
                 .filter((row) => row.getBoundingClientRect().bottom <= window.innerHeight)
                 .length"""
        )
        assert shown >= 20, f"{lang}: only {shown} rows fit at 1440×900"
        question = page.locator("tr.worklist-row .clinical-question").first
        await expect(question).to_have_attribute("title", QUESTION)
        assert await question.evaluate(
            "(node) => getComputedStyle(node).textOverflow === 'ellipsis'"
            " && node.scrollWidth > node.clientWidth && node.clientWidth > 80"
        )


async def test_clinic_roles_see_no_specialist_controls(service, page: Page):
    """A clinician, a requester and a radiographer: no 'Assigned to me'/'My queues first', no
    alert buttons, no claim keys hint, no Claim or Report buttons."""
    clinic, _ = await seed(service)
    await service.add_user("dr_chen", "clinician", clinic)
    base = str(service.client.make_url("/")).rstrip("/")
    for username in ("dr_chen", "dr_zhao", "wang"):
        context = await page.context.browser.new_context()
        try:
            clinic_page = await context.new_page()
            await log_in(clinic_page, base, username, "/worklist")
            for lang in ("en", "zh_CN"):
                await clinic_page.goto(f"{base}/worklist?lang={lang}")
                await expect(clinic_page.locator("tr.worklist-row")).to_have_count(ROWS)
                for selector in (
                    "#filter-assigned",
                    "#filter-order",
                    "#alerts-enable",
                    "#alerts-mute",
                    ".keys-hint",
                    "#filter-queue",
                    "button.claim-claim",
                    "a.report-link",
                ):
                    assert await clinic_page.locator(selector).count() == 0, (username, selector)
        finally:
            await context.close()
