"""Messages between the web processes of one teleread instance, over a Unix socket.

Several HTTP processes share one port (SO_REUSEPORT); a browser's request lands on whichever
process the kernel picks. Whatever one process learns that the others must act on travels here:
live worklist changes (so an SSE stream held by process B hears about a claim made through
process A) and nudges such as "kick the report delivery loop" (which only the primary runs).
Payloads are small JSON-able dicts; nothing here is durable, the database stays the truth and the
bus only says "look again, now".

Why a hub: the primary process listens on the socket and every secondary connects to it, so the
topology is a star with one connection per secondary. A secondary's message goes to the hub
(whose handlers run) and the hub relays it to every other secondary. Nobody has to discover
anybody, and order from one sender to one receiver is preserved because each hop is one
ordered stream.

When the primary dies, the hub goes with it: each secondary's connection ends and its
:attr:`ProcessBus.lost` future resolves. The secondary then exits, because without the primary
nothing runs the background tasks and nothing would relay its messages; the supervisor restarts
the whole instance. The hub also drops a peer whose unread backlog grows past ``max_buffer``
(a stuck process must never make the sender wait or grow its memory without bound); that peer
sees the same end of connection and exits too.

Wire format: one compact JSON object per line, ``{"topic": ..., "payload": {...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import os
import pathlib
import stat
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]

# sun_path is 108 bytes on Linux, one of which is the terminating NUL.
MAX_PATH_BYTES = 107
MAX_BUFFER = 4 * 1024 * 1024
# One line on the wire; far above any real payload, low enough that garbage cannot eat memory.
MAX_MESSAGE = 1024 * 1024
RETRY_SECONDS = 0.05


class BusConnectError(ConnectionError):
    """A peer could not reach the hub in time (the primary process is not running)."""


class _Link:
    """One open stream to another process: the hub's view of a peer, or a peer's view of the hub."""

    _ids = itertools.count(1)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.id = next(self._ids)
        self.reader = reader
        self.writer = writer

    @property
    def open(self) -> bool:
        return not self.writer.is_closing()

    def abort(self) -> None:
        """Drop the link now, discarding anything still buffered (it could be megabytes)."""
        self.writer.transport.abort()


class ProcessBus:
    """Messages between the web processes of one teleread instance over a Unix socket.

    ``hub=True`` in the primary process (listens), ``hub=False`` in each secondary (connects).
    Handlers only ever see messages from other processes; :meth:`send` never echoes back.
    """

    def __init__(
        self,
        path: pathlib.Path,
        hub: bool,
        connect_timeout: float = 10.0,
        max_buffer: int = MAX_BUFFER,
    ) -> None:
        path = pathlib.Path(path)
        size = len(os.fsencode(path))
        if size > MAX_PATH_BYTES:
            raise ValueError(
                f"process bus socket path is {size} bytes, Unix sockets allow at most "
                f"{MAX_PATH_BYTES}: {path} (use a shorter data directory)"
            )
        self.path = path
        self.hub = hub
        self.connect_timeout = connect_timeout
        self.max_buffer = max_buffer
        self._handlers: dict[str, list[Handler]] = {}
        self._links: dict[int, _Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self._lost: asyncio.Future[None] | None = None
        self._closed = False

    # -- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (hub) or connect, retrying until ``connect_timeout`` (peer)."""
        if self.hub:
            await self._listen()
        else:
            await self._connect()

    async def _listen(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self._remove_stale_socket()
        self._server = await asyncio.start_unix_server(
            self._serve_peer, path=self.path, limit=MAX_MESSAGE
        )
        # Only this user's processes may talk on the bus; the parent directory should be
        # private too, which closes the short window between bind and chmod.
        os.chmod(self.path, 0o600)
        self._inode = self.path.stat().st_ino
        log.debug("process bus hub listening on %s", self.path)

    async def _remove_stale_socket(self) -> None:
        """A socket file left by a primary that crashed would make bind fail; a live one is an
        error (two primaries would each run the background tasks)."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise FileExistsError(f"process bus path exists and is not a socket: {self.path}")
        try:
            _, writer = await asyncio.open_unix_connection(self.path)
        except (ConnectionRefusedError, FileNotFoundError):
            self.path.unlink(missing_ok=True)
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        raise RuntimeError(f"another process bus hub is already listening on {self.path}")

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.path, limit=MAX_MESSAGE)
                break
            except (FileNotFoundError, ConnectionRefusedError) as error:
                if loop.time() >= deadline:
                    raise BusConnectError(
                        f"no process bus hub at {self.path} after {self.connect_timeout:g} s "
                        f"(is the primary teleread process running?): {error}"
                    ) from error
                await asyncio.sleep(RETRY_SECONDS)
        link = _Link(reader, writer)
        self._links[link.id] = link
        task = asyncio.create_task(self._read(link), name="process-bus-peer")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.debug("process bus peer connected to %s", self.path)

    async def close(self) -> None:
        """Stop serving, drop every link, cancel readers; the hub removes its socket file."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        for link in list(self._links.values()):
            link.writer.close()
        self._links.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._remove_own_socket()
        self._resolve_lost()

    def _remove_own_socket(self) -> None:
        """Unlink the socket only if it is still ours, not one a newer hub bound since."""
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()

    # -- messages ---------------------------------------------------------------------------

    def on(self, topic: str, handler: Handler) -> None:
        """Call ``handler(payload)`` for each ``topic`` message from another process.

        Handlers run synchronously in the bus's reader task, in arrival order, so they must be
        quick; one that needs to await should schedule its own task. One that raises is logged
        and the next message is handled as usual.
        """
        if inspect.iscoroutinefunction(handler):
            raise TypeError("process bus handlers are synchronous; schedule a task from one")
        self._handlers.setdefault(topic, []).append(handler)

    def send(self, topic: str, payload: dict[str, Any]) -> None:
        """Deliver to every other process on the bus, without waiting.

        Raises TypeError/ValueError for a payload that is not JSON-able or too large (a caller
        bug); a peer that cannot keep up is dropped rather than waited for.
        """
        line = encode(topic, payload)
        self._write_all(line, skip=None)

    def _write_all(self, line: bytes, skip: int | None) -> None:
        if not self._links and not self.hub:
            log.warning("process bus not connected; dropped a message to the hub")
        for link in list(self._links.values()):
            if link.id != skip:
                self._write(link, line)

    def _write(self, link: _Link, line: bytes) -> None:
        if not link.open:
            return
        link.writer.write(line)
        backlog = link.writer.transport.get_write_buffer_size()
        if backlog > self.max_buffer:
            log.warning(
                "process bus: dropping %s %d with %d bytes unread (not reading)",
                "peer" if self.hub else "hub",
                link.id,
                backlog,
            )
            self._links.pop(link.id, None)
            link.abort()

    @property
    def peers(self) -> int:
        """Hub: connected peers. Peer: 1 while connected to the hub, else 0."""
        return sum(1 for link in self._links.values() if link.open)

    @property
    def lost(self) -> asyncio.Future[None]:
        """Resolved when this bus stops carrying messages: for a peer, when the connection to
        the hub ends (the primary died, dropped us, or :meth:`close`); for the hub, at close."""
        if self._lost is None:
            self._lost = asyncio.get_running_loop().create_future()
        return self._lost

    def _resolve_lost(self) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    # -- reading ----------------------------------------------------------------------------

    async def _serve_peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = _Link(reader, writer)
        self._links[link.id] = link
        log.debug("process bus peer %d connected", link.id)
        try:
            await self._read(link)
        except asyncio.CancelledError:
            # close() cancels us; asyncio's server callback (3.11) would otherwise log the
            # cancellation as an unhandled exception. Nothing awaits this task but close().
            pass
        finally:
            self._tasks.discard(task)

    async def _read(self, link: _Link) -> None:
        """Handle one link's messages in order until it ends; then forget it."""
        try:
            while True:
                try:
                    line = await link.reader.readline()
                except ValueError:  # a line over MAX_MESSAGE: the stream cannot be trusted
                    log.warning("process bus: oversized message from link %d; dropping", link.id)
                    break
                if not line:
                    break
                message = decode(line)
                if message is None:
                    log.warning("process bus: malformed message from link %d ignored", link.id)
                    continue
                topic, payload = message
                if self.hub:
                    self._write_all(line, skip=link.id)
                self._dispatch(topic, payload)
        except (ConnectionError, OSError) as error:
            log.debug("process bus link %d ended: %s", link.id, error)
        finally:
            self._links.pop(link.id, None)
            link.writer.close()
            if not self.hub:
                log.info("process bus: connection to the hub at %s ended", self.path)
                self._resolve_lost()

    def _dispatch(self, topic: str, payload: dict[str, Any]) -> None:
        for handler in self._handlers.get(topic, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("process bus handler for %r failed", topic)


def encode(topic: str, payload: dict[str, Any]) -> bytes:
    """One wire line. Compact JSON escapes every newline, so a line is always one message."""
    line = json.dumps({"topic": topic, "payload": payload}, separators=(",", ":")).encode()
    if len(line) >= MAX_MESSAGE:
        raise ValueError(f"process bus message on {topic!r} is {len(line)} bytes, too large")
    return line + b"\n"


def decode(line: bytes) -> tuple[str, dict[str, Any]] | None:
    """``(topic, payload)`` from a wire line, or None if it is not a well-formed message."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    topic, payload = message.get("topic"), message.get("payload")
    if not isinstance(topic, str) or not isinstance(payload, dict):
        return None
    return topic, payload
