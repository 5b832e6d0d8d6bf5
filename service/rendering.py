"""Render workers: decode, window and encode frames on every core, each frame cached once.

The main process keeps HTTP, authorisation, audit, ingest and every background task; it only hands
pixel work to ``N`` worker processes (one single-process executor each). Requests are sharded by
(instance, frame), so a frame lives in exactly one worker's :class:`viewer.cache.FrameCache`.
A worker answers ``None`` on a cache miss; the main process then fetches the instance's file from
Orthanc (one fetch per file at a time, however many requests wait for it) and sends the bytes.

Workers come from a ``forkserver`` with the pixel libraries preloaded: starting one costs a fork,
not an interpreter, and no thread of the main process is ever forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import zlib
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

PREFETCH_PARALLEL = 2
PREFETCH_MAX_FRAMES = 2000

FetchFile = Callable[[str], Awaitable[bytes]]


@dataclass(frozen=True)
class FrameRef:
    """Which frame: the SOP Instance UID (cache key), Orthanc's id (to fetch), 0-based index."""

    instance_uid: str
    orthanc_id: str
    index0: int

    @property
    def key(self) -> str:
        return f"{self.instance_uid}/{self.index0}"


# --- inside a worker process -------------------------------------------------------------------
# A worker process's own cache: process-local state by nature (one per worker), not shared.
_cache: Any = None


def _start_worker(cache_mb: int) -> None:
    global _cache
    from viewer.cache import FrameCache

    _cache = FrameCache(cache_mb)


def _frame(ref: FrameRef, data: bytes | None) -> Any:
    """The decoded frame from this worker's cache, decoded from ``data`` on a miss (or None)."""
    frame = _cache.get(ref.key)
    if frame is None and data is not None:
        from viewer import decode_frame

        frame = decode_frame(data, ref.index0)
        _cache.put(ref.key, frame)
    return frame


def _render_job(ref: FrameRef, data: bytes | None, options: Any) -> bytes | None:
    from viewer import render

    frame = _frame(ref, data)
    return None if frame is None else render(frame, options)


def _values_job(ref: FrameRef, data: bytes | None) -> tuple[bytes, str] | None:
    from viewer import modality_values

    frame = _frame(ref, data)
    return None if frame is None else modality_values(frame)


def _warm_job(ref: FrameRef, data: bytes | None) -> bool:
    """Decode into the cache; False when the frame is not cached and no data came."""
    return _frame(ref, data) is not None


def _pid_job() -> int:
    return os.getpid()


def _stats_job() -> dict[str, Any]:
    stats = _cache.stats()
    return stats if isinstance(stats, dict) else {"stats": repr(stats)}


# --- in the main process -----------------------------------------------------------------------


class RenderWorkers:
    """The pool of render processes and the fetch-on-miss protocol, started in ``cleanup_ctx``."""

    def __init__(self, workers: int, cache_mb: int, fetch_file: FetchFile) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["viewer", "viewer.cache", "service.rendering"])
        share = max(1, cache_mb // workers)
        self.executors = [
            ProcessPoolExecutor(1, mp_context=context, initializer=_start_worker, initargs=(share,))
            for _ in range(workers)
        ]
        self._fetch_file = fetch_file
        self._fetching: dict[str, asyncio.Future[bytes]] = {}
        self._prefetching: dict[str, asyncio.Task[None]] = {}
        self._prefetch_slots = asyncio.Semaphore(PREFETCH_PARALLEL)

    def _executor(self, ref: FrameRef) -> ProcessPoolExecutor:
        return self.executors[zlib.crc32(ref.key.encode()) % len(self.executors)]

    async def _run(self, ref: FrameRef, job: Callable[..., Any], *args: Any) -> Any:
        """Run a job in the frame's worker; on a miss fetch the file and run it again with it."""
        loop = asyncio.get_running_loop()
        executor = self._executor(ref)
        result = await loop.run_in_executor(executor, job, ref, None, *args)
        if result is None or result is False:
            data = await self._file(ref.orthanc_id)
            result = await loop.run_in_executor(executor, job, ref, data, *args)
        return result

    async def _file(self, orthanc_id: str) -> bytes:
        """The instance's Part-10 bytes, fetched once however many callers wait for it."""
        pending = self._fetching.get(orthanc_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._fetching[orthanc_id] = future
        try:
            data = await self._fetch_file(orthanc_id)
            future.set_result(data)
            return data
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiting callers re-raise it, nobody else must
            raise
        finally:
            del self._fetching[orthanc_id]

    async def render(self, ref: FrameRef, options: Any) -> bytes:
        return await self._run(ref, _render_job, options)

    async def values(self, ref: FrameRef) -> tuple[bytes, str]:
        return await self._run(ref, _values_job)

    async def stats(self) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return [await loop.run_in_executor(e, _stats_job) for e in self.executors]

    def prefetch(self, name: str, frames: Iterable[FrameRef]) -> None:
        """Warm every frame of a study in the background (once per study at a time).

        Bounded (``PREFETCH_MAX_FRAMES``, ``PREFETCH_PARALLEL`` jobs in flight so requests queue
        behind at most a couple of decodes per worker) and cancelled when the service stops.
        """
        running = self._prefetching.get(name)
        if running is not None and not running.done():
            return
        refs = list(frames)[:PREFETCH_MAX_FRAMES]
        task = asyncio.create_task(self._prefetch(refs), name=f"prefetch {name}")
        self._prefetching[name] = task
        task.add_done_callback(lambda t: self._prefetch_done(name, t))

    def _prefetch_done(self, name: str, task: asyncio.Task[None]) -> None:
        if self._prefetching.get(name) is task:
            del self._prefetching[name]
        if not task.cancelled():
            task.exception()  # a failed prefetch only costs speed; never an unretrieved error

    async def _prefetch(self, refs: list[FrameRef]) -> None:
        async def warm(ref: FrameRef) -> None:
            async with self._prefetch_slots:
                with contextlib.suppress(Exception):
                    await self._run(ref, _warm_job)

        await asyncio.gather(*(warm(ref) for ref in refs))

    async def close(self) -> None:
        """Cancel prefetching and stop every worker process (waits for them to exit)."""
        tasks = list(self._prefetching.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for executor in self.executors:
            await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)
