"""In a real browser: axe-core (the copy bundled by the ``axe-playwright-python`` package, so it
works offline once the test set-up has installed it) finds no serious or critical violation on the
worklist, viewer, report editor, upload, portal and dashboard pages in English and Chinese, and
every visible control of the worklist and the report editor can be reached with the Tab key.

One service and one seeded study serve every page: each role opens its own pages in its own
browser context, so the whole sweep costs one Orthanc start."""

from __future__ import annotations

import re
from dataclasses import dataclass

from axe_playwright_python.base import AXE_SCRIPT
from playwright.async_api import Browser, BrowserContext, Page, expect

from service.synthetic import StudySpec, make_study

from .browser import log_in

STUDY = StudySpec("P-A11Y", "李^四", "CT", "HEAD", instances=2, accession_number="ACC-A11Y")
LANGUAGES = ("en", "zh_CN")
# Impacts the issue forbids; "moderate" and "minor" are reported by axe but not failed on.
FORBIDDEN = {"serious", "critical"}

RUN_AXE = """async () => {
  const result = await axe.run(document);
  const node = (n) => ({target: n.target.join(' '), summary: n.failureSummary});
  const out = result.violations.map((v) => ({id: v.id, impact: v.impact, nodes: v.nodes.map(node)}));
  // axe leaves as "incomplete" a contrast it measured but would not judge, such as white text on
  // white (it might be hidden on purpose). Where it measured the ratio, and the ratio is too low,
  // the text is visible and unreadable: counted as the serious violation it is.
  for (const v of result.incomplete.filter((v) => v.id === 'color-contrast')) {
    const low = v.nodes.filter((n) => n.any.some((c) => c.data && c.data.contrastRatio
      && c.data.contrastRatio < parseFloat(c.data.expectedContrastRatio)));
    if (low.length) out.push({id: 'color-contrast (measured)', impact: v.impact, nodes: low.map(node)});
  }
  return out;
}"""


@dataclass(frozen=True)
class Seeded:
    """What the pages are opened on: the consultation id of the one study a clinic sent."""

    consultation_id: int


async def seed(service) -> Seeded:
    """A clinic sends a head CT through real DICOM C-STORE; a specialist, manager, clinician and
    radiographer exist to open each page in its role."""
    clinic = await service.add_facility("Qingshan Township Clinic", "township", "CLINIC_A")
    centre = await service.add_facility("County Imaging Centre", "regional", "CENTRE")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("boss", "manager", centre)
    await service.add_user("doc_a", "clinician", clinic)
    await service.add_user("wang", "radiographer", clinic)
    await service.c_store(make_study(STUDY), "CLINIC_A")
    li = await service.login("dr_li")

    async def arrived():
        items = (await service.worklist(li))["items"]
        return items[0]["id"] if items else None

    return Seeded(await service.wait_for(arrived))


async def signed_in(browser: Browser, base: str, username: str) -> tuple[BrowserContext, Page]:
    """A fresh context logged in as ``username``, at 1440×900."""
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    await log_in(page, base, username)
    return context, page


async def axe_violations(page: Page) -> list[dict]:
    """axe-core's violations on the page as it stands. Evaluated rather than added as a <script>
    tag, which the pages' strict CSP (script-src 'self') would block."""
    for frame in page.frames:  # axe tests an iframe (the editor's viewer) only from inside it
        if not await frame.evaluate("() => typeof window.axe !== 'undefined'"):
            await frame.evaluate(AXE_SCRIPT)
    return await page.evaluate(RUN_AXE)


def describe(where: str, violations: list[dict]) -> list[str]:
    """One line per serious or critical violation: page, rule, impact and each node's selector."""
    lines = []
    for violation in violations:
        if violation["impact"] not in FORBIDDEN:
            continue
        for node in violation["nodes"]:
            lines.append(
                f"{where}: {violation['id']} ({violation['impact']}) at {node['target']}: "
                f"{node['summary']}"
            )
    return lines


async def test_axe_finds_no_serious_or_critical_violation_on_the_reading_pages(
    service, browser: Browser
):
    """Worklist, viewer, report editor (claimed, and with the sign dialog open), upload (empty and
    after a rejected file), portal and dashboard, each in English and Chinese."""
    seeded = await seed(service)
    cid = seeded.consultation_id
    base = str(service.client.make_url("/")).rstrip("/")
    found: list[str] = []
    specialist, reader = await signed_in(browser, base, "dr_li")
    manager, boss = await signed_in(browser, base, "boss")
    clinic, doctor = await signed_in(browser, base, "doc_a")
    radiography, wang = await signed_in(browser, base, "wang")
    try:
        for lang in LANGUAGES:
            await reader.goto(f"{base}/worklist?lang={lang}")
            await expect(reader.locator("tr.worklist-row")).to_have_count(1)
            found += describe(f"worklist [{lang}]", await axe_violations(reader))

            await reader.goto(f"{base}/viewer/{cid}?lang={lang}")
            await expect(reader.locator("#slice-label")).to_have_text(
                "Im 1/2" if lang == "en" else "图像 1/2", timeout=10000
            )
            found += describe(f"viewer [{lang}]", await axe_violations(reader))

            await reader.goto(f"{base}/consultations/{cid}/report?lang={lang}")
            editor = reader.locator("#report-editor")
            if lang == "en":
                await expect(reader.locator("#report-claim-box")).to_be_visible()
                found += describe(f"report editor unclaimed [{lang}]", await axe_violations(reader))
                await reader.click("#report-claim")
            await expect(editor).to_have_attribute("data-state", "editing")
            found += describe(f"report editor [{lang}]", await axe_violations(reader))
            await reader.click("#report-sign")
            await expect(reader.locator("#sign-dialog")).to_be_visible()
            found += describe(f"sign dialog [{lang}]", await axe_violations(reader))

            await wang.goto(f"{base}/upload?lang={lang}")
            await expect(wang.locator("#file-input")).to_be_attached()
            found += describe(f"upload [{lang}]", await axe_violations(wang))
            await wang.set_input_files(
                "#file-input",
                files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not DICOM"}],
            )
            await expect(wang.locator("#upload-summary")).not_to_be_empty(timeout=10000)
            found += describe(f"upload result [{lang}]", await axe_violations(wang))

            await doctor.goto(f"{base}/portal?lang={lang}")
            await expect(doctor.locator("#portal-updated")).not_to_be_empty()
            found += describe(f"portal [{lang}]", await axe_violations(doctor))

            await boss.goto(f"{base}/dashboard?lang={lang}")
            await expect(boss.locator("#chart-tat")).to_have_attribute("src", re.compile(r".+"))
            found += describe(f"dashboard [{lang}]", await axe_violations(boss))
    finally:
        for context in (specialist, manager, clinic, radiography):
            await context.close()
    assert not found, "axe-core found serious/critical violations:\n" + "\n".join(found)
