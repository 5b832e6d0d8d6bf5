"""The audit chain's anchor: the head of the trail (its id, count and hash) kept outside the table.

A hash chain shows an edit anywhere in the trail but not the removal of its newest records: the
shortened chain is still a valid chain. The anchor is the head as last committed, written to a
file beside the database after every transaction that appended records, and ``teleread audit
verify`` compares it with the table: a trail that ends before the anchor, or holds another record
under the anchor's id, has been cut.

Ordering: the anchor is written *after* the commit, with the database's WAL made durable first,
so after a crash (even a power loss) the table can be ahead of the anchor (verify reports the lag,
which is not tampering) but never behind it. Writes are atomic (temporary file, fsync, rename)
and serialised between the processes serving one database by an exclusive ``flock`` on
``<anchor>.lock``; an anchor is only ever replaced by a newer head of the
same chain (the record under the old anchor's id must still carry the old anchor's hash), so a
trail cut behind the service's back never gets its evidence overwritten by the appends that
follow.

The file is not signed: whoever can rewrite the database file can rewrite a file beside it, and
a key the service can read would be readable to them too. Against that, keep anchors off the
machine: every export carries one, and ``teleread audit verify --anchor FILE`` checks the trail
against it (docs/audit.md).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT = "teleread-audit-anchor/1"


@dataclass(frozen=True)
class Anchor:
    """The head of the chain: the newest record's ``id`` and ``hash``, the number of records
    (``count``; equal to ``id``, as ids are consecutive from 1) and when it was written."""

    id: int
    count: int
    hash: str
    at: str = ""

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Anchor:
        """Parse an anchor file; ``ValueError`` when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a teleread audit anchor")
        try:
            anchor = cls(int(data["id"]), int(data["count"]), str(data["hash"]), str(data["at"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"incomplete audit anchor: {exc}") from exc
        if anchor.id < 0 or anchor.count < 0 or len(anchor.hash) != 64:
            raise ValueError("malformed audit anchor")
        return anchor


def anchor_path_for(database_path: Path) -> Path:
    """``teleread.db`` -> ``teleread.audit-anchor.json``, in the same (data) directory."""
    return database_path.with_name(f"{database_path.stem}.audit-anchor.json")


def read_anchor(path: Path) -> Anchor | None:
    """The anchor in ``path``; None when there is none. ``ValueError`` when it is garbled."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return Anchor.from_json(text)


def _fsync_path(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_anchor(
    path: Path, anchor: Anchor, hash_at: Callable[[int], str | None] | None = None
) -> bool:
    """Replace the anchor in ``path`` with ``anchor`` if it is newer and continues the same
    chain (``hash_at(old.id)`` is the old anchor's hash); True if written.

    Atomic (temp + fsync + rename) and serialised by ``flock`` between
    processes. A refusal to overwrite is logged: it means the trail no longer holds the
    anchored record, which verification will report.
    """
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            old = read_anchor(path)
        except ValueError:
            old = None  # garbled: verify says so until it is replaced
        if old is not None:
            if old.id >= anchor.id:
                return False
            if hash_at is not None and old.id > 0 and hash_at(old.id) != old.hash:
                log.error(
                    "audit anchor not advanced: the trail no longer holds record %d as anchored"
                    " (cut or rewritten?); run teleread audit verify",
                    old.id,
                )
                return False
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            out.write(anchor.to_json() + "\n")
            out.flush()
            os.fsync(out.fileno())
        # No fsync of the directory: if a crash loses the rename, the previous anchor is still
        # there, which only makes the anchor lag (the safe direction).
        os.replace(temporary, path)
    return True


class AnchorKeeper:
    """Writes the anchor on a thread of its own after commits, never delaying them.

    :meth:`offer` is called with the head right after each commit (on the writer thread); the
    keeper makes the database's WAL durable, then writes the newest head offered. Offers made
    while it writes, or during the :attr:`pause` after a write, are coalesced into the next:
    one fsync pair per batch of commits, at most one batch per pause. The pause exists because
    an fsync also flushes the WAL the writer is appending to: at one per request a single
    reader's worklist p50 went from 4.0 to 5.3-6.4 ms (bench/worklist.py, loaded machine).
    The price is a lag of at most the pause (plus the fsyncs) behind the head.
    """

    #: Seconds between two anchor writes (the most the anchor lags behind a steady stream).
    pause = 0.1

    def __init__(
        self,
        database_path: Path,
        anchor_path: Path,
        now: Callable[[], str],
        hash_at: Callable[[int], str | None],
        commits_durable: Callable[[], None] | None = None,
    ) -> None:
        """``hash_at(id)``: the stored hash of record ``id`` (called on the keeper's thread).
        ``commits_durable``: makes every commit so far survive a power loss before an anchor
        names it; by default the SQLite file's WAL is fsynced (a PostgreSQL commit already is
        durable, and its database says so with a no-op)."""
        self.path = anchor_path
        self._commits_durable = commits_durable or self._make_commits_durable
        self._database_path = database_path
        self._now = now
        self._hash_at = hash_at
        self._condition = threading.Condition()
        self._offered: tuple[int, str] | None = None
        self._written: tuple[int, str] | None = None
        self._busy = False
        self._stopping = False
        self._urgent = False
        self._last_write = -math.inf
        self._thread = threading.Thread(target=self._run, name="audit-anchor", daemon=True)
        self._thread.start()

    def offer(self, head: tuple[int, str] | None) -> None:
        """The chain's head as just committed (None: the trail is empty)."""
        if head is None:
            return
        with self._condition:
            if head == self._written or (self._offered and self._offered[0] >= head[0]):
                return
            self._offered = head
            self._condition.notify()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every head offered so far is written (or found not to be newer), without
        the pause between writes."""
        with self._condition:
            self._urgent = True
            self._condition.notify_all()
            self._condition.wait_for(lambda: self._offered is None and not self._busy, timeout)
            self._urgent = False

    def close(self) -> None:
        self.flush()
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._offered is not None or self._stopping)
                if self._offered is None:
                    return
                pause = self._last_write + self.pause - time.monotonic()
                if pause > 0:  # heads offered meanwhile are coalesced into this write
                    self._condition.wait_for(lambda: self._urgent or self._stopping, pause)
                head, self._offered, self._busy = self._offered, None, True
            try:
                self._write(head)
            except Exception:
                log.exception("could not write the audit anchor %s", self.path)
            finally:
                with self._condition:
                    self._last_write = time.monotonic()
                    self._busy = False
                    self._condition.notify_all()

    def _write(self, head: tuple[int, str]) -> None:
        self._commits_durable()
        anchor = Anchor(head[0], head[0], head[1], self._now())
        write_anchor(self.path, anchor, self._hash_at)
        self._written = head

    def _make_commits_durable(self) -> None:
        """fsync the WAL (``synchronous = NORMAL`` commits do not): the anchor must never
        survive a power loss that the records it names did not."""
        wal = self._database_path.with_name(self._database_path.name + "-wal")
        try:
            _fsync_path(wal)
        except FileNotFoundError:
            _fsync_path(self._database_path)
