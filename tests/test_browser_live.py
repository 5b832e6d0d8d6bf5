"""In a real browser: a specialist's open worklist shows a new stat request without a reload."""

from __future__ import annotations

import time

import pytest
from playwright.async_api import Page, expect

from .browser import log_in


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def test_stat_request_appears_on_an_open_worklist_within_two_seconds(service, page: Page):
    """The page hears the change over Server-Sent Events and refetches (the poll is 30 s)."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    clinic = await service.add_facility("Dongxiang Township Health Centre", "township", "DX_DR")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("req_chen", "requester", clinic)
    base = str(service.client.make_url("/")).rstrip("/")

    await log_in(page, base, "dr_li", "/worklist")
    await expect(page.locator("#worklist-updated")).to_have_attribute("data-live", "on")
    await expect(page.locator("#worklist-empty")).to_be_visible()

    loads = []
    page.on("load", lambda _: loads.append(1))
    requester = await service.login("req_chen")
    started = time.monotonic()
    response = await service.client.post(
        "/api/consultations",
        headers=requester,
        json={
            "study_instance_uid": "1.2.826.0.1.3680043.10.2.1",
            "priority": "stat",
            "clinical_question": "Intracranial bleed?",
        },
    )
    assert response.status == 201, await response.text()
    consultation_id = (await response.json())["id"]

    row = page.locator(f'tr.worklist-row[data-consultation-id="{consultation_id}"]')
    await expect(row).to_be_visible(timeout=2000)
    print(f"file → row on the open worklist: {(time.monotonic() - started) * 1000:.0f} ms")
    await expect(row).to_have_attribute("data-priority", "stat")
    assert loads == []  # no reload
