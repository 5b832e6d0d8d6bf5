"""In a real browser: a regional manager keeps the duty roster on /roster."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect

from service.clock import to_iso, utc_now

from .browser import log_in

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def test_a_manager_adds_and_removes_shifts_in_the_facilitys_time_zone(
    service, browser: Browser
):
    """The browser runs in New York; the shift typed as 08:00-16:00 is Shanghai time."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    li = await service.add_user("dr_li", "specialist", centre)
    wu = await service.add_user("dr_wu", "specialist", centre)
    await service.add_user("boss", "manager", centre)
    boss = await service.login("boss")
    now = utc_now()
    running = await service.client.post(
        "/api/roster",
        headers=boss,
        json={
            "user_id": wu,
            "starts_at": to_iso(now - timedelta(hours=1)).replace("Z", "+00:00"),
            "ends_at": to_iso(now + timedelta(hours=7)).replace("Z", "+00:00"),
        },
    )
    assert running.status == 201, await running.text()
    running_id = (await running.json())["id"]
    base = str(service.client.make_url("/")).rstrip("/")

    context = await browser.new_context(timezone_id="America/New_York")
    try:
        page = await context.new_page()
        await log_in(page, base, "boss", "/roster")
        await expect(page.locator('.main-nav a[href="/roster"]')).to_have_attribute(
            "aria-current", "page"
        )
        await expect(page.locator("#roster-on-duty")).to_have_text("On duty now: dr_wu (Reading)")
        rows = page.locator("tr.roster-row")
        await expect(rows).to_have_count(1)

        tomorrow = (datetime.now(SHANGHAI) + timedelta(days=1)).date().isoformat()
        await page.select_option("#roster-person", str(li))
        await page.fill("#roster-starts", f"{tomorrow}T08:00")
        await page.fill("#roster-ends", f"{tomorrow}T16:00")
        await page.click("#roster-submit")
        await expect(page.locator("#roster-form-status")).to_have_text("Shift added.")
        await expect(rows).to_have_count(2)
        added = page.locator(f'tr.roster-row[data-user-id="{li}"]')
        await expect(added.locator(".col-person")).to_have_text("dr_li")

        listed = await (await service.client.get("/api/roster", headers=boss)).json()
        [shift] = [e for e in listed["items"] if e["user_id"] == li]
        starts = datetime.fromisoformat(shift["starts_at"]).astimezone(SHANGHAI)
        assert (starts.date().isoformat(), starts.hour, starts.minute) == (tomorrow, 8, 0)

        await page.locator(f'tr[data-entry-id="{running_id}"] button.roster-remove').click()
        await expect(page.locator("#roster-form-status")).to_have_text("Shift removed.")
        await expect(rows).to_have_count(1)
        await expect(page.locator("#roster-on-duty")).to_have_text("Nobody is on duty right now.")
    finally:
        await context.close()


async def test_a_shift_that_ends_before_it_starts_is_explained(service, page):
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("boss", "manager", centre)
    base = str(service.client.make_url("/")).rstrip("/")
    await log_in(page, base, "boss", "/roster")
    await expect(page.locator("#roster-person option")).to_have_count(2)
    await page.select_option("#roster-person", label="dr_li")
    await page.fill("#roster-starts", "2030-01-02T16:00")
    await page.fill("#roster-ends", "2030-01-02T08:00")
    await page.click("#roster-submit")
    await expect(page.locator("#roster-form-error")).to_have_text(
        "This shift cannot go on the roster: the shift must end after it starts"
    )
