"""In a real browser: the manager's dashboard renders its charts and tables with data."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from .browser import SCREENSHOTS, log_in
from .test_turnaround import history  # noqa: F401  (fixture: consultations with known times)

SCREENSHOT = SCREENSHOTS / "dashboard.png"


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def test_the_dashboard_shows_charts_and_tables_for_a_manager(service, history, page: Page):  # noqa: F811
    base = str(service.client.make_url("/")).rstrip("/")
    await page.set_viewport_size({"width": 1360, "height": 1400})
    await log_in(page, base, "boss", "/dashboard")
    await page.fill("#dashboard-from", "2026-03-01")
    await page.fill("#dashboard-to", "2026-03-31")
    await page.click("#dashboard-apply")
    await expect(page.locator("#dashboard-tat tbody tr")).to_have_count(3 * 6)
    await expect(page.locator("#dashboard-breaches tbody tr")).to_have_count(3)
    await expect(page.locator("#dashboard-zone-note")).to_contain_text("Asia/Shanghai")
    for chart in ("tat", "sla", "queue", "workload", "quality"):
        image = page.locator(f"#chart-{chart}")
        await expect(image).to_have_attribute(
            "src",
            f"/dashboard/charts/{chart}.svg?"
            # whole days in the facility's zone (Asia/Shanghai, UTC+8), not UTC days
            + "from=2026-02-28T16%3A00%3A00.000Z&to=2026-03-31T16%3A00%3A00.000Z",
        )
        await page.wait_for_function(
            "id => { const i = document.getElementById(id);"
            " return i.complete && i.naturalWidth > 0; }",
            arg=f"chart-{chart}",
        )
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
