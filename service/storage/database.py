"""The SQLite connection discipline: many readers, one writer, every write one transaction.

Modelled on Datasette: handlers never touch sqlite3. Reads run on a small thread pool with one
connection per thread; every write runs on a single writer thread inside ``BEGIN IMMEDIATE``,
so read-modify-write sequences (claims, cursor + consultation) are atomic without application
locks, and the event loop never blocks on disk.

WAL checkpoints run on a checkpointer thread of their own (PASSIVE, once a second) rather than
inside whichever commit crosses SQLite's auto-checkpoint threshold: that commit used to take
5-7 ms instead of 0.7 (bench/worklist.py, the audited worklist p95).

Several processes may serve the same database file (SO_REUSEPORT): :meth:`Database.version`
tells a read-through cache whether anything was committed since it read, by any of them.

Every write transaction reads the audit chain's head before it commits and hands it, after the
commit, to the :class:`~service.storage.audit_anchor.AnchorKeeper`, which keeps the anchor file that
shows a trail cut short (docs/audit.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import sqlite_utils

from ..clock import to_iso, utc_now
from .audit import append_audits, audit_head, record_hash
from .audit_anchor import AnchorKeeper, anchor_path_for
from .audit_chain import AuditEntry
from .schema import migrations
from .turnaround_columns import BlockCache

P = ParamSpec("P")
T = TypeVar("T")

GENERATION_SQL = "SELECT n FROM write_generation WHERE id = 1"
BUMP_GENERATION_SQL = "UPDATE write_generation SET n = n + 1 WHERE id = 1"

#: Most audit records one group commit appends (a burst beyond it takes several transactions).
AUDIT_BATCH = 256


class RecordNotFound(LookupError):
    """The requested row does not exist, or is outside the caller's scope."""


class Conflict(Exception):
    """The change contradicts the current state (duplicate, already done)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def connect(path: Path) -> sqlite_utils.Database:
    """Open a connection with the pragmas every connection of the service needs."""
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA synchronous = NORMAL")
    return sqlite_utils.Database(conn)


class Database:
    """The service's database: migrate once, then read concurrently and write serially."""

    def __init__(self, path: Path, readers: int = 4, checkpoints: bool = True) -> None:
        """``checkpoints``: run the background WAL checkpointer (one process per database
        file needs to: the primary web process, or a command on its own)."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._open_pools(readers)
        self._migrate()
        self._writer.submit(self._no_auto_checkpoint).result()
        self._version_lock = threading.Lock()
        self._version_conn = sqlite3.connect(
            str(path), timeout=0, check_same_thread=False, isolation_level=None
        )
        self._unknown_version = 0
        self._seen_data_version: int | None = None
        self._generation = 0
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if checkpoints:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="db-checkpointer", daemon=True
            )
            self._checkpointer.start()
        self._anchor_db: sqlite_utils.Database | None = None
        self.anchor = AnchorKeeper(
            path, anchor_path_for(path), lambda: to_iso(utc_now()), self._anchored_hash
        )

    def _open_pools(self, readers: int) -> None:
        """The per-thread connections, the writer and reader threads and the audit queue: the
        same on both engines (the PostgreSQL database calls it too)."""
        self._local = threading.local()
        self._all: list[sqlite_utils.Database] = []
        self._lock = threading.Lock()
        self.turnaround_blocks = BlockCache()
        """Decoded dashboard column blocks, shared by the reader threads (turnaround_columns)."""
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="db-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="db-reader")
        self._audit_queue: list[tuple[AuditEntry, asyncio.Future[int]]] = []
        self._audit_flush: asyncio.Task[None] | None = None
        self.audit_commits = 0
        """Transactions that appended audit records through :meth:`append_audit` (figures)."""
        self.audit_listeners: list[Callable[[], None]] = []
        """Called (on the event loop) after each commit of audit records: ATNA forwarding is
        woken by them rather than waiting for its next poll."""

    def _close_pools(self) -> None:
        """Close every thread's connection and the anchor's, and stop the pools."""

        def close_local() -> None:
            db = getattr(self._local, "db", None)
            if db is not None:
                db.conn.close()
                self._local.db = None

        self._writer.submit(close_local).result()
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.anchor.close()
        if self._anchor_db is not None:
            self._anchor_db.conn.close()
        with self._lock:
            for db in self._all:
                try:
                    db.conn.close()
                except sqlite3.ProgrammingError:
                    pass
            self._all.clear()

    def _anchored_hash(self, record_id: int) -> str | None:
        """For the anchor keeper's thread, on a connection of its own."""
        if self._anchor_db is None:
            self._anchor_db = connect(self.path)
        return record_hash(self._anchor_db, record_id)

    async def anchor_if_missing(self) -> None:
        """Write the anchor now if there is none yet (a trail from before anchors existed),
        rather than at the first audited request."""
        if not self.anchor.path.exists():
            self.anchor.offer(await self.read(audit_head))

    def version(self) -> int:
        """A token that changes whenever anything but audit records is committed to the file,
        by any connection of any process (this one's writer included). What read-through caches
        compare to know that nothing they hold can have changed (``service.auth.session_cache``).

        Every write transaction that changed a row counts itself in ``write_generation``
        (migration m020), except the group commits of audit records (:meth:`append_audit`),
        which change nothing a cache holds: otherwise every audited request would empty the
        session cache for the next one (bench/worklist.py: a database read per request).
        ``PRAGMA data_version``, on a connection of its own that never writes, says whether
        anything was committed at all; only then is the generation read again (one row).

        Called on the event loop: the WAL index in shared memory, and after a commit one page
        from the OS's cache, microseconds. If SQLite cannot answer at once (busy), the answer
        is a value never returned before, so the caller sees a change and reads afresh.
        """
        with self._version_lock:
            try:
                seen = int(self._version_conn.execute("PRAGMA data_version").fetchone()[0])
                if seen != self._seen_data_version:
                    (generation,) = self._version_conn.execute(GENERATION_SQL).fetchone()
                    self._seen_data_version, self._generation = seen, int(generation)
                return self._generation
            except sqlite3.Error:
                self._unknown_version -= 1
                return self._unknown_version

    def _no_auto_checkpoint(self) -> None:
        self._connection().conn.execute("PRAGMA wal_autocheckpoint = 0")

    def _checkpoint_loop(self, interval: float = 1.0) -> None:
        """Copy the WAL into the database in the background, never blocking a commit."""
        conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        try:
            while not self._stop_checkpoints.wait(interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # busy or closing: the next round catches up
        finally:
            conn.close()

    def _migrate(self) -> None:
        db = connect(self.path)
        try:
            db.conn.execute("PRAGMA journal_mode = WAL")
            migrations.apply(db)
        finally:
            db.conn.close()

    def _connection(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path)
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    def _run_write(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        return self._transaction(lambda db: fn(db, *args, **kwargs), counted=True)

    def _transaction(self, body: Callable[[sqlite_utils.Database], T], counted: bool) -> T:
        """One ``BEGIN IMMEDIATE`` transaction on the writer thread; ``counted``: if it changed
        a row, it moves the write generation (:meth:`version`)."""
        db = self._connection()
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            changes = db.conn.total_changes
            result = body(db)
            if counted and db.conn.total_changes != changes:
                db.execute(BUMP_GENERATION_SQL)
            head = audit_head(db)
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
        db.conn.execute("COMMIT")
        self.anchor.offer(head)
        return result

    def _audit_transaction(self, body: Callable[[sqlite_utils.Database], T]) -> T:
        """The group commit of audit records (:meth:`append_audit`): an ordinary write that
        moves no generation."""
        return self._transaction(body, counted=False)

    def _run_read(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        return fn(self._connection(), *args, **kwargs)

    async def read(
        self,
        fn: Callable[Concatenate[sqlite_utils.Database, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(db, ...)`` on a reader thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._readers, lambda: self._run_read(fn, *args, **kwargs)
        )

    async def write(
        self,
        fn: Callable[Concatenate[sqlite_utils.Database, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(db, ...)`` on the writer thread as one ``BEGIN IMMEDIATE`` transaction."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._writer, lambda: self._run_write(fn, *args, **kwargs)
        )

    async def write_bookkeeping(
        self,
        fn: Callable[Concatenate[sqlite_utils.Database, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like :meth:`write`, for a row no cached read depends on (the ATNA forwarding cursor,
        moved once per record forwarded): it leaves the write generation alone, so forwarding
        does not empty the session cache after every request, as audit appends do not."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._writer,
            lambda: self._transaction(lambda db: fn(db, *args, **kwargs), counted=False),
        )

    async def append_audit(self, entry: AuditEntry) -> int:
        """Append an audit record; its id once it is committed (group commit).

        Records of requests in flight share one transaction: the first goes at once, those
        arriving while it commits go together in the next, in arrival order, so the chain keeps
        the order the requests finished in. Each caller returns only after the transaction
        holding its record committed, and fails if it did not: nothing is answered without its
        record. A failed batch is retried one record per transaction, so one bad record fails
        only its own request. bench/worklist.py and bench/load.py give the figures.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._audit_queue.append((entry, future))
        if self._audit_flush is None or self._audit_flush.done():
            self._audit_flush = loop.create_task(self._flush_audits())
        return await asyncio.shield(future)

    async def _flush_audits(self) -> None:
        while self._audit_queue:
            batch = self._audit_queue[:AUDIT_BATCH]
            del self._audit_queue[:AUDIT_BATCH]
            try:
                await self._commit_audits(batch)
            except asyncio.CancelledError:  # shutting down: nothing may wait for ever
                for _, future in [*batch, *self._audit_queue]:
                    future.cancel()
                self._audit_queue.clear()
                raise

    async def _commit_audits(self, batch: list[tuple[AuditEntry, asyncio.Future[int]]]) -> None:
        try:
            entries = [entry for entry, _ in batch]
            ids = await asyncio.get_running_loop().run_in_executor(
                self._writer,
                lambda: self._audit_transaction(lambda db: append_audits(db, entries)),
            )
        except Exception as exc:
            if len(batch) > 1:
                for item in batch:
                    await self._commit_audits([item])
                return
            if not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        self.audit_commits += 1
        for (_, future), audit_id in zip(batch, ids, strict=True):
            if not future.done():
                future.set_result(audit_id)
        for listener in self.audit_listeners:
            listener()

    def write_sync(
        self,
        fn: Callable[Concatenate[sqlite_utils.Database, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """The same transaction discipline for the CLI, which has no event loop."""
        return self._writer.submit(lambda: self._run_write(fn, *args, **kwargs)).result()

    def read_sync(
        self,
        fn: Callable[Concatenate[sqlite_utils.Database, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        return self._readers.submit(lambda: self._run_read(fn, *args, **kwargs)).result()

    def close(self) -> None:
        """Close every thread's connection and stop the pools."""
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        self._close_pools()
        with self._version_lock:
            self._version_conn.close()
