"""Rendering inside the web process: decoded frames in this process's cache, pixel work on threads.

When the service runs several web processes behind one port (``TELEREAD_WEB_PROCESSES``), each
process already has a core of its own, and handing a half-millisecond render to yet another
process costs as much as the render (two pickles, two socket hops, a copy of every file). So each
web process keeps its own :class:`viewer.cache.FrameCache` and fetches, decodes, windows and
encodes on a small thread pool: the event loop never runs pixel work, and the socket reads,
numpy's indexed copy and Pillow's encoders release the GIL, so the threads overlap with the loop.

A cold frame is one trip to the pool: read the file from Orthanc (a blocking client on that
thread, :class:`service.runtime.orthanc.file_reader.OrthancFileReader`), decode the frame, render
it. Requests for a frame that is being decoded wait for that decode instead of starting another.
Files with several frames are kept (raw, bounded) so the next frame does not fetch them again.

The interface is :class:`service.viewing.rendering.RenderWorkers`' (render, values, prefetch, stats,
pids, start, close), so routes do not know which one they use.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from viewer import decode_frame, modality_values, render
from viewer.cache import FrameCache

from ..runtime.orthanc.file_reader import FrameFiles, ReadFile
from .rendering import FrameRef, Prefetcher, UndecodableLog

T = TypeVar("T")

# Three, not two: a cold frame's thread waits for Orthanc's file for part of its time, and with
# a third the process keeps rendering meanwhile (two paired cold runs at load 12: 1.16x and
# 1.26x the renders/s, the same CPU per request and the same hot rate; docs/viewer.md).
THREADS = 3


class InProcessRenderer:
    """Decode on first use, cache, render on a thread pool of this process."""

    def __init__(self, cache_mb: float, read_file: ReadFile, threads: int = THREADS) -> None:
        self.cache = FrameCache(cache_mb)
        self._files = FrameFiles(read_file, cache_mb)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="render")
        self._decoding: dict[str, asyncio.Future[tuple[Any, bytes | None]]] = {}
        self._prefetcher = Prefetcher(lambda ref: self._obtain(ref, None))
        self.undecodable = UndecodableLog()

    async def start(self) -> None:
        """Nothing to start: the pool's threads are made on first use."""

    async def _in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # --- on a pool thread ---

    def _load(self, ref: FrameRef, options: Any) -> tuple[Any, bytes | None]:
        """Fetch and decode the frame, and render it too when ``options`` are given."""
        frame = decode_frame(self._files.read(ref.orthanc_id, ref.frames), ref.index0)
        return frame, None if options is None else render(frame, options)

    # --- on the loop ---

    async def _obtain(self, ref: FrameRef, options: Any) -> tuple[Any, bytes | None]:
        """The decoded frame (and its render when asked) — cached, awaited from a load in
        flight, or loaded now. The load is a task of its own: a caller that gives up (a closed
        connection) does not cancel it for the others waiting on it. The cache is only ever
        touched on the loop's thread."""
        frame = self.cache.get(ref.key)
        if frame is not None:
            return frame, None
        pending = self._decoding.get(ref.key)
        if pending is not None:
            frame, _ = await asyncio.shield(pending)
            return frame, None
        task = asyncio.ensure_future(self._load_into_cache(ref, options))
        self._decoding[ref.key] = task
        task.add_done_callback(lambda done: self._loaded(ref.key, done))
        return await asyncio.shield(task)

    def _loaded(self, key: str, task: asyncio.Future[Any]) -> None:
        self._decoding.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: whoever still waits re-raises it

    async def _load_into_cache(self, ref: FrameRef, options: Any) -> tuple[Any, bytes | None]:
        frame, body = await self._in_pool(self._load, ref, options)
        self.cache.put(ref.key, frame)
        return frame, body

    async def render(self, ref: FrameRef, options: Any) -> bytes:
        frame, body = await self._obtain(ref, options)
        if body is not None:
            return body
        return await self._in_pool(render, frame, options)

    async def values(self, ref: FrameRef) -> tuple[bytes, str]:
        frame, _ = await self._obtain(ref, None)
        return await self._in_pool(modality_values, frame)

    async def pids(self) -> list[int]:
        return [os.getpid()]

    async def stats(self) -> list[dict[str, Any]]:
        return [self.cache.stats()]

    def prefetch(self, name: str, frames: Iterable[FrameRef]) -> None:
        self._prefetcher.start(name, frames)

    async def close(self) -> None:
        """Cancel prefetching, then let running pixel work finish."""
        await self._prefetcher.close()
        await asyncio.to_thread(self._pool.shutdown, True)
