"""In a real browser: a critical finding reaches the clinic in the reader's language, naming the
patient, the ID and the study with a link to the consultation; the clinician's landing page and
the portal list unacknowledged critical findings first. Notices stored before messages had codes
still show, with their patient named beside them."""

from __future__ import annotations

from playwright.async_api import Page, expect

from service.demo.synthetic import StudySpec, make_study
from service.storage.notifications import add_notifications

from .browser import SCREENSHOTS, log_in
from .conftest import PASSWORD

CRITICAL = StudySpec("P-CRIT", "李^四", "CT", "HEAD", instances=1, accession_number="ACC-C1")
ROUTINE = StudySpec("P-NORM", "王^五", "DX", "CHEST", instances=1, accession_number="ACC-N1")

WORDS = {
    "en": {
        "title": "Critical finding: 李 四, ID P-CRIT",
        "body": "CT HEAD: a critical finding was reported.",
        "heading": "Critical findings to acknowledge",
        "study": "CT Head",
        "open": "Open the report",
    },
    "zh_CN": {
        "title": "危急值：李 四，ID P-CRIT",
        "body": "CT HEAD：报告含危急值",
        "heading": "待确认的危急值",
        "study": "CT 头颅",
        "open": "打开报告",
    },
}


async def sign(service, headers: dict[str, str], cid: int, critical: bool) -> None:
    """Claim, draft and sign through the API, as the reading specialist."""
    for method, path, body, status in (
        ("post", "claim", None, 200),
        (
            "put",
            "report/draft",
            {"findings": "Finding.", "impression": "I.", "critical": critical},
            200,
        ),
        ("post", "report/sign", {"password": PASSWORD}, 201),
    ):
        call = getattr(service.client, method)
        response = await call(f"/api/consultations/{cid}/{path}", headers=headers, json=body)
        assert response.status == status, await response.text()


async def seed(service) -> dict[str, int]:
    """A township clinic's two studies read at the centre: the critical one signed first."""
    clinic = await service.add_facility("Qingshan Township Clinic", "township", "CLINIC_A")
    centre = await service.add_facility("County Imaging Centre", "regional", "CENTRE")
    await service.add_user("dr_li", "specialist", centre)
    doc = await service.add_user("doc_a", "clinician", clinic)
    li = await service.login("dr_li")
    ids = {}
    for spec in (CRITICAL, ROUTINE):
        await service.c_store(make_study(spec), "CLINIC_A")

        async def arrived(patient_id=spec.patient_id):
            items = (await service.worklist(li))["items"]
            return next((i["id"] for i in items if i["patient_id"] == patient_id), None)

        ids[spec.patient_id] = await service.wait_for(arrived)
        await sign(service, li, ids[spec.patient_id], critical=spec is CRITICAL)
    ids["doc"] = doc
    return ids


async def test_the_clinic_sees_a_critical_finding_in_its_language_first(service, page: Page):
    """English and Chinese: the bell names the patient, ID and study and links the consultation;
    the landing page lists the unacknowledged critical finding (not the routine report) and the
    portal puts it first although the routine report was signed later. Acknowledged, it goes."""
    ids = await seed(service)
    critical, routine = ids["P-CRIT"], ids["P-NORM"]
    # A notice stored before codes existed: shown as stored, its patient named beside it.
    old = {
        "user_id": ids["doc"],
        "kind": "report",
        "consultation_id": routine,
        "title": "New report for consultation",
        "created_at": "2020-01-01T00:00:00Z",
    }
    await service.database.write(add_notifications, [old])
    base = str(service.client.make_url("/")).rstrip("/")
    await log_in(page, base, "doc_a", "/worklist")
    await page.goto(f"{base}/")  # the clinician's landing page is the worklist
    await page.wait_for_url(f"{base}/worklist")

    for lang, words in WORDS.items():
        await page.goto(f"{base}/worklist?lang={lang}")
        box = page.locator("#critical-findings")
        await expect(box).to_be_visible()
        await expect(box.locator("h2")).to_have_text(words["heading"])
        entries = box.locator("li.critical-finding")
        await expect(entries).to_have_count(1)
        entry = entries.first
        await expect(entry).to_have_attribute("data-consultation-id", str(critical))
        await expect(entry.locator(".critical-patient")).to_have_text("李四")
        await expect(entry.locator(".critical-patient-id")).to_have_text("P-CRIT")
        await expect(entry.locator(".critical-study")).to_have_text(words["study"])
        link = entry.locator("a.critical-link")
        await expect(link).to_have_text(words["open"])
        await expect(link).to_have_attribute("href", f"/consultations/{critical}")
        # The panel sits above the worklist.
        panel_box = await box.bounding_box()
        table_box = await page.locator("#worklist").bounding_box()
        assert panel_box and table_box and panel_box["y"] < table_box["y"]

        await page.click("#bell-button")
        alert = page.locator("li.bell-item.bell-critical")
        await expect(alert).to_have_count(1)
        await expect(alert.locator(".bell-title")).to_have_text(words["title"])
        await expect(alert.locator(".bell-body")).to_contain_text(words["body"])
        await expect(alert.locator("a.bell-link")).to_have_attribute(
            "href", f"/consultations/{critical}"
        )
        stored = page.locator("li.bell-item", has_text="New report for consultation")
        await expect(stored.locator(".bell-patient")).to_have_text("王五 · P-NORM · DX CHEST")
        await page.screenshot(path=str(SCREENSHOTS / f"critical-finding-{lang}.png"))
        await page.keyboard.press("Escape")

        await page.goto(f"{base}/portal?lang={lang}")
        rows = page.locator("tr.portal-row")
        await expect(rows).to_have_count(2)
        await expect(rows.first).to_have_attribute("data-consultation-id", str(critical))
        await expect(rows.nth(1)).to_have_attribute("data-consultation-id", str(routine))

    acknowledged = await service.client.post(
        f"/api/consultations/{critical}/report/critical-acknowledgement",
        headers=await service.login("doc_a"),
    )
    assert acknowledged.status == 200, await acknowledged.text()
    await page.goto(f"{base}/worklist")
    await expect(page.locator("#critical-findings")).to_have_attribute("data-loaded", "yes")
    await expect(page.locator("#critical-findings")).to_be_hidden()
    await page.goto(f"{base}/portal")
    await expect(page.locator("tr.portal-row").first).to_have_attribute(
        "data-consultation-id", str(routine)
    )


async def test_notices_are_stored_as_a_code_and_shown_in_each_readers_language(service):
    """The same stored notice reads in English for one request and Chinese for another."""
    ids = await seed(service)
    headers = await service.login("doc_a")
    texts = {}
    for lang in ("en", "zh-CN"):
        response = await service.client.get(
            "/api/notifications", headers=headers | {"Accept-Language": lang}
        )
        [item] = [i for i in (await response.json())["items"] if i["kind"] == "critical_finding"]
        assert item["message"] == "critical_finding"
        assert (item["patient_name"], item["patient_id"]) == ("李^四", "P-CRIT")
        assert item["link"] == f"/consultations/{ids['P-CRIT']}"
        texts[lang] = item["title"]
    assert texts == {"en": WORDS["en"]["title"], "zh-CN": WORDS["zh_CN"]["title"]}
    unread = await service.client.get("/api/notifications/unread", headers=headers)
    assert (await unread.json()) == {"unread": 1}
