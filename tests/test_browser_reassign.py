"""In a real browser: a manager hands a claimed worklist row to another specialist."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from .browser import log_in
from .test_browser_claims import ready_consultation


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def test_a_manager_reassigns_a_row_and_it_shows_the_new_holder(service, page: Page):
    """dr_li holds it; the manager picks dr_wu (on duty) in the dialog; the row says so."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    await service.add_facility("Dongxiang Township Health Centre", "township", "DX_CT")
    li = await service.add_user("dr_li", "specialist", centre)
    wu = await service.add_user("dr_wu", "specialist", centre)
    await service.add_user("boss", "manager", centre)
    consultation_id = await ready_consultation(service, "DX_CT")
    boss = await service.login("boss")
    taken = await service.client.post(
        f"/api/consultations/{consultation_id}/reassign", headers=boss, json={"user_id": li}
    )
    assert taken.status == 200, await taken.text()
    base = str(service.client.make_url("/")).rstrip("/")

    await log_in(page, base, "boss", "/worklist")
    row = page.locator(f'tr.worklist-row[data-consultation-id="{consultation_id}"]')
    await expect(row.locator(".claim-held")).to_have_text("Held by dr_li")

    await row.locator("button.reassign-action").click()
    dialog = page.locator("#reassign-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(f'option[value="{li}"]')).to_have_text("dr_li — holds it now")
    await expect(dialog.locator(f'option[value="{wu}"]')).to_have_text("dr_wu — off duty, holds 0")
    await page.select_option("#reassign-user", str(wu))
    await page.click("#reassign-confirm")

    await expect(dialog).to_be_hidden()
    await expect(row.locator(".claim-held")).to_have_text("Held by dr_wu", timeout=2000)
