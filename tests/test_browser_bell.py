"""In a real browser: the header's notifications bell counts unread notices, lists them and
marks them read; it polls every 30 s (the live worklist stream carries no notifications)."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from service.clock import to_iso, utc_now
from service.storage.notifications import add_notifications

from .browser import log_in


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def notify(service, user_id: int, title: str) -> int:
    row = {"user_id": user_id, "kind": "stat", "title": title, "created_at": to_iso(utc_now())}
    [notification_id] = await service.database.write(add_notifications, [row])
    return notification_id


async def test_the_bell_counts_lists_and_marks_notifications_read(service, page: Page):
    """Two unread: the badge says 2; marking one read leaves 1, shown no longer bold."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    li = await service.add_user("dr_li", "specialist", centre)
    first = await notify(service, li, "STAT CT head from Dongxiang")
    await notify(service, li, "Escalated: overdue chest X-ray")
    base = str(service.client.make_url("/")).rstrip("/")

    await log_in(page, base, "dr_li")
    count = page.locator("#bell-count")
    await expect(count).to_have_text("2")
    await expect(page.locator("#bell-panel")).to_be_hidden()

    await page.click("#bell-button")
    await expect(page.locator("#bell-button")).to_have_attribute("aria-expanded", "true")
    item = page.locator(f'li.bell-item[data-notification-id="{first}"]')
    await expect(item.locator(".bell-title")).to_have_text("STAT CT head from Dongxiang")
    await expect(page.locator("li.bell-unread")).to_have_count(2)

    await item.locator("button.bell-mark-read").click()
    await expect(count).to_have_text("1")
    await expect(item).not_to_have_class("bell-item bell-unread")
    await expect(item.locator("button.bell-mark-read")).to_have_count(0)

    await page.keyboard.press("Escape")
    await expect(page.locator("#bell-panel")).to_be_hidden()


async def test_a_new_notification_shows_on_an_open_page_at_the_next_poll(service, page: Page):
    """No reload: 30 s later (a fake clock) the bell has heard of it."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    li = await service.add_user("dr_li", "specialist", centre)
    base = str(service.client.make_url("/")).rstrip("/")
    await page.clock.install()
    await log_in(page, base, "dr_li")
    await expect(page.locator("#bell-button")).to_have_attribute("data-unread", "0")
    await expect(page.locator("#bell-count")).to_be_hidden()

    await notify(service, li, "STAT CT head from Dongxiang")
    await page.clock.run_for(31_000)
    await expect(page.locator("#bell-count")).to_have_text("1")
