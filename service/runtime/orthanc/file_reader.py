"""Instance files from Orthanc, read on the renderer's threads with a blocking HTTP client.

A cold frame needs its whole Part-10 file (half a megabyte for a 512² CT slice). Read through
aiohttp on the event loop, that costs 0.65 ms of CPU per file (the body arrives as many small
chunks joined at the end); ``http.client`` on a kept-alive connection reads it into one buffer
for 0.23 ms, and does so on a renderer thread with the GIL released while it waits, so the fetch,
the decode and the render of a cold frame are one trip to the pool (bench/render.py's cold case).

Each thread keeps its own connection (``http.client`` connections are not thread-safe) and
reconnects once when Orthanc has closed an idle one; ``close`` closes them all.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from ...caching import LruCache
from .auth import basic_auth_header
from .client import OrthancError, OrthancUnavailable

TIMEOUT = 60.0
# A kept-alive connection that Orthanc closed shows up as one of these on the next request.
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class OrthancFileReader:
    """``read(orthanc_id)``: the instance's file bytes; thread-safe, blocking."""

    def __init__(
        self,
        base_url: str,
        username: str | None,
        password: str | None,
        timeout: float = TIMEOUT,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept-Encoding": "identity", "Accept": "application/dicom"}
        if username:
            self.headers.update(basic_auth_header(username, password or ""))
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
                with self._lock:
                    if connection in self._all:
                        self._all.remove(connection)
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            connection = kind(self.host, self.port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def read(self, orthanc_id: str) -> bytes:
        path = f"{self.prefix}/instances/{quote(orthanc_id, safe='')}/file"
        for attempt in (1, 2):
            connection = self._connection(fresh=attempt == 2)
            try:
                connection.request("GET", path, headers=self.headers)
                response = connection.getresponse()
                body = response.read()
            except STALE as exc:
                connection.close()
                if attempt == 2:
                    raise OrthancUnavailable(0, f"{type(exc).__name__}: {exc}") from exc
                continue
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                connection.close()
                raise OrthancUnavailable(0, f"{type(exc).__name__}: {exc}") from exc
            if response.status in (502, 503, 504):
                raise OrthancUnavailable(response.status, response.reason or "")
            if response.status >= 400:
                raise OrthancError(response.status, response.reason or "")
            return body
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every thread's connection (call once the threads are done with it)."""
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()


FILE_SHARE = 8  # kept multi-frame files may use 1/8 of the frame cache's memory

ReadFile = Callable[[str], bytes]


class _KeptFiles:
    """Raw files, least recently used dropped first (thread-safe)."""

    def __init__(self, megabytes: float) -> None:
        self.capacity = int(megabytes * 1024 * 1024)
        self._files: LruCache[str, bytes] = LruCache(self.capacity, weigh=len)
        self._lock = threading.Lock()
        self._reading: dict[str, threading.Lock] = {}

    def get_or_read(self, orthanc_id: str, read: ReadFile) -> bytes:
        """The kept file, or read once while other threads wanting it wait."""
        data = self.get(orthanc_id)
        if data is not None:
            return data
        with self._lock:
            reading = self._reading.setdefault(orthanc_id, threading.Lock())
        try:
            with reading:
                data = self.get(orthanc_id)
                if data is None:
                    data = read(orthanc_id)
                    self.put(orthanc_id, data)
        finally:
            with self._lock:
                if self._reading.get(orthanc_id) is reading:
                    del self._reading[orthanc_id]
        return data

    def get(self, orthanc_id: str) -> bytes | None:
        return self._files.get(orthanc_id)

    def put(self, orthanc_id: str, data: bytes) -> None:
        self._files.put(orthanc_id, data)

    @property
    def size(self) -> int:
        """Bytes kept now."""
        return int(self._files.weight)


class FrameFiles:
    """The file a frame is decoded from: read each time for a single-frame instance (its frame
    is cached decoded), kept for a multi-frame one so its next frames need no second read;
    concurrent readers of one multi-frame file wait for a single read."""

    def __init__(self, read: ReadFile, cache_mb: float) -> None:
        self._read = read
        self._kept = _KeptFiles(max(8.0, cache_mb / FILE_SHARE))

    def read(self, orthanc_id: str, frames: int) -> bytes:
        if frames <= 1:
            return self._read(orthanc_id)
        return self._kept.get_or_read(orthanc_id, self._read)
