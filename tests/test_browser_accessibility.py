"""In a real browser: axe-core (the copy bundled by the ``axe-playwright-python`` package, so it
works offline once the test set-up has installed it) finds no serious or critical violation on the
worklist, viewer, report editor, upload, portal and dashboard pages in English and Chinese, and
every visible control of those pages can be reached with the Tab key.

One service seeded once serves both tests: each role opens its own pages in its own browser
context, so the whole module costs one Orthanc start."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer
from axe_playwright_python.base import AXE_SCRIPT
from playwright.async_api import Browser, BrowserContext, Page, expect

from service.app import create_app
from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.settings import Settings

from .browser import log_in
from .conftest import CHANGES_POLL_SECONDS, PASSWORD, Service, start_orthanc

# Its module fixture starts a real Orthanc (start_orthanc).
pytestmark = pytest.mark.orthanc

STUDY = StudySpec("P-A11Y", "李^四", "CT", "HEAD", instances=2, accession_number="ACC-A11Y")
# A second patient's study, signed during the axe sweep so the portal has a report to show.
SIGNED = StudySpec("P-A11Y-2", "王^五", "CR", "CHEST", instances=1, accession_number="ACC-A11Y-2")
LANGUAGES = ("en", "zh_CN")
# Impacts the issue forbids; "moderate" and "minor" are reported by axe but not failed on.
FORBIDDEN = {"serious", "critical"}

RUN_AXE = """async () => {
  const result = await axe.run(document);
  const node = (n) => ({target: n.target.join(' '), summary: n.failureSummary});
  const out = result.violations.map(
    (v) => ({id: v.id, impact: v.impact, nodes: v.nodes.map(node)}));
  // axe leaves as "incomplete" a contrast it measured but would not judge, such as white text on
  // white (it might be hidden on purpose). Where it measured the ratio, and the ratio is too low,
  // the text is visible and unreadable: counted as the serious violation it is.
  for (const v of result.incomplete.filter((v) => v.id === 'color-contrast')) {
    const low = v.nodes.filter((n) => n.any.some((c) => c.data && c.data.contrastRatio
      && c.data.contrastRatio < parseFloat(c.data.expectedContrastRatio)));
    if (low.length) {
      out.push({id: 'color-contrast (measured)', impact: v.impact, nodes: low.map(node)});
    }
  }
  return out;
}"""


@dataclass(frozen=True)
class Seeded:
    """The running service and the consultation ids of the two studies a clinic sent."""

    service: Service
    consultation_id: int
    to_sign: int

    @property
    def base(self) -> str:
        return str(self.service.client.make_url("/")).rstrip("/")


@pytest.fixture(scope="module")
async def seeded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Seeded]:
    """One real Orthanc and service for every test here (an Orthanc start and a C-STORE each
    cost seconds), seeded once: tests only read, except the head CT's claim, which each test
    makes only if it is still open, and the CR's report, which the axe sweep signs."""
    directory = tmp_path_factory.mktemp("a11y")
    orthanc = await start_orthanc(directory / "orthanc", "TELEREAD")
    credentials = orthanc.config.credentials
    settings = Settings(
        data_dir=directory / "var",
        orthanc_url=orthanc.url,
        orthanc_username=credentials.username,
        orthanc_password=credentials.password,
        orthanc_dicom_port=orthanc.config.dicom_port,
        stable_age=1,
        changes_poll_interval=CHANGES_POLL_SECONDS,
    )
    app = create_app(settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        service = Service(client, app, orthanc)
        yield Seeded(service, *await seed(service))
    finally:
        await client.close()
        await orthanc.kill()


async def seed(service: Service) -> tuple[int, int]:
    """A clinic sends a head CT and a chest CR through real DICOM C-STORE; a specialist, manager,
    clinician and radiographer exist to open each page in its role. Returns the consultations'
    ids (head CT first)."""
    clinic = await service.add_facility("Qingshan Township Clinic", "township", "CLINIC_A")
    centre = await service.add_facility("County Imaging Centre", "regional", "CENTRE")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("boss", "manager", centre)
    await service.add_user("doc_a", "clinician", clinic)
    await service.add_user("wang", "radiographer", clinic)
    await service.c_store(make_study(STUDY), "CLINIC_A")
    await service.c_store(make_study(SIGNED), "CLINIC_A")
    li = await service.login("dr_li")

    async def arrived():
        items = (await service.worklist(li))["items"]
        return {item["patient_id"]: item["id"] for item in items} if len(items) == 2 else None

    ids = await service.wait_for(arrived)
    return ids[STUDY.patient_id], ids[SIGNED.patient_id]


async def sign(page: Page, base: str, cid: int) -> None:
    """Claim, write and sign the report of ``cid`` in the editor, as a reader does."""
    await open_editor(page, base, cid, "en")
    await page.fill("#report-findings", "Clear lungs. No pneumothorax.")
    await page.fill("#report-impression", "Normal chest radiograph.")
    await page.check("#report-quality-good")
    await page.click("#report-sign")
    await page.fill("#sign-password", PASSWORD)
    await page.click("#sign-confirm")
    await expect(page.locator("#report-code")).not_to_be_empty(timeout=15000)


async def open_editor(page: Page, base: str, cid: int, lang: str) -> None:
    """The report editor in ``lang``, claimed (by this reader, if nobody has yet) and editing."""
    await page.goto(f"{base}/consultations/{cid}/report?lang={lang}")
    editor = page.locator("#report-editor")
    await expect(editor).not_to_have_attribute("data-state", "loading")
    if await page.locator("#report-claim-box").is_visible():
        await page.click("#report-claim")
    await expect(editor).to_have_attribute("data-state", "editing")


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
    seeded: Seeded, browser: Browser
):
    """Worklist, viewer, report editor (before the claim, claimed, with the sign dialog open, and
    signed), upload (empty, and with a refused and an accepted file), portal and dashboard (with
    a signed report), and the login and consultation pages on the way, each in English and
    Chinese."""
    cid, base = seeded.consultation_id, seeded.base
    found: list[str] = []
    specialist, reader = await signed_in(browser, base, "dr_li")
    manager, boss = await signed_in(browser, base, "boss")
    clinic, doctor = await signed_in(browser, base, "doc_a")
    radiography, wang = await signed_in(browser, base, "wang")
    anonymous = await browser.new_context()
    try:
        visitor = await anonymous.new_page()
        for lang in LANGUAGES:
            await visitor.goto(f"{base}/login?lang={lang}")
            found += describe(f"login [{lang}]", await axe_violations(visitor))

            await reader.goto(f"{base}/worklist?lang={lang}")
            await expect(reader.locator("tr.worklist-row")).to_have_count(2)
            found += describe(f"worklist [{lang}]", await axe_violations(reader))

            await reader.goto(f"{base}/viewer/{cid}?lang={lang}")
            await expect(reader.locator("#slice-label")).to_have_text(
                "Im 1/2" if lang == "en" else "图像 1/2", timeout=10000
            )
            found += describe(f"viewer [{lang}]", await axe_violations(reader))

            await reader.goto(f"{base}/consultations/{cid}/report?lang={lang}")
            await expect(reader.locator("#report-editor")).not_to_have_attribute(
                "data-state", "loading"
            )
            if await reader.locator("#report-claim-box").is_visible():
                found += describe(f"report editor unclaimed [{lang}]", await axe_violations(reader))
                await reader.click("#report-claim")
            await expect(reader.locator("#report-editor")).to_have_attribute(
                "data-state", "editing"
            )
            found += describe(f"report editor [{lang}]", await axe_violations(reader))
            await reader.click("#report-sign")
            await expect(reader.locator("#sign-dialog")).to_be_visible()
            found += describe(f"sign dialog [{lang}]", await axe_violations(reader))

            await reader.goto(f"{base}/consultations/{cid}?lang={lang}")
            await expect(reader.locator("h1")).not_to_be_empty()
            found += describe(f"consultation [{lang}]", await axe_violations(reader))

        await sign(reader, base, seeded.to_sign)
        for lang in LANGUAGES:
            await reader.goto(f"{base}/consultations/{seeded.to_sign}/report?lang={lang}")
            await expect(reader.locator("#report-editor")).to_have_attribute("data-state", "signed")
            found += describe(f"report editor signed [{lang}]", await axe_violations(reader))

            await doctor.goto(f"{base}/portal?lang={lang}")
            await expect(doctor.locator("tr.portal-row")).to_have_count(1)
            await expect(doctor.locator("button.portal-ack")).to_be_visible()
            found += describe(f"portal [{lang}]", await axe_violations(doctor))

            await wang.goto(f"{base}/upload?lang={lang}")
            await expect(wang.locator("#file-input")).to_be_attached()
            found += describe(f"upload [{lang}]", await axe_violations(wang))
            study = make_study(StudySpec(f"P-UP-{lang}", "张^伟", "CT", "HEAD", instances=1))
            await wang.set_input_files(
                "#file-input",
                files=[
                    {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not DICOM"},
                    {
                        "name": "ct.dcm",
                        "mimeType": "application/dicom",
                        "buffer": dataset_bytes(study[0]),
                    },
                ],
            )
            await expect(wang.locator('#upload-list > li[data-state="accepted"]')).to_have_count(
                1, timeout=15_000
            )
            await expect(wang.locator("#study-list > li.study-received")).to_have_count(1)
            found += describe(f"upload result [{lang}]", await axe_violations(wang))

            await boss.goto(f"{base}/dashboard?lang={lang}")
            await expect(boss.locator("#chart-tat")).to_have_attribute("src", re.compile(r".+"))
            found += describe(f"dashboard [{lang}]", await axe_violations(boss))
    finally:
        for context in (specialist, manager, clinic, radiography, anonymous):
            await context.close()
    assert not found, "axe-core found serious/critical violations:\n" + "\n".join(found)


# A row with tabindex=-1 is focused by the worklist's arrow keys, not by Tab: not a control.
CONTROLS = "button, a[href], input, select, textarea, [tabindex]:not([tabindex='-1'])"

MARK_CONTROLS = """(selector) => {
  // Every control a user can see and use, in this frame, gets an id the focus log refers to; a
  // radio group counts as one control (Tab enters it once, arrows move within it). A live update
  // may draw a worklist row again between the marking and the Tab presses: a control focused
  // without its mark counts for the marked one it replaced (same tag, id, label and row).
  const prefix = window === window.top ? 'top' : 'frame';
  const log = (window.top.__focused = window.top.__focused || new Set());
  const key = (node) =>
    node.type === 'radio' && node.name ? `radio:${node.name}` : node.dataset.kbd;
  const labelOf = (node) => (node.getAttribute('aria-label') || node.textContent || node.id
    || node.name || node.tagName).trim().slice(0, 40);
  const signature = (node) => [node.tagName, node.id, labelOf(node),
    node.closest('[data-consultation-id]')?.dataset.consultationId || ''].join('|');
  const replaced = new Map();
  const marked = [];
  document.querySelectorAll(selector).forEach((node, index) => {
    const box = node.getBoundingClientRect();
    if (!box.width || !box.height || !node.checkVisibility({visibilityProperty: true})) return;
    if (node.disabled || node.closest('[inert], fieldset:disabled')) return;
    node.dataset.kbd = `${prefix}-${index}`;
    replaced.set(signature(node), [...(replaced.get(signature(node)) || []), key(node)]);
    marked.push({key: key(node), label: `${node.tagName.toLowerCase()} ${labelOf(node)}`});
  });
  document.addEventListener('focusin', (event) => {
    const node = event.target;
    if (!node.dataset) return;
    if (node.dataset.kbd) log.add(key(node));
    else (replaced.get(signature(node)) || []).forEach((was) => log.add(was));
  });
  return marked;
}"""


async def unreached_by_tab(page: Page, presses: int) -> list[str]:
    """The visible controls (in the page and its same-origin frames) that never receive focus
    while Tab is pressed ``presses`` times from the top of the page."""
    controls: dict[str, str] = {}
    for frame in page.frames:
        for control in await frame.evaluate(MARK_CONTROLS, CONTROLS):
            controls.setdefault(control["key"], control["label"])
    await page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    focused: set[str] = set()
    for press in range(1, presses + 1):
        await page.keyboard.press("Tab")
        if press % 10 == 0 or press == presses:  # stop as soon as every control had focus
            focused = set(await page.evaluate("() => [...(window.__focused || [])]"))
            if focused >= controls.keys():
                break
    assert len(controls) >= 10 and focused, f"too few controls found to test: {controls}"
    return sorted(f"{label} ({key})" for key, label in controls.items() if key not in focused)


async def test_every_visible_control_of_the_reading_pages_is_reached_by_tab(
    seeded: Seeded, browser: Browser
):
    """A reader who never touches the mouse can reach each button, link, field and menu of the
    worklist and of the report editor (the embedded viewer's toolbar included) in both languages,
    and of the viewer, upload, portal and dashboard pages."""
    cid, base = seeded.consultation_id, seeded.base
    contexts = []
    try:
        specialist, page = await signed_in(browser, base, "dr_li")
        contexts.append(specialist)
        for lang in LANGUAGES:
            await page.goto(f"{base}/worklist?lang={lang}")
            await expect(
                page.locator(f'tr.worklist-row[data-consultation-id="{cid}"]')
            ).to_have_count(1)
            missed = await unreached_by_tab(page, 120)
            assert not missed, f"worklist [{lang}]: never focused by Tab: {missed}"

            await open_editor(page, base, cid, lang)
            slice_label = page.frame_locator("#report-viewer-frame").locator("#slice-label")
            await expect(slice_label).to_have_text(
                "Im 1/2" if lang == "en" else "图像 1/2", timeout=10000
            )
            missed = await unreached_by_tab(page, 160)
            assert not missed, f"report editor [{lang}]: never focused by Tab: {missed}"

        await page.goto(f"{base}/viewer/{cid}?lang=en")
        await expect(page.locator("#slice-label")).to_have_text("Im 1/2", timeout=10000)
        missed = await unreached_by_tab(page, 120)
        assert not missed, f"viewer: never focused by Tab: {missed}"

        for username, path, ready in (
            ("wang", "/upload", "#file-input"),
            ("doc_a", "/portal", "#portal-updated:not(:empty)"),
            ("boss", "/dashboard", "#chart-tat[src]"),
        ):
            context, other = await signed_in(browser, base, username)
            contexts.append(context)
            await other.goto(f"{base}{path}?lang=en")
            await expect(other.locator(ready)).to_be_attached()
            missed = await unreached_by_tab(other, 120)
            assert not missed, f"{path}: never focused by Tab: {missed}"
    finally:
        for context in contexts:
            await context.close()
