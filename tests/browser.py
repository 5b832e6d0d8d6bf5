"""What the browser tests share: logging in through the real login page."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.async_api import Page

from .conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[1]
# Tests never modify tracked files: screenshots land in build/ (ignored) unless the docs' copies
# are being refreshed on purpose with UPDATE_SCREENSHOTS=1.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else ROOT / "build" / "screenshots"
)
SCREENSHOTS.mkdir(parents=True, exist_ok=True)


async def log_in(page: Page, base: str, username: str, next_path: str = "/worklist") -> None:
    """Sign in on /login as ``username`` and wait until the page ``next_path`` has opened."""
    await page.goto(f"{base}/login?next={next_path}")
    await page.fill("#login-username", username)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url(f"{base}{next_path}")
