"""Which replica runs the once-only background work, and that work while it does.

On one host the primary web process runs every background task (the change follower, report
delivery, the escalation, critical-finding and stat sweeps, the HL7 results outbox, the monthly
recognition recomputation, ATNA forwarding, the modality worklist files): it *always* leads, and
its secondaries *never* do. Replicas on several hosts sharing one PostgreSQL database each have a
primary, and exactly one of those must lead: each asks for a lease
(:class:`service.storage.leases.AdvisoryLease`) every :data:`RETRY_SECONDS`; the one that gets it
starts every task registered with :meth:`Leadership.once`, checks each second that the
connection holding the lease still answers, and stops the tasks the moment it does not. A
leader that stops or dies frees the lease with its connection, and another replica takes over
within about a second.

A task must still be safe if an old leader finishes a round while the new one starts (a
partitioned leader learns of its loss only at its next check): the work of a round is one
transaction that checks what it read (the change follower's cursor: ``storage.ingest``), claims
what it sends under the lease's fence (:attr:`Leadership.fence`: report delivery, the HL7
results outbox, ATNA forwarding; ``storage.fencing``), or is idempotent (every sweep records an
event once, under ``SERIALIZABLE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Protocol

from ..storage import Database
from ..storage.fencing import Fence

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0

Work = Callable[[], AbstractAsyncContextManager[object]]
"""A background task as a context manager factory: entered to start, exited to stop."""


class Lease(Protocol):
    async def try_take(self) -> bool: ...

    async def still_held(self) -> bool: ...

    async def release(self) -> None: ...

    @property
    def fence(self) -> Fence: ...


@dataclass(eq=False)
class _Running:
    name: str
    work: Work
    stack: AsyncExitStack | None = field(default=None)


class Leadership:
    """This process's part in the once-only work: always, never, or while it holds a lease."""

    def __init__(
        self, lease: Lease | None = None, *, leads: bool = False, retry: float = RETRY_SECONDS
    ) -> None:
        """``lease`` None: ``leads`` says once and for all (one host); else the lease does."""
        self.lease, self.retry = lease, retry
        self._leading = leads and lease is None
        self._works: list[_Running] = []
        self._lock = asyncio.Lock()
        self._stopping = False
        self.changed = asyncio.Event()
        """Set at each gain or loss of the lease (tests and figures wait on it)."""

    @property
    def leading(self) -> bool:
        return self._leading

    def fence(self) -> Fence | None:
        """The fence this process's workers claim work under: the epoch at which its lease
        was last taken (refused by the database once another replica took it since), or
        None on one host, where there is nothing to fence."""
        return None if self.lease is None else self.lease.fence

    @property
    def elected(self) -> bool:
        """Leadership is decided by a lease among replicas (PostgreSQL), not by the role."""
        return self.lease is not None

    @contextlib.asynccontextmanager
    async def once(self, name: str, work: Work) -> AsyncIterator[None]:
        """Run ``work`` while this process leads, for as long as the block runs."""
        if self.lease is None:  # one host: the primary runs it now, a secondary never
            if self._leading:
                async with work():
                    yield
            else:
                yield
            return
        entry = _Running(name, work)
        async with self._lock:
            self._works.append(entry)
            if self._leading:
                await _start(entry)
        try:
            yield
        finally:
            async with self._lock:
                self._works.remove(entry)
                await _stop(entry)

    @contextlib.asynccontextmanager
    async def campaigning(self) -> AsyncIterator[Leadership]:
        """Seek and hold the lease while the block runs (nothing to do without a lease); on
        the way out, stop whatever still runs and give the lease up."""
        if self.lease is None:
            yield self
            return
        if await self.lease.try_take():  # alone, or first: lead from start-up on
            await self._gain()
        task = asyncio.create_task(self._campaign(), name="leadership")
        try:
            yield self
        finally:
            self._stopping = True  # and if a library swallows the cancellation, it ends anyway
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._lose("stopping")
            await self.lease.release()

    async def _campaign(self) -> None:
        assert self.lease is not None
        while not self._stopping:
            await asyncio.sleep(self.retry)
            if not self._leading:
                if await self.lease.try_take() and not self._stopping:
                    await self._gain()
            elif not await self.lease.still_held():
                await self._lose("lost the lease")

    async def _gain(self) -> None:
        log.info("this replica leads: starting the background work")
        async with self._lock:
            self._leading = True
            self.changed.set()
            for entry in self._works:
                await _start(entry)

    async def _lose(self, why: str) -> None:
        async with self._lock:
            if not self._leading:
                return
            log.warning("this replica no longer leads (%s): stopping the background work", why)
            self._leading = False
            self.changed.set()
            for entry in reversed(self._works):
                await _stop(entry)


async def _start(entry: _Running) -> None:
    stack = AsyncExitStack()
    try:
        await stack.enter_async_context(entry.work())
    except Exception:
        log.exception("could not start %s", entry.name)
        await stack.aclose()
        return
    entry.stack = stack


async def _stop(entry: _Running) -> None:
    stack, entry.stack = entry.stack, None
    if stack is None:
        return
    try:
        await stack.aclose()
    except Exception:
        log.exception("stopping %s failed", entry.name)


async def forget_own_claims(
    database: Database, release: Callable[..., int], fence: Fence | None, worker: str
) -> None:
    """At a claiming worker's start on one host (no ``fence``): the claims left on its queue
    can only be its own, from attempts a crash or a stop cut short, so ``release`` (the queue's
    storage function) forgets them and their rows are due again at once rather than after the
    claims go stale. Among replicas another worker's claims may be live: nothing is forgotten."""
    if fence is not None:
        return
    released = await database.write(release)
    if released:
        log.info("%s: %d attempt(s) cut short by a stop, due again", worker, released)
