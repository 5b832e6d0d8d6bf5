"""A peer review in a real browser (issue 20 item 1): a manager picked Li's signed report; the
reviewer opens it from the peer-review queue (Li's name appears nowhere), claims it and scores
3b with a comment; Li finds the discrepancy, sees the link to correct the report and answers;
the centre's manager closes it with an outcome."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from service.demo.synthetic import StudySpec, make_study

from .browser import SCREENSHOTS, log_in
from .conftest import PASSWORD
from .test_browser_accessibility import axe_violations, describe

STUDY = StudySpec("P-PEER-UI", "周^九", "CR", "CHEST", accession_number="ACC-PUI")
READER_NAME = "李明华"


async def seed(service) -> int:
    """Clinic A sent a chest film; Li (李明华) signed it; the centre's manager picked it."""
    clinic = await service.add_facility("Qingshan Township Clinic", "township", "CLINIC_A")
    centre = await service.add_facility("County Imaging Centre", "regional", "CENTRE")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("dr_wu", "specialist", centre)
    await service.add_user("boss", "manager", centre)
    await service.add_user("doc_a", "clinician", clinic)
    await service.database.write(
        lambda db: db.execute(
            "UPDATE users SET display_name = ? WHERE username = 'dr_li'", [READER_NAME]
        )
    )
    await service.c_store(make_study(STUDY), "CLINIC_A")
    li = await service.login("dr_li")

    async def arrived():
        items = (await service.worklist(li))["items"]
        return items[0]["id"] if items else None

    cid = await service.wait_for(arrived)
    base, client = f"/api/consultations/{cid}", service.client
    assert (await client.post(f"{base}/claim", headers=li)).status == 200
    draft = {"findings": "两肺纹理清晰。", "impression": "胸部未见异常。"}
    assert (await client.put(f"{base}/report/draft", headers=li, json=draft)).status == 200
    signed = await client.post(f"{base}/report/sign", headers=li, json={"password": PASSWORD})
    assert signed.status == 201, await signed.text()
    picked = await client.post(f"{base}/peer-review", headers=await service.login("boss"))
    assert picked.status in (200, 201), await picked.text()
    return cid


async def test_a_review_runs_from_the_queue_to_the_discrepancys_closing(service, browser: Browser):
    cid = await seed(service)
    base = str(service.client.make_url("/")).rstrip("/")
    contexts = [await browser.new_context(locale="en-GB") for _ in range(3)]
    try:
        # The reviewer: queue → review (blind) → claim → 3b with a comment.
        page = await contexts[0].new_page()
        await log_in(page, base, "dr_wu", "/peer-reviews")
        await expect(page.locator("#peer-queue tbody tr")).to_have_count(1)
        found = describe("peer-review queue", await axe_violations(page))
        await page.locator("#peer-queue a.button").click()
        await expect(page.locator("#peer-impression")).to_have_text("胸部未见异常。")
        assert READER_NAME not in await page.content()
        found += describe("peer review", await axe_violations(page))
        await page.click("#peer-claim")
        await expect(page.locator("#peer-score-fields")).to_be_enabled()
        await page.check("input[name=score][value='3']")
        await page.check("input[name=significance][value='b']")
        await page.click("#peer-submit")
        await expect(page.locator("#peer-error")).to_contain_text("comment")
        await page.fill("#peer-comment", "右下肺结节漏诊。")
        await page.click("#peer-submit")
        await page.wait_for_url(f"{base}/peer-reviews")
        await expect(page.locator("#peer-queue-empty")).to_be_visible()
        assert READER_NAME not in await page.content()

        # The first reader: the discrepancy, the link to correct, the answer.
        mine = await contexts[1].new_page()
        await log_in(mine, base, "dr_li", "/peer-reviews")
        await mine.locator("#peer-discrepancies a.button").click()
        await expect(mine.locator("#discrepancy-score")).to_contain_text("3b")
        correct = mine.locator("#discrepancy-correct")
        await expect(correct).to_have_attribute("href", f"/consultations/{cid}/report")
        found += describe("discrepancy", await axe_violations(mine))
        await mine.fill("#discrepancy-answer-text", "同意，将更正报告。")
        await mine.click("#discrepancy-answer-form button[type=submit]")
        await expect(mine.locator("#discrepancy-state")).to_have_text("Answered")
        await expect(mine.locator("#discrepancy-answer")).to_have_text("同意，将更正报告。")

        # The centre's manager closes it.
        boss = await contexts[2].new_page()
        await log_in(boss, base, "boss", "/peer-reviews")
        await boss.locator("#peer-discrepancies a.button").click()
        await boss.fill("#discrepancy-outcome-text", "Discussed; the report is corrected.")
        await boss.click("#discrepancy-close-form button[type=submit]")
        await expect(boss.locator("#discrepancy-state")).to_have_text("Closed")
        await expect(boss.locator("#discrepancy-outcome")).to_have_text(
            "Discussed; the report is corrected."
        )
        await expect(boss.locator("#peer-figures")).to_have_count(0)
        await boss.goto(f"{base}/peer-reviews")
        await expect(boss.locator("#peer-figures tbody tr")).to_have_count(1)
        await boss.screenshot(path=str(SCREENSHOTS / "peer-review.png"), full_page=True)
        assert found == [], "\n".join(found)
    finally:
        for context in contexts:
            await context.close()
