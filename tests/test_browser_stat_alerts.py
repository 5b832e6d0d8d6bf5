"""In a real browser: a new stat consultation beeps and raises a desktop notification on an
open worklist, unless the reader muted alerts (the choice persists in localStorage)."""

from __future__ import annotations

import itertools

import pytest
from playwright.async_api import Browser, Page, expect

from .browser import log_in

# Record what the page does instead of relying on the desktop: every Notification created and
# every oscillator started (the beep), while keeping the real classes underneath.
RECORDER = """
(() => {
  window.__notes = [];
  window.__beeps = 0;
  const Real = window.Notification;
  if (Real) {
    window.Notification = class extends Real {
      constructor(title, options) {
        window.__notes.push({ title, body: (options || {}).body, tag: (options || {}).tag });
        super(title, options);
      }
    };
  }
  const Context = window.AudioContext;
  if (Context) {
    const create = Context.prototype.createOscillator;
    Context.prototype.createOscillator = function () {
      window.__beeps += 1;
      return create.call(this);
    };
  }
})();
"""

UIDS = itertools.count(1)


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def file_stat(service, headers) -> int:
    response = await service.client.post(
        "/api/consultations",
        headers=headers,
        json={
            "study_instance_uid": f"1.2.826.0.1.3680043.10.6.{next(UIDS)}",
            "priority": "stat",
            "clinical_question": "Intracranial bleed?",
        },
    )
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def open_worklist(page: Page, base: str) -> None:
    await log_in(page, base, "dr_li", "/worklist")
    await expect(page.locator("#worklist-updated")).to_have_attribute("data-live", "on")


async def test_stat_alerts_notify_and_beep_and_stay_quiet_once_muted(service, browser: Browser):
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    clinic = await service.add_facility("Dongxiang Township Health Centre", "township", "DX_DR")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("req_chen", "requester", clinic)
    requester = await service.login("req_chen")
    base = str(service.client.make_url("/")).rstrip("/")

    context = await browser.new_context(permissions=["notifications"])
    try:
        await context.add_init_script(RECORDER)
        page = await context.new_page()
        await open_worklist(page, base)
        assert await page.evaluate("Notification.permission") == "granted"
        await expect(page.locator("#alerts-enable")).to_be_hidden()
        await expect(page.locator("#alerts-mute")).to_have_attribute("aria-pressed", "false")

        first = await file_stat(service, requester)
        await expect(page.locator(f'tr[data-consultation-id="{first}"]')).to_be_visible()
        notes = await page.evaluate("window.__notes")
        assert notes == [
            {
                "title": "New stat consultation",
                "body": "A stat consultation has arrived on the worklist.",
                "tag": f"teleread-stat-{first}",
            }
        ]
        assert await page.evaluate("window.__beeps") == 2  # two short beeps

        await page.click("#alerts-mute")
        await expect(page.locator("#alerts-mute")).to_have_attribute("aria-pressed", "true")
        await page.reload()  # the choice persists
        await expect(page.locator("#worklist-updated")).to_have_attribute("data-live", "on")
        await expect(page.locator("#alerts-mute")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("#alerts-mute")).to_have_text("Unmute alerts")

        second = await file_stat(service, requester)
        await expect(page.locator(f'tr[data-consultation-id="{second}"]')).to_be_visible()
        assert await page.evaluate("window.__notes") == []
        assert await page.evaluate("window.__beeps") == 0
    finally:
        await context.close()
