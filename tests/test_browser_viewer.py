"""In a real browser: a specialist opens a study from the worklist in the viewer, scrolls the
stack, windows 16-bit data on the canvas, measures a known distance on a synthetic phantom and
hangs a prior of the same patient from another facility beside it."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from playwright.async_api import Page, expect

from service.demo.synthetic import StudySpec, make_study
from service.storage.patients import LocalPatient

from .browser import SCREENSHOTS, log_in
from .linking import link_identities

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = SCREENSHOTS / "viewer.png"
ROWS = 256
SPACING_MM = 240.0 / ROWS  # synthetic CT HEAD: a 240 mm field of view over the matrix
SLICES = 10

# Reads a small checksum of the canvas pixels, to tell whether windowing changed them.
CANVAS_SUM = """(selector) => {
  const canvas = document.querySelector(selector);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) sum += data[i];
  return sum;
}"""


async def seed_studies(service) -> dict:
    """Current CT head (clinic) and a prior of the same patient (county hospital), both stored
    in the real Orthanc by C-STORE, the two facilities' identities linked; a regional specialist
    who may read both."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    township = await service.add_facility("Dongxiang Township Health Centre", "township", "DX_CT")
    county = await service.add_facility("Linxia County Hospital", "county", "LX_CT")
    await service.add_user("dr_li", "specialist", centre)
    # One person at both facilities: the index links them (a shared Patient ID alone would not).
    await link_identities(
        service, "H1234567890", LocalPatient(township, "PID-VIEW"), LocalPatient(county, "PID-VIEW")
    )
    current = make_study(
        StudySpec(
            "PID-VIEW",
            "WANG^XIAO",
            "CT",
            "HEAD",
            instances=SLICES,
            rows=ROWS,
            accession_number="ACC-NOW",
            patient_sex="M",
            patient_birth_date="19600101",
        )
    )
    prior = make_study(
        StudySpec(
            "PID-VIEW",
            "WANG^XIAO",
            "CT",
            "HEAD",
            instances=3,
            rows=ROWS,
            accession_number="ACC-OLD",
            study_description="CT HEAD PRIOR",
            study_datetime=datetime(2025, 1, 1, 9, 30),
            patient_sex="M",
        )
    )
    await service.c_store(prior, "LX_CT")
    await service.c_store(current, "DX_CT")
    headers = await service.login("dr_li")
    wanted = {current[0].StudyInstanceUID: "current", prior[0].StudyInstanceUID: "prior"}

    async def both_received():
        items = (await service.worklist(headers))["items"]
        found = {
            wanted[i["study_instance_uid"]]: i
            for i in items
            if i["study_instance_uid"] in wanted
            and i["instances"] == (SLICES if wanted[i["study_instance_uid"]] == "current" else 3)
        }
        return found if len(found) == 2 else None

    found = await service.wait_for(both_received, timeout=30)
    return {
        "current_id": found["current"]["id"],
        "prior_id": found["prior"]["id"],
        "prior_uid": prior[0].StudyInstanceUID,
    }


async def canvas_point(page: Page, selector: str, x: float, y: float) -> tuple[float, float]:
    """Screen position of image pixel (x, y) in a fitted, unrotated square image: the viewer
    must centre the image and scale it to the smaller side of the canvas."""
    box = await page.locator(selector).bounding_box()
    assert box is not None
    scale = min(box["width"], box["height"]) / ROWS
    left = box["x"] + box["width"] / 2 - ROWS / 2 * scale
    top = box["y"] + box["height"] / 2 - ROWS / 2 * scale
    return left + x * scale, top + y * scale


async def test_specialist_reads_a_study_in_the_viewer(service, page: Page):
    """Worklist -> viewer; slice 6 by wheel and keys; W/L drag repaints the canvas; a 200-pixel
    line measures 200 x Pixel Spacing mm (within 1 %); the prior hangs beside the current."""
    seeded = await seed_studies(service)
    base = str(service.client.make_url("/")).rstrip("/")
    await page.set_viewport_size({"width": 1400, "height": 860})
    await log_in(page, base, "dr_li")

    row = page.locator(f'tr.worklist-row[data-consultation-id="{seeded["current_id"]}"]')
    await row.locator("a.open-viewer").click()
    await page.wait_for_url(f"{base}/viewer/{seeded['current_id']}")
    await expect(page.locator("#slice-label")).to_have_text(f"Im 1/{SLICES}", timeout=10000)
    await expect(page.locator("#viewport-0 .overlay-patient")).to_have_text("WANG XIAO")
    await expect(page.locator("#wl-label")).to_have_text("W 400 L 40")

    canvas = "#viewport-0 canvas"
    cx, cy = await canvas_point(page, canvas, ROWS / 2, ROWS / 2)
    await page.mouse.move(cx, cy)
    for _ in range(3):
        await page.mouse.wheel(0, 100)
        await page.wait_for_timeout(50)
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    await expect(page.locator("#slice-label")).to_have_text(f"Im 6/{SLICES}")
    await expect(page.locator("#viewport-0")).to_have_attribute("data-slice", "6")
    # its pixels, not the loading state, before the window is dragged over them
    await expect(page.locator("#viewport-0")).to_have_attribute("data-state", "shown")

    before = await page.evaluate(CANVAS_SUM, canvas)
    await page.mouse.down()
    await page.mouse.move(cx - 120, cy - 60, steps=6)
    await page.mouse.up()
    label = await page.locator("#wl-label").text_content()
    width, level = map(int, re.fullmatch(r"W (\d+) L (-?\d+)", label or "").groups())
    assert width < 400 and level < 40, label
    await page.wait_for_timeout(100)
    assert await page.evaluate(CANVAS_SUM, canvas) != before
    await page.keyboard.press("1")
    await expect(page.locator("#wl-label")).to_have_text("W 80 L 40")

    await page.click('[data-tool="length"]')
    x0, y0 = await canvas_point(page, canvas, 28, ROWS / 2)
    x1, y1 = await canvas_point(page, canvas, 228, ROWS / 2)
    await page.mouse.move(x0, y0)
    await page.mouse.down()
    await page.mouse.move(x1, y1, steps=8)
    await page.mouse.up()
    measure = page.locator("#measure-label")
    await expect(measure).to_have_text(re.compile(r"^Length [\d.]+ mm$"))
    measured = float(await measure.get_attribute("data-value") or "nan")
    expected = 200 * SPACING_MM
    assert abs(measured - expected) / expected < 0.01, (measured, expected)

    await page.select_option("#prior-select", str(seeded["prior_id"]))
    prior = page.locator("#viewport-1")
    await expect(prior).to_be_visible()
    await expect(prior).to_have_attribute("data-study-uid", seeded["prior_uid"])
    # Synced with the current Im 6/10 (another frame of reference: by place in the stack).
    await expect(page.locator("#prior-slice-label")).to_have_text("Im 2/3", timeout=10000)
    await expect(prior.locator(".overlay-study-date")).to_contain_text("2025-01-01")
    await expect(prior.locator(".overlay-facility")).to_have_text("Linxia County Hospital")
    await expect(page.locator("#slice-label")).to_have_text(f"Im 6/{SLICES}")

    await page.keyboard.press("t")
    await expect(page.locator("#tag-panel")).to_be_visible()
    await expect(page.locator("#tag-rows")).to_contain_text("PID-VIEW", timeout=10000)
    # Named from the service's PS3.6 dictionary, not only from the page's short list.
    await expect(page.locator("#tag-rows")).to_contain_text("AcquisitionDate")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT))


async def test_viewer_speaks_chinese(service, page: Page):
    """With zh_CN chosen the overlay labels and toolbar are Chinese."""
    seeded = await seed_studies(service)
    base = str(service.client.make_url("/")).rstrip("/")
    path = f"/viewer/{seeded['current_id']}"
    await log_in(page, base, "dr_li", next_path=path)
    await page.goto(f"{base}{path}?lang=zh_CN")
    await expect(page.locator("#slice-label")).to_have_text(f"图像 1/{SLICES}", timeout=10000)
    await expect(page.locator("#wl-label")).to_have_text("窗宽 400 窗位 40")
    await expect(page.locator('[data-tool="length"]')).to_contain_text("长度")


def test_viewer_static_files_are_self_contained_and_safe() -> None:
    """The viewer's modules load nothing from another origin and never build HTML from strings."""
    files = sorted((ROOT / "viewer" / "static").glob("*.*"))
    assert {f.name for f in files} >= {"viewer.js", "viewer.css"}
    for path in files:
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://", source), path.name
        for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert unsafe not in source, (path.name, unsafe)
        if path.suffix == ".css":
            assert "@import" not in source and "url(" not in source, path.name
