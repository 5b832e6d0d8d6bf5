"""The viewer's blocking file reads from Orthancs sharing one index (docs/scaling.md): the first
that answers, as :class:`~service.runtime.orthanc.client.OrthancClient` does for the rest.

A file read is a GET, so when the Orthanc in use does not answer, the same read is sent at once
to the next, which stays the one used: a reader never sees the door that died.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from .client import OrthancUnavailable

log = logging.getLogger(__name__)


class FileReader(Protocol):
    def read(self, orthanc_id: str) -> bytes: ...

    def close(self) -> None: ...


class FileDoors:
    """``read(orthanc_id)`` from the current reader, turning to the next when it is unavailable;
    thread-safe, blocking (as each reader)."""

    def __init__(self, readers: Sequence[FileReader]) -> None:
        self._readers = list(readers)
        self._current = 0
        self._lock = threading.Lock()

    def read(self, orthanc_id: str) -> bytes:
        for attempt in range(len(self._readers)):
            door = self._current
            try:
                return self._readers[door].read(orthanc_id)
            except OrthancUnavailable as exc:
                self._leave(door, exc)
                if attempt == len(self._readers) - 1:
                    raise
        raise AssertionError("unreachable")

    def _leave(self, door: int, exc: OrthancUnavailable) -> None:
        with self._lock:
            if self._current == door:
                self._current = (door + 1) % len(self._readers)
                log.warning("file reads: Orthanc %d unavailable (%s); next one", door, exc)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
