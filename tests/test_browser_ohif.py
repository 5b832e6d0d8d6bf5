"""In a real browser: OHIF v3, served by teleread at /ohif/ (tests/test_ohif.py for the files),
reads teleread's own DICOMweb with the user's session. A specialist at the regional centre sees
both facilities' studies in OHIF's study list, opens the CT from "Open in OHIF" (its slices are
drawn) and a JPEG-LS MR (its frames come as stored and are decoded by OHIF's WebAssembly codecs
in workers, under teleread's Content-Security-Policy); a clinic's clinician sees only their own
facility's study. The DICOMweb requests OHIF made are recorded and printed (method, path with the
UIDs named, Accept): that is what OHIF needs of teleread.

It fails (not skips) when OHIF is not installed: ``make test`` installs it first (``make ohif``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import aiohttp
from playwright.async_api import Page, Request, expect
from pydicom.uid import JPEGLSLossless

from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.settings import Settings

from .browser import SCREENSHOTS, log_in
from .conftest import PASSWORD

SLICES = 5
SCREENSHOT = SCREENSHOTS / "ohif.png"

# The drawn viewport: cornerstone paints into a 2D canvas; this counts its non-black pixels.
LIT_PIXELS = """() => {
  const canvas = document.querySelector('.cornerstone-canvas');
  if (!canvas || !canvas.width) return -1;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 30) lit++;
  return lit;
}"""
# The patient of each row of OHIF's study list (the table's first row holds the filters).
LISTED = """() => [...document.querySelectorAll('tbody tr')]
  .filter((row) => !row.querySelector('input'))
  .map((row) => row.innerText.split('\\n')[0].trim())
  .filter(Boolean)"""
# What the page's Content-Security-Policy refused (OHIF gets a policy of its own).
COLLECT_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.cspViolations.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}`);
});
"""
# How many images the viewport's stack holds (cornerstone3D's own API, exposed by OHIF).
STACK_SIZE = """() => {
  const [enabled] = window.cornerstone?.getEnabledElements?.() ?? [];
  return enabled ? enabled.viewport.getImageIds().length : 0;
}"""


async def seed(service) -> dict[str, str]:
    """A CT sent by a township clinic (C-STORE) and a JPEG-LS MR a county hospital stored by
    STOW-RS, a specialist at the centre and a clinician at the clinic; both studies received."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    dongxiang = await service.add_facility("Dongxiang Township Health Centre", "township", "DX_CT")
    linxia = await service.add_facility("Linxia County Hospital", "county", "LX_MR")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("dr_ma", "clinician", dongxiang)
    await service.add_user("rad_lx", "radiographer", linxia)
    ct = make_study(StudySpec("PID-CT", "WANG^XIAO", "CT", "HEAD", instances=SLICES, rows=128))
    await service.c_store(ct, "DX_CT")
    mr = make_study(StudySpec("PID-MR", "ZHAO^LEI", "MR", "KNEE", instances=2, rows=64))
    for dataset in mr:  # compressed frames: OHIF decodes them with its WebAssembly codecs
        dataset.compress(JPEGLSLossless)
    stow = aiohttp.MultipartWriter("related")
    for dataset in mr:
        stow.append(dataset_bytes(dataset), {"Content-Type": "application/dicom"})
    content_type = f'multipart/related; type="application/dicom"; boundary="{stow.boundary}"'
    stored = await service.client.post(
        "/dicom-web/studies",
        data=stow,
        headers={**await service.login("rad_lx"), "Content-Type": content_type},
    )
    assert stored.status == 200, await stored.text()
    headers = await service.login("dr_li")
    wanted = {ct[0].StudyInstanceUID: SLICES, mr[0].StudyInstanceUID: 2}

    async def received():
        items = (await service.worklist(headers))["items"]
        done = {i["study_instance_uid"]: i for i in items if wanted.get(i["study_instance_uid"])}
        ready = all(done.get(uid, {}).get("instances") == n for uid, n in wanted.items())
        return done if ready else None

    done = await service.wait_for(received, timeout=30)
    return {
        "ct": ct[0].StudyInstanceUID,
        "mr": mr[0].StudyInstanceUID,
        "ct_consultation": str(done[ct[0].StudyInstanceUID]["id"]),
    }


class DicomwebLog:
    """Every DICOMweb request a page made, with the UIDs replaced by what they name."""

    def __init__(self, uids: dict[str, str]) -> None:
        self.names = uids
        self.seen: list[tuple[str, str, str]] = []

    def record(self, request: Request) -> None:
        url = urlsplit(request.url)
        if not url.path.startswith("/dicom-web"):
            return
        path = url.path
        for name, uid in self.names.items():
            path = path.replace(uid, "{" + name + "}")
        path = re.sub(r"/series/[0-9.]+", "/series/{series}", path)
        path = re.sub(r"/instances/[0-9.]+", "/instances/{instance}", path)
        path = re.sub(r"/frames/[0-9,]+", "/frames/{n}", path)
        query = (
            "?" + "&".join(sorted({p.split("=")[0] for p in url.query.split("&")}))
            if url.query
            else ""
        )
        entry = (request.method, path + query, request.headers.get("accept", ""))
        if entry not in self.seen:
            self.seen.append(entry)

    def report(self) -> str:
        return "\n".join(f"{m} {p}  Accept: {a}" for m, p, a in self.seen)


async def study_list(page: Page, expected: int) -> list[str]:
    """The patients in OHIF's study list once it shows ``expected`` studies."""
    await page.wait_for_function(f"() => ({LISTED})().length === {expected}", timeout=15_000)
    return sorted(await page.evaluate(LISTED))


async def test_specialist_and_clinician_read_through_ohif(service, page: Page):
    """The study list is the user's scope; the CT opened from "Open in OHIF" is drawn with all
    its slices; every DICOMweb call OHIF made succeeded (and is printed)."""
    assert (Settings().ohif_files / "index.html").is_file(), "OHIF is not installed: make ohif"
    uids = await seed(service)
    base = str(service.client.make_url("/")).rstrip("/")
    log = DicomwebLog({"study": uids["ct"], "mr_study": uids["mr"]})
    page.on("request", log.record)
    failed: list[str] = []
    page.on(
        "response",
        lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    await page.add_init_script(COLLECT_CSP_VIOLATIONS)
    await page.set_viewport_size({"width": 1280, "height": 800})

    # Without a session /ohif/ is the login page, which comes back to /ohif/.
    await page.goto(f"{base}/ohif/")
    await expect(page).to_have_url(f"{base}/login?next=/ohif/")
    await page.fill("#login-username", "dr_li")
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url(f"{base}/ohif/")
    assert await study_list(page, 2) == ["WANG, XIAO", "ZHAO, LEI"]

    await page.goto(f"{base}/consultations/{uids['ct_consultation']}")
    await page.click("#open-ohif")
    await page.wait_for_url(f"{base}/ohif/viewer?StudyInstanceUIDs={uids['ct']}")
    await page.wait_for_function(f"() => ({STACK_SIZE})() === {SLICES}", timeout=20_000)
    await page.wait_for_function(f"() => ({LIT_PIXELS})() > 1000", timeout=20_000)
    await expect(page.get_by_text(f"(1/{SLICES})")).to_be_visible()  # OHIF's "I: n (1/5)"
    await page.screenshot(path=SCREENSHOT)
    assert await page.evaluate("window.cspViolations") == []
    # The MR's frames come as stored, JPEG-LS (transfer-syntax=*), decoded in the browser.
    await page.goto(f"{base}/ohif/viewer?StudyInstanceUIDs={uids['mr']}")
    await page.wait_for_function(f"() => ({STACK_SIZE})() === 2", timeout=20_000)
    await page.wait_for_function(f"() => ({LIT_PIXELS})() > 1000", timeout=20_000)
    assert await page.evaluate("window.cspViolations") == []

    clinic = await page.context.browser.new_context()
    try:
        other = await clinic.new_page()
        other.on("request", log.record)
        async with other.expect_response(lambda r: "/dicom-web/studies?" in r.url) as query:
            await log_in(other, base, "dr_ma", "/ohif/")
        found = await (await query.value).json()
        assert [s["00100020"]["Value"] for s in found] == [["PID-CT"]]  # the query, scoped
        assert await study_list(other, 1) == ["WANG, XIAO"]  # and what OHIF shows of it
    finally:
        await clinic.close()

    print("DICOMweb requests OHIF made:\n" + log.report())
    opened = await service.database.read(
        lambda db: db.execute(
            "SELECT username, patient_id, resource_id FROM audit_log WHERE action = ?"
            " AND detail LIKE '%/ohif/%'",
            ["consultation.view"],
        ).fetchall()
    )
    assert [tuple(r) for r in opened] == [("dr_li", "PID-CT", uids["ct_consultation"])]
    assert [f for f in failed if "/dicom-web" in f] == []
    made = {path.split("?")[0] for _, path, _ in log.seen}
    assert {
        "/dicom-web/studies",
        "/dicom-web/studies/{study}/series",
        "/dicom-web/studies/{study}/series/{series}/metadata",
        "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{n}",
    } <= made
