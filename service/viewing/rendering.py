"""Render workers: decode, window and encode frames on every core, each frame cached once.

Used when ``TELEREAD_RENDER_WORKERS`` > 0 (the default renders inside each web process,
:mod:`service.viewing.local_rendering`). The web process keeps HTTP, authorisation, audit and
background
tasks; it only hands pixel work to ``N`` worker processes. Requests are sharded by (instance,
frame), so a frame lives in exactly one worker's :class:`viewer.cache.FrameCache`. A worker that
lacks a frame reads the instance's file from Orthanc itself (:class:`FileSource`), so a cold file
goes from Orthanc straight to the process that decodes it.

Each worker talks to the main process over its own socket pair: a request is one pickled frame,
the answer another, in order (a worker does one job at a time). The main side is an asyncio
protocol, so a render costs no thread hand-offs — about a third of what a
``ProcessPoolExecutor`` round trip costs, which matters when the render itself is half a
millisecond. Workers come from a ``forkserver`` with the pixel libraries preloaded: starting one
costs a fork, not an interpreter, and no thread of the main process is ever forked. A worker that
dies fails the requests it held and is started again on the next request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import os
import pickle
import socket
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from ..caching import LruCache

log = logging.getLogger(__name__)

PREFETCH_PARALLEL = 2
PREFETCH_MAX_FRAMES = 2000
HEADER = struct.Struct("!i")  # multiprocessing.Connection's framing: a signed 32-bit length


@dataclass(frozen=True)
class FrameRef:
    """Which frame: the SOP Instance UID (cache key), Orthanc's id (to fetch), 0-based index,
    and how many frames the instance has (a multi-frame file is worth keeping between frames)."""

    instance_uid: str
    orthanc_id: str
    index0: int
    frames: int = 1

    @property
    def key(self) -> str:
        return f"{self.instance_uid}/{self.index0}"


class UndecodableLog:
    """Logs each instance whose pixels cannot be decoded once, not once per request: a viewer
    asks for every frame and thumbnail of a study, again on every visit. Bounded (oldest
    forgotten first), so a long-running service logs a forgotten one again at worst."""

    def __init__(self, size: int = 4096) -> None:
        self._seen: LruCache[str, bool] = LruCache(size)

    def report(self, instance_uid: str, reason: object) -> bool:
        """Log the instance's first failure; True when this call logged it."""
        if instance_uid in self._seen:
            return False
        self._seen.put(instance_uid, True)
        log.warning("undecodable pixels in instance %s: %s", instance_uid, reason)
        return True


class Renderer(Protocol):
    """What the viewer's routes need from a renderer: :class:`RenderWorkers` (other processes)
    or :class:`service.viewing.local_rendering.InProcessRenderer` (this one)."""

    undecodable: UndecodableLog

    async def start(self) -> None: ...

    async def render(self, ref: FrameRef, options: Any) -> bytes: ...

    async def values(self, ref: FrameRef) -> tuple[bytes, str]: ...

    def prefetch(self, name: str, frames: Iterable[FrameRef]) -> None: ...

    async def pids(self) -> list[int]: ...

    async def stats(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class Prefetcher:
    """Warms a study's frames in the background, for either renderer.

    One prefetch per study at a time; at most ``PREFETCH_MAX_FRAMES`` frames and
    ``PREFETCH_PARALLEL`` in flight, so requests queue behind a couple of decodes at most; a
    frame that fails only costs speed; everything is cancelled when the service stops.
    """

    def __init__(self, warm: Callable[[FrameRef], Awaitable[Any]]) -> None:
        self._warm = warm
        self._running: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(PREFETCH_PARALLEL)
        self._closed = False

    def start(self, name: str, frames: Iterable[FrameRef]) -> None:
        if self._closed:  # a late request (from the bus) after the renderer stopped
            return
        running = self._running.get(name)
        if running is not None and not running.done():
            return
        refs = list(frames)[:PREFETCH_MAX_FRAMES]
        task = asyncio.create_task(self._all(refs), name=f"prefetch {name}")
        self._running[name] = task
        task.add_done_callback(lambda t: self._done(name, t))

    def _done(self, name: str, task: asyncio.Task[None]) -> None:
        if self._running.get(name) is task:
            del self._running[name]
        if not task.cancelled():
            task.exception()  # a failed prefetch only costs speed; never an unretrieved error

    async def _all(self, refs: list[FrameRef]) -> None:
        async def one(ref: FrameRef) -> None:
            async with self._slots:
                with contextlib.suppress(Exception):
                    await self._warm(ref)

        await asyncio.gather(*(one(ref) for ref in refs))

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class FileSource:
    """Where render workers read instance files themselves (Orthanc's address and login), so a
    cold file goes from Orthanc straight to the worker that decodes it."""

    base_url: str
    username: str | None
    password: str | None = field(repr=False)
    other_urls: tuple[str, ...] = ()
    """Other Orthancs of the same archive, read from when one does not answer (file_doors.py)."""


class RenderError(RuntimeError):
    """A worker could not do the job (an undecodable frame, a worker that died)."""


# --- inside a worker process -------------------------------------------------------------------


class _WorkerState:
    """A worker's frame cache and its own reader of Orthanc's files."""

    def __init__(self, cache_mb: float, source: FileSource) -> None:
        from viewer.cache import FrameCache

        from ..runtime.orthanc.file_doors import FileDoors
        from ..runtime.orthanc.file_reader import FrameFiles, OrthancFileReader

        self.cache = FrameCache(cache_mb)
        urls = (source.base_url, *source.other_urls)
        reader = FileDoors(
            [OrthancFileReader(url, source.username, source.password) for url in urls]
        )
        self.files = FrameFiles(reader.read, cache_mb)


def _worker_main(connection: Connection, cache_mb: float, source: FileSource) -> None:
    """A worker's whole life: answer jobs in order until the main process hangs up."""
    state = _WorkerState(cache_mb, source)
    jobs: dict[str, Callable[..., Any]] = {
        "render": _render_job,
        "values": _values_job,
        "warm": _warm_job,
        "pid": lambda _state, _ref: os.getpid(),
        "stats": lambda state, _ref: state.cache.stats(),
    }
    while True:
        try:
            name, ref, args = pickle.loads(connection.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            answer: tuple[bool, Any] = (True, jobs[name](state, ref, *args))
        except Exception as exc:  # the main process re-raises it for this request only
            answer = (False, exc)
        try:
            payload = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            payload = pickle.dumps((False, RenderError(repr(exc))), pickle.HIGHEST_PROTOCOL)
        try:
            connection.send_bytes(payload)
        except OSError:
            return


def _frame(state: _WorkerState, ref: FrameRef) -> Any:
    """The decoded frame from this worker's cache, or read from Orthanc and decoded now."""
    frame = state.cache.get(ref.key)
    if frame is None:
        from viewer import decode_frame

        frame = decode_frame(state.files.read(ref.orthanc_id, ref.frames), ref.index0)
        state.cache.put(ref.key, frame)
    return frame


def _render_job(state: _WorkerState, ref: FrameRef, options: Any) -> bytes:
    from viewer import render

    return render(_frame(state, ref), options)


def _values_job(state: _WorkerState, ref: FrameRef) -> tuple[bytes, str]:
    from viewer import modality_values

    return modality_values(_frame(state, ref))


def _warm_job(state: _WorkerState, ref: FrameRef) -> bool:
    """Decode into the cache."""
    _frame(state, ref)
    return True


# --- in the main process -----------------------------------------------------------------------


class _Channel(asyncio.Protocol):
    """The main side of one worker's socket: length-prefixed pickles, answers in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.buffer = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < HEADER.size + size:
                return
            payload = bytes(self.buffer[HEADER.size : HEADER.size + size])
            del self.buffer[: HEADER.size + size]
            future = self.pending.popleft()
            if not future.done():
                try:
                    ok, value = pickle.loads(payload)
                except Exception as exc:  # e.g. an exception class that cannot be rebuilt
                    ok, value = False, RenderError(f"unreadable answer from a worker: {exc!r}")
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def connection_lost(self, exc: Exception | None) -> None:
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(RenderError("the render worker stopped"))
        if not self.closed.done():
            self.closed.set_result(None)

    def call(self, message: bytes) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if self.transport is None or self.transport.is_closing():
            future.set_exception(RenderError("the render worker stopped"))
            return future
        self.pending.append(future)
        self.transport.write(HEADER.pack(len(message)) + message)
        return future


class _Worker:
    """One worker process and its channel; started on first use and after it dies."""

    def __init__(self, context: Any, cache_mb: float, source: FileSource) -> None:
        self.context, self.cache_mb, self.source = context, cache_mb, source
        self.process: Any = None
        self.channel: _Channel | None = None
        self._starting: asyncio.Lock = asyncio.Lock()

    async def channel_ready(self) -> _Channel:
        channel = self.channel
        if channel is not None and not channel.closed.done():
            return channel
        async with self._starting:
            if self.channel is None or self.channel.closed.done():
                await self._start()
        assert self.channel is not None
        return self.channel

    async def _start(self) -> None:
        if self.process is not None:
            await asyncio.to_thread(self._reap)
        ours, theirs = multiprocessing.Pipe(duplex=True)
        process = self.context.Process(
            target=_worker_main,
            args=(theirs, self.cache_mb, self.source),
            daemon=True,
            name="render",
        )
        await asyncio.to_thread(process.start)
        theirs.close()
        sock = socket.socket(fileno=os.dup(ours.fileno()))
        ours.close()
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        _, channel = await loop.connect_accepted_socket(_Channel, sock)
        self.process, self.channel = process, channel

    def _reap(self) -> None:
        if self.process is None:
            return
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)

    async def close(self) -> None:
        if self.channel is not None and self.channel.transport is not None:
            self.channel.transport.close()
        await asyncio.to_thread(self._reap)


class RenderWorkers:
    """The pool of render processes, started in ``cleanup_ctx``; they read files from
    ``source``."""

    def __init__(self, workers: int, cache_mb: float, source: FileSource) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["viewer", "viewer.cache", "service.viewing.rendering"])
        share = max(1.0, cache_mb / workers)
        self.workers = [_Worker(context, share, source) for _ in range(workers)]
        self.undecodable = UndecodableLog()
        self._prefetcher = Prefetcher(lambda ref: self._run(ref, "warm"))

    async def start(self) -> None:
        """Start every worker now (a first image should not wait for a process to start)."""
        await asyncio.gather(*(worker.channel_ready() for worker in self.workers))

    def _worker(self, ref: FrameRef) -> _Worker:
        return self.workers[zlib.crc32(ref.key.encode()) % len(self.workers)]

    async def _call(self, worker: _Worker, name: str, ref: Any, *args: Any) -> Any:
        message = pickle.dumps((name, ref, args), pickle.HIGHEST_PROTOCOL)
        channel = await worker.channel_ready()
        return await channel.call(message)

    async def _run(self, ref: FrameRef, name: str, *args: Any) -> Any:
        """Run a job in the frame's worker (which reads the file if it lacks the frame)."""
        return await self._call(self._worker(ref), name, ref, *args)

    async def render(self, ref: FrameRef, options: Any) -> bytes:
        return await self._run(ref, "render", options)

    async def values(self, ref: FrameRef) -> tuple[bytes, str]:
        return await self._run(ref, "values")

    async def pids(self) -> list[int]:
        return [await self._call(w, "pid", None) for w in self.workers]

    async def stats(self) -> list[dict[str, Any]]:
        return [await self._call(w, "stats", None) for w in self.workers]

    def prefetch(self, name: str, frames: Iterable[FrameRef]) -> None:
        self._prefetcher.start(name, frames)

    async def close(self) -> None:
        """Cancel prefetching and stop every worker process (waits for them to exit)."""
        await self._prefetcher.close()
        await asyncio.gather(*(worker.close() for worker in self.workers))
