"""In a real browser: a reader saves the worklist's filters by name and applies them later."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from .browser import log_in


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def file_request(service, headers, uid: str, priority: str) -> int:
    response = await service.client.post(
        "/api/consultations",
        headers=headers,
        json={"study_instance_uid": uid, "priority": priority, "modality": "CT"},
    )
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def test_a_saved_filter_survives_a_reload_and_shows_only_matching_rows(service, page: Page):
    """Save "Stat only", clear the filter, reload, choose it: only the stat row is left."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    clinic = await service.add_facility("Dongxiang Township Health Centre", "township", "DX_CT")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("req_chen", "requester", clinic)
    requester = await service.login("req_chen")
    stat = await file_request(service, requester, "1.2.826.0.1.3680043.10.7.1", "stat")
    routine = await file_request(service, requester, "1.2.826.0.1.3680043.10.7.2", "routine")
    base = str(service.client.make_url("/")).rstrip("/")

    await log_in(page, base, "dr_li", "/worklist")
    rows = page.locator("tr.worklist-row")
    await expect(rows).to_have_count(2)

    await page.select_option("#filter-priority", "stat")
    await expect(rows).to_have_count(1)
    await page.fill("#saved-filter-name", "Stat only")
    await page.click("#saved-filter-save")
    await expect(page.locator("#saved-filter-message")).to_have_text(
        "Saved the filters as “Stat only”."
    )

    await page.select_option("#filter-priority", "")
    await expect(rows).to_have_count(2)
    await page.goto(f"{base}/worklist")
    await expect(rows).to_have_count(2)

    await page.select_option("#saved-filter-select", label="Stat only")
    await expect(rows).to_have_count(1)
    await expect(page.locator(f'tr[data-consultation-id="{stat}"]')).to_be_visible()
    await expect(page.locator(f'tr[data-consultation-id="{routine}"]')).to_have_count(0)
    await expect(page.locator("#filter-priority")).to_have_value("stat")

    await page.click("#saved-filter-delete")
    await expect(page.locator("#saved-filter-select option")).to_have_count(1)
