"""Live worklist changes as Server-Sent Events (``GET /api/worklist/events``).

Each open worklist page holds one stream. Events carry only what addresses a change (kind,
consultation id, priority, queue), never patient data: the page then refetches the worklist,
which is scoped and audited on its own.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from ...auth.access import consultation_scope
from ...clock import to_iso, utc_now
from ...worklist.live import WorklistChange
from ..access import allow
from ..auditing import audit_context, audited
from ..keys import LIVE, current_user
from ..middleware import PRIVATE_NO_STORE
from .openapi import documented
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

HEARTBEAT_SECONDS = 15.0
"""A comment line this often keeps proxies and idle timeouts from closing the stream."""
DISCONNECT_CHECK_SECONDS = 1.0
"""How often a quiet stream checks whether the browser went away."""
RETRY_MS = 3000
AUDITED_IDS_LIMIT = 1000


def change_event(change: WorklistChange) -> bytes:
    data = {
        "kind": change.kind,
        "consultation_id": change.consultation_id,
        "priority": change.priority,
        "queue": change.queue,
    }
    return f"event: change\ndata: {json.dumps(data)}\n\n".encode()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@routes.get("/api/worklist/events")
@allow(*WORKLIST_ROLES)
@audited("worklist.subscribe", "worklist")
@documented(
    "Worklist changes in the caller's scope, pushed as Server-Sent Events",
    response_media_type="text/event-stream",
)
async def worklist_events(request: web.Request) -> web.StreamResponse:
    """Stream ``event: change`` lines until the client leaves or the service stops.

    Audit: the middleware writes one ``worklist.subscribe`` record when the stream ends (it
    records after the handler returns). That record says when the stream opened, how long it
    lasted and which consultation ids it pushed, so it accounts for everything sent; the refetches
    the page makes are audited as ``worklist.query`` as usual.
    """
    user = current_user(request)
    audit = audit_context(request)
    opened, started = to_iso(utc_now()), time.monotonic()
    pushed: list[int] = []
    response = web.StreamResponse(
        headers={"Cache-Control": PRIVATE_NO_STORE, "X-Accel-Buffering": "no"},
    )
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    if request.method == "HEAD":  # headers only: a stream's bytes would follow them on the wire
        await response.prepare(request)
        await response.write_eof()
        return response
    async with request.app[LIVE].subscribe(consultation_scope(user)) as queue:
        await response.prepare(request)
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            await _pump(request, response, queue, pushed)
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away mid-write
    audit.detail |= {
        "opened_at": opened,
        "seconds": round(time.monotonic() - started, 1),
        "changes": len(pushed),
        "consultations": sorted(set(pushed))[:AUDITED_IDS_LIMIT],
    }
    return response


async def _pump(
    request: web.Request,
    response: web.StreamResponse,
    queue: asyncio.Queue[WorklistChange | None],
    pushed: list[int],
) -> None:
    quiet = 0.0
    while not _gone(request):
        try:
            change = await asyncio.wait_for(queue.get(), DISCONNECT_CHECK_SECONDS)
        except TimeoutError:
            quiet += DISCONNECT_CHECK_SECONDS
            if quiet >= HEARTBEAT_SECONDS:
                await response.write(b": ping\n\n")
                quiet = 0.0
            continue
        if change is None:  # the service is shutting down
            return
        await response.write(change_event(change))
        pushed.append(change.consultation_id)
        quiet = 0.0
