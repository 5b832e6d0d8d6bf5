"""The report editor at 1440×900, in English and Chinese, in real Chromium against the real
service and Orthanc: the clinical context (priority, due time counting down in the requesting
clinic's zone, facility, question, history) and the same patient's prior report beside the text;
the images and the Sign button on screen together; a sign dialog whose Cancel is readable; the
"Signed" confirmation in view after signing (issue 16, item 5)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, Locator, Page, expect

from service.i18n import catalogue_path, load_translations

from .browser import SCREENSHOTS, log_in
from .conftest import PASSWORD
from .test_report_priors import CURRENT, HISTORY, PRIOR_IMPRESSION, QUESTION, arrive, seed

WIDTH, HEIGHT = 1440, 900
ZONE = "Asia/Urumqi"  # the clinic's zone (UTC+6), unlike the reader's (Asia/Shanghai) and UTC
LOCALES = Path(__file__).resolve().parents[1] / "service" / "locale"
_ZH = load_translations(catalogue_path(LOCALES, "zh_CN"), "zh_CN").gettext


def text(lang: str, msgid: str) -> str:
    """The string the page shows for ``msgid`` in ``lang``."""
    return _ZH(msgid) if lang == "zh_CN" else msgid


def due_shown(lang: str, due_at: str) -> str:
    """What Intl's short date and time style gives for the due time in the clinic's zone."""
    local = datetime.fromisoformat(due_at).astimezone(ZoneInfo(ZONE))
    if lang == "zh_CN":
        return f"{local.year}/{local.month}/{local.day} {local:%H:%M}"
    hour = local.hour % 12 or 12
    return f"{local.month}/{local.day}/{local:%y}, {hour}:{local:%M} {local:%p}"


def time_left_candidates(lang: str, due_at: str) -> set[str]:
    """The countdown text now, or a minute earlier (the page may have ticked in between)."""
    left = datetime.fromisoformat(due_at) - datetime.now(UTC)
    minutes = int(left.total_seconds() // 60)
    found = set()
    for n in (minutes, minutes - 1, minutes + 1):
        template = text(lang, "{h} h {m} min left") if n >= 60 else text(lang, "{n} min left")
        found.add(template.format(h=n // 60, m=n % 60, n=n))
    return found


async def inside_viewport(locator: Locator) -> dict[str, float]:
    """The element's box (page coordinates, frames included), asserted wholly on screen."""
    box = await locator.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= WIDTH and box["y"] + box["height"] <= HEIGHT, box
    return box


CONTRAST = """
(node) => {
  const rgba = (s) => (s.match(/[\\d.]+/g) || []).map(Number).concat([1]).slice(0, 4);
  const over = (top, under) => top.slice(0, 3).map((c, i) => c * top[3] + under[i] * (1 - top[3]));
  let background = [255, 255, 255];
  const layers = [];
  for (let n = node; n; n = n.parentElement) layers.push(rgba(getComputedStyle(n).backgroundColor));
  for (const layer of layers.reverse()) background = over(layer, background);
  const color = over(rgba(getComputedStyle(node).color), background);
  const lum = (c) => {
    const [r, g, b] = c.map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [a, b] = [lum(color), lum(background)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}
"""


async def open_editor(browser: Browser, base: str, cid: int, lang: str) -> Page:
    context = await browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = await context.new_page()
    await log_in(page, base, "dr_li", "/worklist")
    await page.goto(f"{base}/consultations/{cid}/report?lang={lang}")
    await expect(page.locator("#report-editor")).to_have_attribute("data-state", "editing")
    return page


async def second_current(service, li: dict[str, str]) -> int:
    """Another urgent head CT of the same patient, asked about by clinic A like the first:
    the Chinese editor's consultation, so that one seeded consortium serves both languages."""
    spec = replace(CURRENT, accession_number="ACC-NOW-ZH")
    requested = await service.client.post(
        "/api/consultations",
        headers=await service.login("doc_a"),
        json={
            "accession_number": spec.accession_number,
            "patient_id": spec.patient_id,
            "modality": "CT",
            "priority": "urgent",
            "clinical_history": HISTORY,
            "clinical_question": QUESTION,
        },
    )
    assert requested.status == 201, await requested.text()
    return await arrive(service, spec, "CLINIC_A", li)


async def check_context(
    service, browser: Browser, li: dict[str, str], cid: int, prior: int, lang: str
) -> Page:
    """Claim ``cid`` and open its editor in ``lang``: context and the one true prior are shown;
    images and Sign fit the screen together; Cancel in the sign dialog is readable (WCAG AA,
    4.5:1). The page is left open, its report not yet signed."""
    claimed = await service.client.post(f"/api/consultations/{cid}/claim", headers=li)
    assert claimed.status == 200, await claimed.text()
    row = await (await service.client.get(f"/api/consultations/{cid}", headers=li)).json()
    base = str(service.client.make_url("/")).rstrip("/")
    page = await open_editor(browser, base, cid, lang)
    await expect(page.locator("#report-priority")).to_have_text(text(lang, "Urgent"))
    await expect(page.locator("#report-facility")).to_have_text("Qingshan Township Clinic")
    await expect(page.locator("#report-question")).to_have_text(QUESTION)
    await expect(page.locator("#report-history")).to_have_text(HISTORY)
    due = (await page.locator("#report-due").text_content() or "").replace("\u202f", " ")
    assert due_shown(lang, row["due_at"]) in due, due
    assert ZONE in due
    left = await page.locator("#report-due-left").text_content()
    assert left in time_left_candidates(lang, row["due_at"]), left

    priors = page.locator("#report-priors li.report-prior")
    await expect(priors).to_have_count(1)
    await expect(priors).to_have_attribute("data-consultation-id", str(prior))
    await expect(priors).to_contain_text(PRIOR_IMPRESSION)
    await expect(page.locator("#report-priors")).not_to_contain_text("pneumonia")
    await expect(page.locator("#report-priors")).not_to_contain_text("clinic B")

    canvas = page.frame_locator("#report-viewer-frame").locator("#viewport-0 canvas")
    await expect(canvas).to_be_visible()
    image = await inside_viewport(canvas)
    assert image["width"] >= 500 and image["height"] >= 500, image
    await inside_viewport(page.locator("#report-sign"))
    await page.screenshot(path=str(SCREENSHOTS / f"report-editor-context-{lang}.png"))

    await page.fill("#report-findings", "No intracranial haemorrhage. No fracture.")
    await page.fill("#report-impression", "Normal CT head.")
    await page.click("#report-sign")
    await expect(page.locator("#sign-dialog")).to_be_visible()
    cancel = page.locator("#sign-cancel")
    ratio = await cancel.evaluate(CONTRAST)
    assert ratio >= 4.5, f"Cancel contrast {ratio:.2f}:1"
    await cancel.click()
    await expect(page.locator("#sign-dialog")).to_be_hidden()
    return page


async def check_signing(page: Page, lang: str) -> None:
    """Sign on the open editor: the "Signed" confirmation and the images are in view after."""
    await page.click("#report-sign")
    await page.fill("#sign-password", PASSWORD)
    await page.click("#sign-confirm")
    signed = page.locator("#report-code-line")
    prefix = text(lang, "Signed. Verification code: {code}").split("{code}")[0].strip()
    await expect(signed).to_contain_text(prefix, timeout=15000)
    await expect(signed).to_be_in_viewport(ratio=1)  # the page scrolls it there once rendered
    await inside_viewport(signed)
    await inside_viewport(page.frame_locator("#report-viewer-frame").locator("#viewport-0 canvas"))
    await page.screenshot(path=str(SCREENSHOTS / f"report-editor-signed-{lang}.png"))


async def test_the_editor_shows_the_context_beside_images_and_sign_at_1440x900(
    service, browser: Browser
):
    """In English and in Chinese, each on a consultation of its own in one seeded consortium
    (about 10 s to build; it was built once per language): context and the one true prior are
    shown; images and Sign fit the screen together; Cancel in the sign dialog is readable (WCAG
    AA, 4.5:1); "Signed" is in view afterwards. Both editors are checked before either signs:
    a signed current report would be the other's second prior."""
    seeded = await seed(service, clinic_zone=ZONE)
    li = await service.login("dr_li")
    chinese = await second_current(service, li)
    pages: dict[str, Page] = {}
    try:
        for lang, cid in (("en", seeded.current), ("zh_CN", chinese)):
            pages[lang] = await check_context(service, browser, li, cid, seeded.prior, lang)
        for lang, page in pages.items():
            await check_signing(page, lang)
    finally:
        for page in pages.values():
            await page.context.close()
