"""In a real browser: a county requester files a head CT for a patient the township scanned three
days ago; the request form shows the repeat-exam alert before anything is filed (where, when,
the impression, recognised), in English and in Chinese; she withdraws, nothing is filed, and the
dashboard counts the repeats avoided."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from playwright.async_api import Browser, Page, expect

from service.clock import utc_now

from .browser import SCREENSHOTS, log_in
from .conftest import suite_settings
from .repeat_world import link, prior_exam, recognise, rules_file
from .test_browser_accessibility import axe_violations, describe


@pytest.fixture
def app_orthanc() -> None:
    """No image is shown: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
def settings(tmp_path):
    return replace(suite_settings(tmp_path, None), worklist_rules=rules_file(tmp_path))


async def seed(service) -> None:
    county = await service.add_facility("County People's Hospital", "county", "COUNTY")
    township = await service.add_facility("Dongxiang Township", "township", "DONGXIANG")
    await service.add_user("dr_zhao", "requester", county)
    await service.add_user("dr_wu", "clinician", county)  # reads the county's dashboard
    signer = await service.add_user("dr_li", "specialist", township)
    db, now = service.database, utc_now()
    await db.write(
        prior_exam, township, "T-7", "CT.HEAD", now - timedelta(days=3), "DX-1",
        "No intracranial haemorrhage.", signer,
    )  # fmt: skip
    await db.write(recognise, township, "CT.HEAD", now - timedelta(days=90))
    await db.write(link, township, "T-7")
    await db.write(link, county, "C-9001")


async def file_head_ct(page: Page, base: str, accession: str) -> None:
    await page.goto(f"{base}/request")
    await page.fill("#consult-patient-id", "C-9001")
    await page.fill("#consult-study", accession)
    await page.fill("#consult-modality", "CT")
    await page.fill("#consult-body-part", "HEAD")
    await page.fill("#consult-question", "Headache after a fall")
    await page.click("#consult-submit")
    await expect(page.locator("#repeat-alert")).to_be_visible()


WORDS = {
    "en": {
        "title": "This exam was done recently",
        "recognised": "Recognised: this facility is on the recognition list for this exam",
        "impression": "Impression: No intracranial haemorrhage.",
        "need_reason": "State why the exam is needed again, or withdraw the request.",
        "withdrawn": "Request withdrawn: nothing was filed. The avoided repeat is recorded.",
    },
    "zh-CN": {
        "title": "近期已做过此项检查",
        "recognised": "互认：该机构此项检查在互认名单上",
        "impression": "印象：No intracranial haemorrhage.",
        "need_reason": "请说明需要再次检查的理由，或撤回申请。",
        "withdrawn": "申请已撤回：未提交任何申请。已记录此次避免的重复检查。",
    },
}


async def test_the_request_form_shows_the_alert_and_withdrawing_files_nothing(
    service, browser: Browser
):
    """In each language: the alert names the township, the impression and its recognition
    before anything is filed; proceeding needs a reason; withdrawing files nothing and is
    recorded. The county's dashboard then counts two repeats avoided for its CT head."""
    await seed(service)
    base = str(service.client.make_url("/")).rstrip("/")
    for n, (lang, words) in enumerate(WORDS.items(), start=1):
        context = await browser.new_context(locale=lang)
        page = await context.new_page()
        await log_in(page, base, "dr_zhao", "/request")
        await file_head_ct(page, base, f"CY-B{n}")
        alert = page.locator("#repeat-alert")
        await expect(page.locator("#repeat-alert-title")).to_have_text(words["title"])
        await expect(alert).to_contain_text("Dongxiang Township")
        await expect(alert).to_contain_text(words["impression"])
        await expect(alert).to_contain_text(words["recognised"])
        await page.click("#repeat-alert-proceed")  # no reason given
        await expect(page.locator("#repeat-alert-status")).to_have_text(words["need_reason"])
        await page.screenshot(path=SCREENSHOTS / f"repeat-alert-{lang}.png", full_page=True)
        assert describe(f"repeat alert [{lang}]", await axe_violations(page)) == []
        await page.click("#repeat-alert-withdraw")
        await expect(page.locator("#repeat-alert-status")).to_have_text(words["withdrawn"])
        assert page.url == f"{base}/request"
        await context.close()

    def read(db):
        filed = db.execute("SELECT COUNT(*) FROM consultations WHERE accession_number LIKE 'CY-B%'")
        decisions = db.execute("SELECT decision FROM repeat_alerts ORDER BY id")
        return filed.fetchone()[0], [r[0] for r in decisions]

    assert await service.database.read(read) == (0, ["withdrawn", "withdrawn"])
    context = await browser.new_context(locale="en")
    page = await context.new_page()
    await log_in(page, base, "dr_wu", "/dashboard")
    row = page.locator('#dashboard-repeats tr[data-exam="CT.HEAD"]')
    await expect(row.locator(".repeat-avoided")).to_have_text("2")
    await expect(row).to_contain_text("CT head")
    await context.close()
