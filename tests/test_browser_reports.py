"""In a real browser against the real service and Orthanc: a manager writes a template, a specialist
claims, drafts from it and signs with the password; the originating clinic's clinician finds the
report in the portal, opens the signed PDF and acknowledges it; another clinic sees nothing; the
public verification page says VALID without a login. Also the framing headers (viewer only)."""

from __future__ import annotations

from playwright.async_api import Browser, BrowserContext, Page, expect

from service.demo.synthetic import StudySpec, make_study

from .browser import SCREENSHOTS
from .conftest import PASSWORD

STUDY = StudySpec("P-PORTAL", "李^四", "CT", "HEAD", instances=2, accession_number="ACC-P1")


async def log_in(context: BrowserContext, base: str, username: str, next_path: str) -> Page:
    page = await context.new_page()
    await page.goto(f"{base}/login?next={next_path}")
    await page.fill("#login-username", username)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url(f"{base}{next_path}")
    return page


async def seed(service) -> int:
    """Clinic A sent a head CT (through real DICOM C-STORE); returns its consultation id."""
    clinic_a = await service.add_facility("Qingshan Township Clinic", "township", "CLINIC_A")
    clinic_b = await service.add_facility("Clinic B", "township", "CLINIC_B")
    centre = await service.add_facility("County Imaging Centre", "regional", "CENTRE")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("boss", "manager", centre)
    await service.add_user("doc_a", "clinician", clinic_a)
    await service.add_user("doc_b", "clinician", clinic_b)
    await service.c_store(make_study(STUDY), "CLINIC_A")
    li = await service.login("dr_li")

    async def arrived():
        items = (await service.worklist(li))["items"]
        return items[0]["id"] if items else None

    return await service.wait_for(arrived)


async def create_template(context: BrowserContext, base: str) -> None:
    """The manager writes a CT head template with one macro on the admin page."""
    page = await log_in(context, base, "boss", "/report-templates")
    await page.fill("#template-name", "CT head normal")
    await page.fill("#template-modality", "ct")
    await page.fill("#template-body-part", "head")
    await page.fill("#template-findings", "No intracranial haemorrhage.")
    await page.fill("#template-impression", "Normal CT head.")
    await page.click("#template-add-macro")
    await page.fill("#macro-label-0", "Sinuses")
    await page.select_option("#macro-field-0", "findings")
    await page.fill("#macro-text-0", "Paranasal sinuses clear.")
    await page.click("#template-save")
    await expect(page.locator("#template-status")).to_have_text("Saved.")
    row = page.locator("#templates-rows tr", has_text="CT head normal")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Sinuses")


async def write_and_sign(context: BrowserContext, base: str, cid: int) -> str:
    """Claim, apply the template, use the macro, edit, sign: returns the verification code."""
    page = await log_in(context, base, "dr_li", "/worklist")
    row = page.locator(f'tr.worklist-row[data-consultation-id="{cid}"]')
    await row.locator("a.report-link").click()
    await page.wait_for_url(f"{base}/consultations/{cid}/report")
    await expect(page.locator("#report-claim-box")).to_be_visible()
    await expect(page.locator("#report-findings")).to_be_disabled()
    await page.click("#report-claim")
    await expect(page.locator("#report-editor")).to_have_attribute("data-state", "editing")
    await expect(page.locator("#report-claim-box")).to_be_hidden()

    await page.select_option("#report-template", label="CT head normal (CT Head)")
    await expect(page.locator("#report-findings")).to_have_value("No intracranial haemorrhage.")
    await page.click("button.report-macro")
    await expect(page.locator("#report-findings")).to_have_value(
        "No intracranial haemorrhage. Paranasal sinuses clear."
    )
    await page.fill("#report-recommendation", "No follow-up needed.")
    await page.check("#report-quality-good")
    await page.keyboard.press("Control+s")
    await expect(page.locator("#report-saved")).to_contain_text("Saved", timeout=5000)

    await page.click("#report-sign")
    dialog = page.locator("#sign-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("legal act")
    await page.fill("#sign-password", "not the password")
    await page.click("#sign-confirm")
    await expect(page.locator("#sign-error")).to_contain_text("403")
    await page.fill("#sign-password", PASSWORD)
    await page.click("#sign-confirm")
    code_node = page.locator("#report-code")
    await expect(code_node).not_to_be_empty(timeout=15000)
    await expect(page.locator("#report-editor")).to_have_attribute("data-state", "signed")
    await expect(page.locator("#report-findings")).to_be_disabled()
    await expect(page.locator("#report-correct")).to_be_visible()
    await expect(page.locator("#report-versions li")).to_have_count(1)
    href = await page.locator("#report-pdf-link").get_attribute("href")
    assert href == f"/api/consultations/{cid}/report/versions/1/pdf"
    await page.screenshot(path=str(SCREENSHOTS / "report-editor.png"), full_page=True)
    return (await code_node.text_content()) or ""


async def test_sign_in_the_editor_then_the_clinic_acknowledges_and_anyone_verifies(
    service, browser: Browser
):
    cid = await seed(service)
    base = str(service.client.make_url("/")).rstrip("/")
    contexts = [await browser.new_context() for _ in range(5)]
    manager, specialist, clinic_a, clinic_b, public = contexts
    try:
        await create_template(manager, base)
        code = await write_and_sign(specialist, base, cid)
        assert len(code) >= 5

        page = await log_in(clinic_a, base, "doc_a", "/portal")
        row = page.locator(f'tr.portal-row[data-consultation-id="{cid}"]')
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("dr_li")
        await expect(row).to_contain_text("CT / Head")  # the body part through the catalogue
        await expect(row).to_have_attribute("data-acknowledged", "no")
        pdf_href = await row.locator("a.portal-pdf").get_attribute("href")
        assert await row.locator("a.portal-pdf").get_attribute("target") == "_blank"
        pdf = await page.request.get(f"{base}{pdf_href}")
        assert pdf.status == 200
        assert pdf.headers["content-type"] == "application/pdf"
        assert (await pdf.body()).startswith(b"%PDF")
        await row.locator("button.portal-ack").click()
        await expect(row).to_have_attribute("data-acknowledged", "yes")
        await expect(row.locator(".badge-acknowledged")).to_have_text("Acknowledged")
        await expect(row.locator("button.portal-ack")).to_have_count(0)
        await page.screenshot(path=str(SCREENSHOTS / "portal.png"), full_page=True)
        await page.goto(f"{base}/consultations/{cid}")
        version = page.locator('#report-card-versions li[data-version="1"]')
        await expect(version).to_contain_text("dr_li")
        await expect(version.locator(".badge-acknowledged")).to_be_visible()
        await expect(version.locator("a")).to_have_attribute("href", pdf_href or "")
        await expect(page.locator("#report-card-ack")).to_be_hidden()

        other = await log_in(clinic_b, base, "doc_b", "/portal")
        await expect(other.locator("#portal-table")).to_have_attribute("data-loaded", "yes")
        await expect(other.locator("tr.portal-row")).to_have_count(0)
        await expect(other.locator("#portal-empty")).to_be_visible()
        hidden = await other.request.get(f"{base}/api/consultations/{cid}/report")
        assert hidden.status == 404
        hidden_pdf = await other.request.get(f"{base}{pdf_href}")
        assert hidden_pdf.status == 404

        anonymous = await public.new_page()
        await anonymous.goto(f"{base}/verify/{code}")
        await expect(anonymous.locator("#verify-verdict")).to_have_text("VALID")
        await expect(anonymous.locator("#verify-signer")).to_contain_text("dr_li")
        await expect(anonymous.locator(".main-nav")).to_have_count(0)
        await expect(anonymous.locator("body")).not_to_contain_text("P-PORTAL")
        await anonymous.screenshot(path=str(SCREENSHOTS / "verify.png"), full_page=True)
        await anonymous.goto(f"{base}/verify/NO-SUCH-CODE")
        await expect(anonymous.locator("#verify-verdict")).to_have_attribute(
            "data-valid", "unknown"
        )
    finally:
        for context in contexts:
            await context.close()


async def test_only_the_viewer_may_be_framed_and_only_by_this_origin(service):
    """The editor frames /viewer/{id}; every other answer still forbids framing."""
    centre = await service.add_facility("County Imaging Centre", "regional", "CENTRE")
    await service.add_user("dr_li", "specialist", centre)
    li = await service.login("dr_li")
    viewer = await service.client.get("/viewer/1", headers=li)
    assert viewer.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in viewer.headers["Content-Security-Policy"]
    assert "'none'" not in viewer.headers["Content-Security-Policy"].split("frame-ancestors")[1]
    framed = await (await service.client.get("/viewer/1?embed=1", headers=li)).text()
    assert 'id="viewer"' in framed
    assert "site-header" not in framed and "back-link" not in framed  # the editor has them
    assert "site-header" in await viewer.text()
    for path in ("/worklist", "/portal", "/consultations/1/report", "/api/worklist"):
        other = await service.client.get(path, headers=li)
        assert other.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in other.headers["Content-Security-Policy"], path


async def test_a_critical_finding_stays_red_in_the_portal_until_a_clinician_acknowledges_it(
    service, browser: Browser
):
    cid = await seed(service)
    li = await service.login("dr_li")
    claimed = await service.client.post(f"/api/consultations/{cid}/claim", headers=li)
    assert claimed.status == 200, await claimed.text()
    draft = {
        "findings": "Large acute subdural haematoma.",
        "impression": "Bleed.",
        "critical": True,
    }
    saved = await service.client.put(
        f"/api/consultations/{cid}/report/draft", headers=li, json=draft
    )
    assert saved.status == 200, await saved.text()
    signed = await service.client.post(
        f"/api/consultations/{cid}/report/sign", headers=li, json={"password": PASSWORD}
    )
    assert signed.status == 201, await signed.text()
    base = str(service.client.make_url("/")).rstrip("/")
    context = await browser.new_context()
    try:
        page = await log_in(context, base, "doc_a", "/portal")
        row = page.locator(f'tr.portal-row[data-consultation-id="{cid}"]')
        await expect(row.locator(".badge-critical")).to_have_text("CRITICAL")
        await expect(row).to_have_attribute("data-critical", "open")
        await row.locator("button.portal-ack-critical").click()
        await expect(row).to_have_attribute("data-critical", "no")
        await expect(row.locator(".badge-critical")).to_have_count(0)
        await expect(row.locator("button.portal-ack-critical")).to_have_count(0)
    finally:
        await context.close()
