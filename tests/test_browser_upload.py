"""In a real browser: a radiographer logs in, uploads a study, and sees it on the worklist."""

from __future__ import annotations

from playwright.async_api import Page, expect

from service.demo.synthetic import StudySpec, make_study, write_study

from .browser import SCREENSHOTS, log_in


async def test_radiographer_uploads_a_study_and_sees_it_on_the_worklist(
    service, page: Page, tmp_path
):
    """Login page → upload page (per-file results) → worklist row for the new study."""
    clinic = await service.add_facility("Dongxiang Township Health Centre", "township", "DX_DR")
    await service.add_user("wang", "radiographer", clinic)
    study = make_study(
        StudySpec(
            "DX0001",
            "张伟",
            "CT",
            "HEAD",
            instances=3,
            charset="GB18030",
            accession_number="DX24001",
        )
    )
    files = write_study(study, tmp_path / "study")
    base = str(service.client.make_url("/")).rstrip("/")

    await log_in(page, base, "wang", "/upload")

    await page.set_input_files("#file-input", [str(f) for f in files])
    items = page.locator("#upload-list > li.upload-item")
    await expect(items).to_have_count(3)
    for index in range(3):
        await expect(items.nth(index)).to_have_attribute("data-state", "accepted", timeout=15_000)

    await page.goto(f"{base}/worklist")
    row = page.locator(f'tr.worklist-row[data-study-uid="{study[0].StudyInstanceUID}"]')
    await expect(row).to_be_visible(timeout=20_000)
    await expect(row.locator(".patient-name")).to_have_text("张伟")
    await expect(row).to_have_attribute("data-status", "awaiting_request")
    await page.screenshot(path=str(tmp_path / "worklist.png"))


RESULT_WORDS = {
    "en": {"images": "3 images", "reason": "not a DICOM file", "open": "Open the consultation"},
    "zh_CN": {"images": "3 幅图像", "reason": "不是 DICOM 文件", "open": "打开会诊"},
}


async def test_the_upload_result_names_each_study_and_lists_rejected_files_first(
    service, page: Page, tmp_path
):
    """English and Chinese: a refused file heads the list with its reason; the study shows the
    patient's name and ID, its description and image count; after the request is sent the
    result names the patient and links to the consultation."""
    clinic = await service.add_facility("Dongxiang Township Health Centre", "township", "DX_DR")
    await service.add_user("wang", "radiographer", clinic)
    base = str(service.client.make_url("/")).rstrip("/")
    await log_in(page, base, "wang", "/upload")
    for number, (lang, words) in enumerate(RESULT_WORDS.items(), start=1):
        study = make_study(
            StudySpec(f"DX000{number}", "张伟", "CT", "HEAD", instances=3, charset="GB18030")
        )
        folder = tmp_path / lang
        files = write_study(study, folder)
        junk = folder / "notes.txt"
        junk.write_bytes(b"this is not DICOM" * 20)
        await page.goto(f"{base}/upload?lang={lang}")

        await page.set_input_files("#file-input", [str(f) for f in files] + [str(junk)])
        items = page.locator("#upload-list > li.upload-item")
        await expect(items).to_have_count(4)
        await expect(page.locator('#upload-list > li[data-state="accepted"]')).to_have_count(
            3, timeout=15_000
        )
        await expect(items.first).to_have_attribute("data-filename", "notes.txt")
        await expect(items.first).to_have_attribute("data-state", "rejected")
        await expect(items.first.locator(".file-result")).to_contain_text(words["reason"])

        entry = page.locator(
            f'#study-list > li.study-received[data-study-uid="{study[0].StudyInstanceUID}"]'
        )
        await expect(entry.locator(".study-patient")).to_have_text("张伟")
        await expect(entry.locator(".study-patient-id")).to_contain_text(f"DX000{number}")
        await expect(entry.locator(".study-description")).to_have_text("CT HEAD")
        await expect(entry.locator(".study-instances")).to_have_text(words["images"])
        await expect(entry.locator("a.study-consultation")).to_have_count(0)

        await page.fill("#request-question", "Fracture?")
        await page.click("#request-submit")
        result = page.locator(
            f'#request-results > li[data-study-uid="{study[0].StudyInstanceUID}"]'
        )
        await expect(result).to_have_attribute("data-state", "sent")
        await expect(result.locator(".request-study")).to_have_text(
            f"张伟 · DX000{number} · CT HEAD"
        )
        link = result.locator("a.request-consultation")
        await expect(link).to_have_text(words["open"])
        href = await link.get_attribute("href")
        assert href and href.startswith("/consultations/")
        await expect(entry.locator("a.study-consultation")).to_have_attribute("href", href)
        await page.screenshot(path=str(SCREENSHOTS / f"upload-result-{lang}.png"))
        await link.click()
        await page.wait_for_url(f"{base}{href}")
