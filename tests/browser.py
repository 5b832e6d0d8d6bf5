"""What the browser tests share: logging in through the real login page."""

from __future__ import annotations

from playwright.async_api import Page

from .conftest import PASSWORD


async def log_in(page: Page, base: str, username: str, next_path: str = "/worklist") -> None:
    """Sign in on /login as ``username`` and wait until the page ``next_path`` has opened."""
    await page.goto(f"{base}/login?next={next_path}")
    await page.fill("#login-username", username)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url(f"{base}{next_path}")
