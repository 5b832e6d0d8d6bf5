"""Administration, audit and account pages: rendered (both languages, CSP-clean) and used in a
real browser (headless Debian Chromium through pytest-playwright-asyncio)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from service.i18n import SUPPORTED_LOCALES, PageRenderer
from service.intake.intake import ConsultationRequest, file_request
from service.intake.patient_merges import PatientIdentity, merge_patients
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

from .browser import SCREENSHOTS
from .conftest import PASSWORD
from .test_i18n import (
    LOCALE_DIR,
    STATIC,
    TEMPLATES,
    csp_problems,
    json_block,
    make_user,
    message_keys,
)

ROOT = Path(__file__).resolve().parents[1]

PAGES = {
    "admin_users.html": ("admin_users.js", "admin"),
    "admin_facilities.html": ("admin_facilities.js", "admin"),
    "audit.html": ("audit.js", "manager"),
    "account.html": ("account.js", "clinician"),
}
MORE_SCRIPTS = {"admin_facilities.html": ("admin_patient_merges.js",)}
"""Scripts a page loads besides its own, whose messages it must carry too."""


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


def page_context(template: str, role: str) -> dict[str, object]:
    """What pages.py passes to each template."""
    return {
        "user": make_user(role, id=7, display_name="王芳", facility_kind="regional"),
        "csrf_token": "tok-123",
        "page": template.removesuffix(".html"),
        "min_password_length": 8,
        "actions": ["auth.login", "user.create"],
        "login_failures": {
            "window_minutes": 15,
            "accounts": [
                {
                    "username": "dr.li",
                    "exists": True,
                    "failures": 7,
                    "last_failure_at": "2026-12-02T08:00:01.000000Z",
                    "delayed_until": "2026-12-02T08:00:03.000000Z",
                    "addresses": [
                        {
                            "client_ip": "198.51.100.66",
                            "failures": 7,
                            "last_failure_at": "2026-12-02T08:00:01.000000Z",
                            "limited": True,
                        }
                    ],
                }
            ],
            "addresses": [],
        },
    }


@pytest.fixture(scope="module")
def renderer() -> PageRenderer:
    return PageRenderer(TEMPLATES, LOCALE_DIR)


def base_url(service) -> str:
    return str(service.client.make_url("/")).rstrip("/")


async def log_in(page: Page, base: str, username: str, next_path: str = "/") -> None:
    await page.goto(f"{base}/login?next={next_path}")
    await page.fill("#login-username", username)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")


# ---- rendering (no browser) ------------------------------------------------------------


@pytest.mark.parametrize("template", sorted(PAGES))
@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_pages_render_csp_clean_in_every_language(renderer, template, locale):
    """No inline code, one strings block, the page's own script and nothing foreign."""
    html = renderer.render(template, locale, **page_context(template, PAGES[template][1]))
    assert csp_problems(html) == []
    assert html.count('id="i18n-strings"') == 1
    assert f'src="/static/{PAGES[template][0]}"' in html


@pytest.mark.parametrize("template", sorted(PAGES))
def test_page_scripts_find_every_message_they_use(renderer, template):
    """Every message key (t("key"), errorText's), plural("key") and label("table", ...) of the
    script exists in Chinese."""
    script, role = PAGES[template]
    html = renderer.render(template, "zh_CN", **page_context(template, role))
    strings = json.loads(json_block(html))
    available = {**strings["common"], **strings.get("page", {})}
    for name in (script, *MORE_SCRIPTS.get(template, ())):
        source = (STATIC / name).read_text(encoding="utf-8")
        assert message_keys(source) - set(available) == set(), name
        for key in re.findall(r'\bplural\(\s*"(\w+)"', source):
            assert key in strings.get("plurals", {}), key
        for table in re.findall(r'\blabel\(\s*"(\w+)"', source):
            assert table in strings, table


@pytest.mark.parametrize(
    ("role", "links"),
    [
        ("admin", {"/admin/users", "/admin/facilities", "/audit", "/account"}),
        ("manager", {"/audit", "/account"}),
        ("radiographer", {"/account"}),
        ("specialist", {"/account"}),
    ],
)
def test_navigation_offers_each_role_its_pages(renderer, role, links):
    """Users and Facilities for admins, Audit for managers and admins, Account for everyone."""
    html = renderer.render("account.html", "en", **page_context("account.html", role))
    offered = {
        href
        for href in re.findall(r'<a href="(/[a-z/]*)"', html)
        if href in {"/admin/users", "/admin/facilities", "/audit", "/account"}
    }
    assert offered == links


def test_account_page_in_chinese(renderer):
    """Labels and the user's role are translated; the user's own data is shown as is."""
    html = renderer.render("account.html", "zh_CN", **page_context("account.html", "clinician"))
    for text in ("修改密码", "当前密码", "所属机构", "临床医师", "王芳", "我的账号"):
        assert text in html


# ---- in the browser ----------------------------------------------------------------------


def merge_from_the_county(db, facility_id: int) -> int:
    """A request filed under P-OLD, merged into P-NEW as an ADT^A40 would; the merge's id."""
    request = ConsultationRequest(Priority.ROUTINE, accession_number="A-1", patient_id="P-OLD")
    now = datetime.now(UTC)
    file_request(db, request, facility_id=facility_id, user_id=None, now=now, sla=SlaPolicy())
    return merge_patients(
        db, facility_id=facility_id, surviving=PatientIdentity("P-NEW"),
        prior=PatientIdentity("P-OLD"), source="HL7 ADT^A40 COUNTY_HIS MSG1",
        actor_user_id=None, now=now,
    ).id  # fmt: skip


async def test_admin_creates_a_facility_and_a_radiographer_then_disables_them(service, page: Page):
    """Facilities page → new clinic, and the patient merge a county HIS ordered → reversed;
    Users page → new radiographer (who can log in) → disabled: the table says so and the
    radiographer's open session is gone."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION_PACS")
    await service.add_user("root", "admin", centre)
    merged = await service.database.write(merge_from_the_county, centre)
    base = base_url(service)
    await page.set_viewport_size({"width": 1440, "height": 900})

    await log_in(page, base, "root")
    await page.wait_for_url(f"{base}/admin/users")

    await page.click('.main-nav a[href="/admin/facilities"]')
    await page.wait_for_url(f"{base}/admin/facilities")
    await expect(page.locator('tr.facility-row[data-aet="REGION_PACS"]')).to_be_visible()
    await page.fill("#facility-name", "Hexi Township Health Centre")
    await page.select_option("#facility-kind", "township")
    await page.fill("#facility-aet", "HEXI_CR")
    await page.fill("#facility-timezone", "Asia/Shanghai")
    await page.fill("#facility-contact", "0930-1234567")
    await page.fill("#facility-hl7-endpoint", "not an address")
    await page.click("#facility-submit")
    await expect(page.locator("#facility-form-error")).to_have_text(
        "The HL7 results address is host:port."
    )
    await page.fill("#facility-hl7-code", "HEXI-HIS")
    await page.fill("#facility-hl7-endpoint", "his.hexi.example:2575")
    await page.select_option("#facility-character-set", "GB18030")
    await page.click("#facility-submit")
    hexi = page.locator('tr.facility-row[data-aet="HEXI_CR"]')
    await expect(hexi).to_be_visible()
    listed = await service.client.get("/api/admin/facilities", headers=await service.login("root"))
    [stored] = [f for f in (await listed.json())["items"] if f["aet"] == "HEXI_CR"]
    assert (stored["hl7_code"], stored["hl7_endpoint"], stored["character_set"]) == (
        "HEXI-HIS",
        "his.hexi.example:2575",
        "GB18030",
    )
    await expect(hexi.locator(".col-kind")).to_have_text("Township health centre")
    await expect(page.locator("#facility-form-status")).to_contain_text("registered")
    merge = page.locator(f'tr.merge-row[data-merge-id="{merged}"]')
    await expect(merge.locator(".col-changed")).to_have_text("#1")
    page.once("dialog", lambda dialog: dialog.accept())
    await merge.locator("button.merge-reverse").click()
    await expect(merge).to_have_attribute("data-reversed", "true")
    await expect(merge.locator(".col-reversed")).to_contain_text("root")
    await expect(page.locator("#merges-status")).to_contain_text("P-OLD")

    await page.click('.main-nav a[href="/admin/users"]')
    await page.wait_for_url(f"{base}/admin/users")
    await expect(page.locator("#user-facility option")).to_have_count(2)
    await page.fill("#user-username", "ma.li")
    await page.fill("#user-display-name", "马丽")
    await page.select_option("#user-role", "radiographer")
    await page.select_option("#user-facility", label="Hexi Township Health Centre (HEXI_CR)")
    await page.fill("#user-password", PASSWORD)
    await page.click("#user-submit")
    row = page.locator('tr.user-row[data-username="ma.li"]')
    await expect(row).to_have_attribute("data-disabled", "false")
    await expect(row.locator(".user-role-select")).to_have_value("radiographer")
    await expect(page.locator("#user-form-status")).to_have_text("Account ma.li created.")

    radiographer = await service.login("ma.li")
    assert (await service.client.get("/api/me", headers=radiographer)).status == 200

    # Her DICOM name: derived from "马丽" while empty (the hint says which), then set by hand.
    await expect(row.locator(".dicom-name-derived")).to_have_text("Default: Ma^Li=马^丽=mǎ^lì")
    await row.locator(".dicom-name-input").fill("Ma^Li=马^丽")
    await row.locator(".dicom-name-input").press("Enter")
    await expect(page.locator("#users-status")).to_have_text("ma.li: Saved.")
    await expect(row.locator(".dicom-name-input")).to_have_value("Ma^Li=马^丽")
    await expect(row.locator(".dicom-name-derived")).to_have_count(0)

    await row.locator("button.user-toggle").click()
    await expect(row).to_have_attribute("data-disabled", "true")
    await expect(row.locator(".user-status")).to_have_text("Disabled")
    await expect(row.locator("button.user-toggle")).to_have_text("Enable")
    assert (await service.client.get("/api/me", headers=radiographer)).status == 401

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "admin-users.png"), full_page=True)


async def test_admin_sees_a_refused_change_explained(service, page: Page):
    """The only administrator cannot disable themselves: the button is off for their own row,
    and the server's refusal of a self-demotion is shown in the user's language."""
    centre = await service.add_facility("区域影像中心", "regional", "REGION_PACS")
    await service.add_user("root", "admin", centre)
    base = base_url(service)
    await log_in(page, base, "root", "/admin/users%3Flang%3Dzh_CN")
    own = page.locator('tr.user-row[data-username="root"]')
    await expect(own.locator("button.user-toggle")).to_be_disabled()
    await expect(own.locator(".user-role-select")).to_be_disabled()
    await expect(page.locator("h1")).to_have_text("用户")
    await expect(own.locator(".user-status")).to_have_text("已启用")


async def test_manager_searches_the_audit_trail(service, page: Page):
    """A manager opens the audit page and searches by username and dates: the user's records
    are listed, and the CSV link carries the same filters (whole days in the facility's zone,
    sent as UTC instants, "to" exclusive) and downloads."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION_PACS")
    await service.add_user("sun", "manager", centre)
    base = base_url(service)

    await log_in(page, base, "sun", "/audit")
    await page.wait_for_url(f"{base}/audit")
    await expect(page.locator('.main-nav a[href="/audit"]')).to_have_attribute(
        "aria-current", "page"
    )
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    await page.fill("#audit-user", "sun")
    await page.fill("#audit-from", (today - timedelta(days=1)).isoformat())
    await page.fill("#audit-to", today.isoformat())
    await page.click("#audit-search")

    rows = page.locator("tr.audit-row")
    await expect(rows.first).to_be_visible()
    await expect(rows.first).to_have_attribute("data-action", re.compile(r"\w+\.\w+"))
    href = await page.locator("#audit-csv").get_attribute("href")
    assert href is not None and href.startswith("/api/audit.csv?")
    query = parse_qs(urlsplit(href).query)
    midnight = datetime.combine(today, time(), ZoneInfo("Asia/Shanghai"))
    assert query["user"] == ["sun"]
    assert query["from"] == [utc_text(midnight - timedelta(days=1))]
    assert query["to"] == [utc_text(midnight + timedelta(days=1))]
    csv = await page.request.get(f"{base}{href}")
    assert csv.status == 200 and "sun" in await csv.text()


def utc_text(moment: datetime) -> str:
    """What JavaScript's Date.toISOString() writes."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S}.000Z"


async def test_user_changes_their_own_password_on_the_account_page(service, page: Page):
    """Any role: the account page changes the password; the new one logs in, the old does not."""
    clinic = await service.add_facility("Dongxiang Township", "township", "DONGXIANG_DR")
    await service.add_user("wang", "clinician", clinic)
    base = base_url(service)
    await log_in(page, base, "wang", "/account")
    await page.wait_for_url(f"{base}/account")

    await page.fill("#current-password", "not-the-password")
    await page.fill("#new-password", "new-secret-passphrase")
    await page.fill("#confirm-password", "new-secret-passphrase")
    await page.click("#password-submit")
    await expect(page.locator("#password-error")).to_have_text("The current password is wrong.")

    await page.fill("#current-password", PASSWORD)
    await page.click("#password-submit")
    await expect(page.locator("#password-status")).to_have_text(
        "Password changed. Your other sessions have been logged out."
    )
    old = await service.client.post("/api/login", json={"username": "wang", "password": PASSWORD})
    new = await service.client.post(
        "/api/login", json={"username": "wang", "password": "new-secret-passphrase"}
    )
    assert (old.status, new.status) == (401, 200)
