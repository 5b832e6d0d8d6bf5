"""In a real browser: a clinic's requester is told a resident identity number is wrong before
anything is filed, and the regional centre's administrator links a likely match on
/admin/patients, in English and in Chinese, with no raw code shown and no serious axe finding.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from .browser import log_in
from .test_browser_accessibility import axe_violations, describe
from .test_browser_raw_codes import RAW_CODE
from .test_patient_identity_capture import resident_id, wrong_check

REASON = "same woman same card at both"


@pytest.fixture
def app_orthanc() -> None:
    """No image is involved: the app runs without Orthanc (conftest)."""
    return None


async def _file(service, headers, patient_id: str, name: str, **extra) -> None:
    body = {
        "accession_number": f"ACC-{patient_id}", "patient_id": patient_id, "patient_name": name,
        "patient_birth_date": "19630802", "patient_sex": "F", "clinical_question": "?",
    } | extra  # fmt: skip
    answer = await service.client.post("/api/consultations", json=body, headers=headers)
    assert answer.status == 201, await answer.text()


async def test_a_wrong_number_is_refused_on_the_form_and_an_admin_links_a_match(
    service, browser: Browser
):
    centre = await service.add_facility("Regional Centre", "regional", "CENTRE")
    county = await service.add_facility("County Hospital", "county", "COUNTY_CT")
    township = await service.add_facility("Township Clinic", "township", "TOWN_DR")
    await service.add_user("root", "admin", centre)
    await service.add_user("li", "clinician", county)
    await service.add_user("wu", "requester", township)
    number = resident_id("19630802", "F")
    await _file(
        service, await service.login("wu"), "TW-7", "上官^婉儿", patient_identity_number=number
    )
    await _file(service, await service.login("li"), "CY-7", "Shangguan^Wan'er")
    base = str(service.client.make_url("/")).rstrip("/")

    context = await browser.new_context(locale="en-GB", timezone_id="UTC")
    page = await context.new_page()
    await log_in(page, base, "wu", "/request")
    await page.fill("#consult-patient-id", "TW-8")
    await page.fill("#consult-identity-number", wrong_check(number))
    await page.fill("#consult-study", "ACC-TW-8")
    await page.fill("#consult-question", "?")
    await page.click("#consult-submit")
    await expect(page.locator("#consult-status")).to_contain_text("check character")
    assert page.url.endswith("/request")
    assert describe("/request", await axe_violations(page)) == []
    await context.close()

    for locale, linked in (("en-GB", "Linked."), ("zh-CN", "已关联。")):
        context = await browser.new_context(locale=locale, timezone_id="UTC")
        page = await context.new_page()
        await log_in(page, base, "root", "/admin/patients")
        await expect(page.locator("#patient-candidates[aria-busy=false]")).to_be_attached()
        await expect(page.locator("#patient-link-history[aria-busy=false]")).to_be_attached()
        text = await page.inner_text("body")
        if locale == "en-GB":
            row = page.locator("tr.candidate-row")
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text("same name in pinyin")
            await expect(row).to_contain_text(number)  # in full: the centre's administrator
            assert not RAW_CODE.findall(text), RAW_CODE.findall(text)
            assert describe("/admin/patients", await axe_violations(page)) == []
            await row.locator(".candidate-link").click()
            await expect(page.locator("#patients-error")).to_contain_text("Give a reason")
            await row.locator("input.decision-reason").fill(REASON)
            await row.locator(".candidate-link").click()
        else:
            data = {"root", "teleread", *REASON.split()}  # a user name, the product, a reason
            english = set(re.findall(r"\b[a-z]{3,}\b", text.replace(",", " "))) - data
            assert "上官婉儿" in text and not english, english
            assert describe("/admin/patients zh", await axe_violations(page)) == []
            await page.locator("tr.change-row input.decision-reason").first.fill("录入错误")
            await page.locator("tr.change-row .change-reverse").first.click()
            linked = "变更已撤销。"
        await expect(page.locator("#patients-status")).to_have_text(linked)
        await context.close()
    people = await service.database.read(
        lambda db: db.execute(
            "SELECT COUNT(DISTINCT person_id) FROM patient_identities WHERE patient_id LIKE '%-7'"
        ).fetchone()[0]
    )
    assert people == 2  # linked in English, the link reversed in Chinese
    filed = await service.database.read(
        lambda db: db.execute(
            "SELECT COUNT(*) FROM consultations WHERE patient_id = 'TW-8'"
        ).fetchone()[0]
    )
    assert filed == 0
