"""The report editor's review buttons in a real browser (two-level sign-off, issue 19): a resident
signed a report; the attending claims it from the editor, returns it with a comment from the
keyboard; the resident sees the comment above the form and signs again; the attending edits the
text and co-signs with the password; the issued version names the reviewer."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from service.demo.synthetic import StudySpec, make_study

from .browser import SCREENSHOTS, log_in
from .conftest import PASSWORD

STUDY = StudySpec("P-REVIEW-UI", "孙^八", "CR", "CHEST", accession_number="ACC-RUI")


async def seed(service) -> tuple[int, dict[str, str]]:
    """Clinic A sent a chest film; resident Zhou wrote and signed it for review (by the API)."""
    clinic = await service.add_facility("Qingshan Township Clinic", "township", "CLINIC_A")
    centre = await service.add_facility("County Imaging Centre", "regional", "CENTRE")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("dr_zhou", "specialist", centre)
    await service.add_user("doc_a", "clinician", clinic)
    await service.database.write(
        lambda db: db.execute("UPDATE users SET grade = 'resident' WHERE username = 'dr_zhou'")
    )
    await service.c_store(make_study(STUDY), "CLINIC_A")
    zhou = await service.login("dr_zhou")

    async def arrived():
        items = (await service.worklist(zhou))["items"]
        return items[0]["id"] if items else None

    cid = await service.wait_for(arrived)
    await write_and_sign(
        service, zhou, cid, {"findings": "两肺纹理清晰。", "impression": "未见异常。"}
    )
    return cid, zhou


async def write_and_sign(service, headers, cid: int, draft: dict) -> None:
    base = f"/api/consultations/{cid}"
    if (await service.client.get(base, headers=headers)).status == 200:
        await service.client.post(f"{base}/claim", headers=headers)
    saved = await service.client.put(f"{base}/report/draft", headers=headers, json=draft)
    assert saved.status == 200, await saved.text()
    signed = await service.client.post(
        f"{base}/report/sign", headers=headers, json={"password": PASSWORD}
    )
    assert signed.status == 201, await signed.text()


async def test_a_reviewer_returns_then_edits_and_co_signs_in_the_editor(service, browser: Browser):
    cid, zhou = await seed(service)
    base = str(service.client.make_url("/")).rstrip("/")
    path = f"/consultations/{cid}/report"
    reviewer = await browser.new_context(locale="en-GB")
    writer = await browser.new_context(locale="en-GB")
    try:
        page = await reviewer.new_page()
        await log_in(page, base, "dr_li", path)
        await expect(page.locator("#report-claim-text")).to_contain_text("awaits review")
        await page.click("#report-claim")
        await expect(page.locator("#review-actions")).to_be_visible()
        await expect(page.locator("#report-review-text")).to_contain_text("dr_zhou")
        await expect(page.locator("#report-findings")).to_have_value("两肺纹理清晰。")

        # Return, from the keyboard.
        await page.focus("#review-return")
        await page.keyboard.press("Enter")
        await expect(page.locator("#return-dialog")).to_be_visible()
        await page.keyboard.type("请补充心影描述。")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")  # Return
        await expect(page.locator("#return-dialog")).to_be_hidden()
        await expect(page.locator("#report-review-box")).to_be_hidden()

        mine = await writer.new_page()
        await log_in(mine, base, "dr_zhou", path)
        await expect(mine.locator("#report-returned")).to_be_visible()
        await expect(mine.locator("#report-returned-comment")).to_have_text("请补充心影描述。")
        await expect(mine.locator("#report-editor")).to_have_attribute("data-state", "editing")
        await write_and_sign(
            service, zhou, cid, {"findings": "两肺纹理清晰，心影不大。", "impression": "未见异常。"}
        )

        # Edit and co-sign.
        await page.reload()
        await page.click("#report-claim")
        await expect(page.locator("#report-findings")).to_have_value("两肺纹理清晰，心影不大。")
        await page.fill("#report-impression", "胸部未见异常。")
        await page.click("#review-edit")
        await page.fill("#review-password", PASSWORD)
        await page.click("#review-confirm")
        # Co-signing renders and signs a PDF on the server: slow on a loaded 2-core machine.
        await expect(page.locator("#report-code-line")).to_contain_text(
            "Co-signed and issued", timeout=20_000
        )
        version = page.locator("#report-versions li").first
        await expect(version).to_contain_text("edited and reviewed by dr_li")
        await expect(page.locator("#report-review-history li")).to_have_count(2)
        await page.screenshot(path=SCREENSHOTS / "report-review.png", full_page=True)
    finally:
        await reviewer.close()
        await writer.close()
