"""Background work done again and again: one round every interval, for as long as the app runs.

The escalation sweep, the critical-finding sweep, report delivery and the primary's health
heartbeat are all "do a round, wait, repeat". Written once here, each gets the same rules:

- a round that raises is logged with its task's name and the loop goes on: one bad row or a
  database briefly locked must never stop escalations for the rest of the day;
- a round refused because another replica leads now (``Superseded``) is logged as such and the
  loop waits to be stopped by the leadership (service/runtime/leadership.py);
- after a failure the wait doubles (up to ``max_backoff``), so a persistent fault is not logged
  every few milliseconds; the first good round restores the interval;
- a ``wake`` event ends the wait early (a signature wakes report delivery at once); it is
  cleared before the round, so a wake arriving during a round gives another round right after;
- stopping is cancelling: :func:`running` cancels the task and waits for it on the way out of
  the app's ``cleanup_ctx``, so nothing runs against a closed database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ..storage.fencing import Superseded

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0


async def repeat(
    name: str,
    interval: float,
    round_: Callable[[], Awaitable[object]],
    *,
    wake: asyncio.Event | None = None,
    max_backoff: float = MAX_BACKOFF,
) -> None:
    """Run ``round_`` every ``interval`` seconds until cancelled (see the module docstring)."""
    failures = 0
    while True:
        if wake is not None:
            wake.clear()
        try:
            await round_()
        except Superseded as exc:
            delay = interval
            log.warning("%s: %s; this replica no longer leads", name, exc)
        except Exception:
            failures += 1
            delay = min(interval * 2 ** min(failures, 30), max(max_backoff, interval))
            log.exception("%s failed; next round in %.3g s", name, delay)
        else:
            failures, delay = 0, interval
        await _pause(delay, wake)


async def _pause(seconds: float, wake: asyncio.Event | None) -> None:
    if wake is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout=seconds)


@contextlib.asynccontextmanager
async def running(
    name: str,
    interval: float,
    round_: Callable[[], Awaitable[object]],
    *,
    wake: asyncio.Event | None = None,
    max_backoff: float = MAX_BACKOFF,
) -> AsyncIterator[asyncio.Task[None]]:
    """The periodic task while the block runs; cancelled and awaited when it ends."""
    task = asyncio.create_task(
        repeat(name, interval, round_, wake=wake, max_backoff=max_backoff), name=name
    )
    try:
        yield task
    finally:
        await _cancelled(task)


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for its end, cancelling again while it goes on: a library
    awaiting with Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that arrives as
    its call ends, and the round loop would then run on, and the app's shutdown wait for ever."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


@contextlib.asynccontextmanager
async def running_task(
    name: str, run: Callable[[], Awaitable[None]]
) -> AsyncIterator[asyncio.Task[None]]:
    """``run()`` as a task while the block runs (a loop of its own, such as the change
    follower's); cancelled and awaited when it ends."""
    task = asyncio.create_task(run(), name=name)
    try:
        yield task
    finally:
        await _cancelled(task)
