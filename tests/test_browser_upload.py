"""In a real browser: a radiographer logs in, uploads a study, and sees it on the worklist."""

from __future__ import annotations

from playwright.async_api import Page, expect

from service.synthetic import StudySpec, make_study, write_study

from .browser import log_in


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
