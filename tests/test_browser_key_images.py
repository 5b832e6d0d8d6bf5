"""In a real browser against the real service and Orthanc (issue 19, 图文报告): the specialist
marks two key images with captions in the report editor's viewer (the toolbar button, then the
M key on the next image), sees both in the editor's list, signs; the clinic's clinician, reading
Chinese, opens the report's key images in the portal and sees both with their captions, and the
PDF the portal prints holds them."""

from __future__ import annotations

import contextlib
import subprocess

from playwright.async_api import Browser, expect
from playwright.async_api import Error as PlaywrightError

from .conftest import PASSWORD
from .test_browser_reports import log_in, seed


async def test_marked_key_images_reach_the_clinics_portal(service, browser: Browser, tmp_path):
    cid = await seed(service)
    base = str(service.client.make_url("/")).rstrip("/")
    li = await service.login("dr_li")
    claimed = await service.client.post(f"/api/consultations/{cid}/claim", headers=li)
    assert claimed.status == 200
    specialist = await browser.new_context(locale="en-GB")
    clinic = await browser.new_context(locale="zh-CN")
    try:
        page = await log_in(specialist, base, "dr_li", f"/consultations/{cid}/report")
        await expect(page.locator("#report-editor")).to_have_attribute("data-state", "editing")
        await expect(page.locator("#key-images")).to_contain_text("No key images yet")
        viewer = page.frame_locator("#report-viewer-frame")
        await expect(viewer.locator("#viewport-0")).to_have_attribute("data-state", "shown")

        await viewer.locator("#key-image-button").click()
        await viewer.locator("#key-image-caption").fill("Right frontal lesion")
        await viewer.locator("#key-image-caption").press("Enter")
        items = page.locator("#key-images li.key-image")
        await expect(items).to_have_count(1)
        await expect(viewer.locator("#viewer-message")).to_contain_text("Key image marked")

        canvas = viewer.locator("#viewport-0 canvas")
        await canvas.click()
        await canvas.press("ArrowDown")
        await expect(viewer.locator("#viewport-0")).to_have_attribute("data-slice", "2")
        await canvas.press("m")
        await viewer.locator("#key-image-caption").fill("第二幅")
        await viewer.locator("#key-image-save").click()
        await expect(items).to_have_count(2)
        await expect(items.nth(0)).to_contain_text("Right frontal lesion")
        await expect(items.nth(1)).to_contain_text("第二幅")
        await expect(page.locator("#key-images-over")).to_be_hidden()
        loaded = await items.locator("img").evaluate_all(
            "(imgs) => Promise.all(imgs.map((i) => i.decode().then(() => i.naturalWidth)))"
        )
        assert all(width > 0 for width in loaded)

        await page.fill("#report-findings", "Two lesions.")
        await page.fill("#report-impression", "See key images.")
        await page.click("#report-sign")
        await page.fill("#sign-password", PASSWORD)
        await page.click("#sign-confirm")
        await expect(page.locator("#report-code")).not_to_be_empty(timeout=15000)

        portal = await log_in(clinic, base, "doc_a", "/portal")
        row = portal.locator(f'tr.portal-row[data-consultation-id="{cid}"]')
        button = row.locator("button.portal-key-images-button")
        await expect(button).to_have_text("关键图像")
        await button.click()
        figures = portal.locator("tr.portal-figures li.key-image")
        await expect(figures).to_have_count(2)
        await expect(figures.nth(0)).to_contain_text("Right frontal lesion")
        await expect(figures.nth(1)).to_contain_text("第二幅")
        widths = await figures.locator("img").evaluate_all(
            "(imgs) => Promise.all(imgs.map((i) => i.decode().then(() => i.naturalWidth)))"
        )
        assert widths and all(width >= 1000 for width in widths)

        # Closed, then opened again while a live update draws the list again before the
        # figures arrive (CI once clicked just as one did): they go under the row shown now.
        await button.click()
        await expect(figures).to_have_count(0)

        drawn, held_requests = [], []

        async def list_drawn_again_meanwhile(route):
            drawn.append(route.request.url)
            await portal.evaluate(DRAW_THE_LIST_AGAIN)
            await route.continue_()

        async def held(route):  # no refresh of its own draws the figures in the meantime
            held_requests.append(route)

        await portal.route("**/api/portal/reports", held)
        await portal.route("**/figures", list_drawn_again_meanwhile)
        await button.click()
        await expect(figures).to_have_count(2)
        await expect(row.locator("button.portal-key-images-button")).to_have_attribute(
            "aria-expanded", "true"
        )
        await portal.unroute("**/figures")
        await portal.unroute("**/api/portal/reports")
        for route in held_requests:  # let them go (unroute may have done so already)
            with contextlib.suppress(PlaywrightError):
                await route.continue_()
        assert drawn, "the figures were never asked for"

        pdf = await portal.request.get(f"{base}/api/consultations/{cid}/report/versions/1/pdf")
        path = tmp_path / "printed.pdf"
        path.write_bytes(await pdf.body())
        assert large_images(path) == 2
    finally:
        await specialist.close()
        await clinic.close()


# What the portal's refresh does to the list (every row replaced by a new one), with copies.
DRAW_THE_LIST_AGAIN = """() => {
  const rows = document.getElementById('portal-rows');
  rows.replaceChildren(...[...rows.children].map((row) => row.cloneNode(true)));
}"""


def large_images(path) -> int:
    """How many images of at least 1000 px wide ``pdfimages`` lists (the QR code is smaller)."""
    listing = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    return sum(1 for line in listing if int(line.split()[3]) >= 1000)
