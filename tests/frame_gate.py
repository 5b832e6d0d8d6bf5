"""A slow link for the viewer's frame requests in browser tests: answers pass one frame at a time.

The viewer page asks for its first frame through the per-frame ``values`` route and for the rest
in batches of a series (``.../series/{series}/values?frames=uid:n,...``, from a Web Worker, whose
requests Playwright's ``page.route`` sees too). A batch of k frames costs k tokens, taken whole
and in the order the requests came, so the pace depends on the frames let through, not on how
the page grouped them or how fast this machine runs the browser.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Route

FRAME_REQUESTS = re.compile(r"(/frames/\d+/values$)|(/series/[^/]+/values\?frames=)")


def frames_of(url: str) -> list[str]:
    """The per-frame ``values`` paths a request asks for, in its order (one for the per-frame
    route; each ``uid:n`` of a batch written as that frame's per-frame path)."""
    parts = urlsplit(url)
    if not parts.query:
        return [parts.path]
    series = parts.path.removesuffix("/values")
    listed = parse_qs(parts.query)["frames"][0].split(",")
    return [
        f"{series}/instances/{uid}/frames/{n}/values" for uid, n in (f.split(":") for f in listed)
    ]


class FrameGate:
    """``tokens`` frames may pass before the test lets more through (``let_through``)."""

    def __init__(self, tokens: int) -> None:
        self.gate = asyncio.Semaphore(tokens)
        self.turn = asyncio.Lock()

    async def handle(self, route: Route) -> None:
        async with self.turn:  # whole requests in turn: two batches never split the tokens
            for _ in frames_of(route.request.url):
                await self.gate.acquire()  # a token spent, never given back
        await route.continue_()

    def let_through(self, count: int) -> None:
        for _ in range(count):
            self.gate.release()
