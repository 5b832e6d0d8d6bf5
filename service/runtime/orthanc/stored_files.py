"""Instance files read straight from the managed Orthanc's storage area, not over HTTP.

A cold frame needs its instance's whole file. Asked of Orthanc over HTTP, a 512 KB CT slice
costs about 0.35–0.45 ms of Orthanc's CPU and 0.35–0.40 ms of ours (request, headers, the body
through a socket); read from the file Orthanc stored, 0.15–0.18 ms of ours and none of Orthanc's
(docs/viewer.md, "Measuring"). teleread's own Orthanc (``ManagedOrthanc``) keeps each attachment
uncompressed (``StorageCompression`` false) in its storage directory, at
``<storage>/<uuid[0:2]>/<uuid[2:4]>/<uuid>``, the uuid being the attachment's ``FileUuid`` that
Orthanc lists with each instance (``/studies/{id}/instances``), as it has for every version.

Only what Orthanc itself listed is read: an instance's location is noted from a study layout
(:meth:`StoredFiles.note`), and the file is taken only when it is there with exactly the size
Orthanc listed. Anything else — an instance never listed, a file gone (deleted, or an Orthanc
elsewhere whose uuids name no file here), a size that differs (a file stored compressed) — is read
over HTTP as before, so the answer is the same bytes or the same error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...caching import LruCache
from .file_reader import ReadFile

# Orthanc's attachment uuids: 36 characters, lower-case hex and hyphens (Toolbox::GenerateUuid).
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KNOWN = 200_000  # instance locations remembered (about 100 bytes each)


class StoredFiles:
    """``read(orthanc_id)``: the instance's file from the storage area when its location is
    known, else ``read_over_http``; thread-safe, blocking (call it on a worker thread)."""

    def __init__(self, storage: Path, read_over_http: ReadFile) -> None:
        self.storage = storage
        self._http = read_over_http
        self._where: LruCache[str, tuple[str, int]] = LruCache(KNOWN)
        self.from_disk = 0
        self.over_http = 0

    @classmethod
    def beside(cls, storage: Path, read_over_http: ReadFile) -> StoredFiles | None:
        """Readers for the storage area ``storage`` if it is a directory here, else None (an
        Orthanc elsewhere: every file comes over HTTP)."""
        return cls(storage, read_over_http) if storage.is_dir() else None

    def note(self, orthanc_id: str, file_uuid: str, file_size: int) -> None:
        """Orthanc listed ``orthanc_id``'s file as attachment ``file_uuid`` of ``file_size``
        bytes; a malformed uuid is ignored (it could name a path outside the storage area)."""
        if file_size > 0 and UUID.fullmatch(file_uuid):
            self._where.put(orthanc_id, (file_uuid, file_size))

    def read(self, orthanc_id: str) -> bytes:
        where = self._where.get(orthanc_id)
        if where is not None:
            data = self._from_disk(*where)
            if data is not None:
                self.from_disk += 1
                return data
        self.over_http += 1
        return self._http(orthanc_id)

    def _from_disk(self, file_uuid: str, size: int) -> bytes | None:
        path = self.storage / file_uuid[:2] / file_uuid[2:4] / file_uuid
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            data = os.read(fd, size + 1)  # one byte more: a longer file is not the one listed
        except OSError:
            return None
        finally:
            os.close(fd)
        return data if len(data) == size else None
