"""In real browsers: two specialists claim the same worklist row at once; one wins."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Page, expect

from service.intake.intake import InstanceOrigin, ReceivedStudy, receive_study
from worklists.sla import SlaPolicy

from .browser import log_in as log_in_page


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def log_in(page: Page, base: str, username: str) -> None:
    """Log in and wait until the worklist's live stream is on."""
    await log_in_page(page, base, username)
    await expect(page.locator("#worklist-updated")).to_have_attribute("data-live", "on")


async def ready_consultation(service, clinic_aet: str) -> int:
    study = ReceivedStudy(
        orthanc_id="o1",
        study_instance_uid="1.2.826.0.1.3680043.10.9.1",
        patient_id="PID-RACE",
        patient_name="ZHOU^LEI",
        accession_number="ACC-RACE",
        modalities=("CT",),
        body_part="HEAD",
        instances_count=3,
        origins=(InstanceOrigin("DicomProtocol", clinic_aet, "10.0.0.7"),),
    )
    outcome = await service.database.write(
        receive_study, study, now=datetime.now(UTC), sla=SlaPolicy()
    )
    return outcome.consultation_ids[0]


async def test_two_specialists_claim_at_once_and_the_loser_sees_the_winner(
    service, browser: Browser
):
    """Both click Claim together: one row says "Yours", the other "Held by <winner>"."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    await service.add_facility("Dongxiang Township Health Centre", "township", "DX_CT")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("dr_wu", "specialist", centre)
    consultation_id = await ready_consultation(service, "DX_CT")
    base = str(service.client.make_url("/")).rstrip("/")

    contexts = [await browser.new_context() for _ in range(2)]
    try:
        pages = [await context.new_page() for context in contexts]
        await asyncio.gather(log_in(pages[0], base, "dr_li"), log_in(pages[1], base, "dr_wu"))
        rows = [
            p.locator(f'tr.worklist-row[data-consultation-id="{consultation_id}"]') for p in pages
        ]
        buttons = [row.locator("button.claim-claim") for row in rows]
        for button in buttons:
            await expect(button).to_be_visible()

        await asyncio.gather(*(button.click() for button in buttons))

        for row in rows:
            await expect(row).not_to_have_attribute("data-claim", "free", timeout=2000)
        states = [await row.get_attribute("data-claim") for row in rows]
        assert sorted(states) == ["held", "mine"]
        winner, loser = (0, 1) if states[0] == "mine" else (1, 0)
        winner_name = ("dr_li", "dr_wu")[winner]
        await expect(rows[winner].locator(".claim-mine")).to_have_text("Yours")
        await expect(rows[loser].locator(".claim-held")).to_have_text(
            f"Held by {winner_name}", timeout=2000
        )
        await expect(rows[loser].locator("button.claim-claim")).to_have_count(0)

        # After the live refetch both pages still agree with the server.
        await asyncio.sleep(0.5)
        assert await rows[winner].get_attribute("data-claim") == "mine"
        assert await rows[loser].get_attribute("data-claim") == "held"
    finally:
        for context in contexts:
            await context.close()


async def test_keyboard_moves_the_selection_and_enter_claims(service, page: Page):
    """j selects the first row (visible focus); Enter claims it."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    await service.add_facility("Dongxiang Township Health Centre", "township", "DX_CT")
    await service.add_user("dr_li", "specialist", centre)
    consultation_id = await ready_consultation(service, "DX_CT")
    base = str(service.client.make_url("/")).rstrip("/")
    await log_in(page, base, "dr_li")
    row = page.locator(f'tr.worklist-row[data-consultation-id="{consultation_id}"]')
    await expect(row.locator("button.claim-claim")).to_be_visible()

    await page.keyboard.press("j")
    await expect(row).to_have_class("worklist-row selected")
    await expect(row).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(row).to_have_attribute("data-claim", "mine", timeout=2000)
