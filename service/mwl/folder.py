"""The folder of worklist item files: made equal to what the database says, atomically.

Orthanc's plugin reads every ``*.wl`` file of the folder on each query, at any moment, so a file
is never written in place: it is written to a hidden temporary name in the same folder and
renamed over the old one (a reader sees the old file or the new one, never half of one). Files
and folder are private to the service's user (Orthanc runs as that user, or as root in the
compose stack). Synchronous: callers run it on a thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".wl"


@dataclass(frozen=True)
class Reconciled:
    """What one pass changed (file names)."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.written or self.removed)


def reconcile(folder: Path, wanted: Mapping[str, bytes]) -> Reconciled:
    """Write every wanted file whose content differs, remove every other ``.wl`` file (and
    temporary files a crash left behind)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    result = Reconciled()
    present = {path.name: path for path in folder.iterdir() if path.is_file()}
    for name, content in wanted.items():
        path = present.get(name)
        if path is not None and _read(path) == content:
            continue
        write_atomically(folder / name, content)
        result.written.append(name)
    for name, path in present.items():
        if name not in wanted and (name.endswith(SUFFIX) or name.startswith(".tmp-")):
            path.unlink(missing_ok=True)
            if name.endswith(SUFFIX):
                result.removed.append(name)
    return result


def write_atomically(path: Path, content: bytes) -> None:
    """``content`` at ``path`` (mode 0600) by temporary file, fsync and rename."""
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
