"""The service's database on PostgreSQL: the same discipline as on SQLite, made explicit.

:class:`~service.storage.database.Database` on SQLite gets three things from the engine for free:
one writer at a time (``BEGIN IMMEDIATE``), so every read-modify-write (a claim, a cursor and its
work) is atomic; one audit chain, appended by that one writer; and ``PRAGMA data_version`` to tell
a cache that another process committed. With several replicas on PostgreSQL each is said here:

- every write transaction runs ``SERIALIZABLE``: PostgreSQL lets replicas write at once and aborts
  one of two transactions whose interleaving no serial order could give (a serialization
  failure); the transaction is then run again from the start, up to :data:`WRITE_ATTEMPTS` times.
  A storage function is a pure function of its connection, so running it again is safe. Twenty
  replicas claiming one study: one claim commits, the others re-run and find it claimed
  (tests/test_postgres_replicas.py);
- audit records are appended under an advisory lock on the chain (``storage.audit``), in
  ``READ COMMITTED`` transactions so each reads the head after the lock is granted; a unique
  index on ``prev_hash`` makes a fork impossible whatever transaction appends;
- :meth:`version` counts notifications on ``teleread_generation`` (``LISTEN``), sent at the commit
  of every transaction that changed a row, by any replica.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import errors

from ...clock import to_iso, utc_now
from ..audit import audit_head, record_hash
from ..audit_anchor import AnchorKeeper, anchor_path_for
from ..database import Database
from . import schema
from .connection import PostgresConnection

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many times a write transaction is run before its serialization failure is the caller's.
WRITE_ATTEMPTS = 30
GENERATION_CHANNEL = "teleread_generation"
NOTIFY_GENERATION_SQL = f"SELECT pg_notify('{GENERATION_CHANNEL}', ?)"
RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected)
#: The unique index that keeps the audit chain one chain (m045_baseline.sql).
CHAIN_INDEX = "audit_log_prev_hash"


class PostgresDatabase(Database):
    """``Database``'s interface (read, write, append_audit, version...) on a PostgreSQL URL."""

    def __init__(self, url: str, anchor_beside: Path, readers: int = 4) -> None:
        """``anchor_beside``: the path the audit anchor file is named after (the data
        directory's ``teleread.db``, which need not exist)."""
        self.url = url
        self.origin = secrets.token_hex(8)
        """Names this replica's notifications, which its own listener ignores: its commits
        count themselves at once (a second count would empty its caches for nothing)."""
        self.path = anchor_beside
        anchor_beside.parent.mkdir(parents=True, exist_ok=True)
        self._open_pools(readers)
        setup = PostgresConnection(url)
        try:
            schema.apply(setup)
            self.identity_tables = schema.identity_tables(setup)
        finally:
            setup.close()
        self._generation = 0
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="db-generation", daemon=True)
        self._listener.start()
        self._listening.wait(10)
        self.serialization_retries = 0
        """Write transactions run again after a serialization failure (figures)."""
        self._anchor_db: PostgresConnection | None = None  # type: ignore[assignment]
        self.anchor = AnchorKeeper(
            anchor_beside,
            anchor_path_for(anchor_beside),
            lambda: to_iso(utc_now()),
            self._anchored_hash,
            commits_durable=lambda: None,  # a PostgreSQL commit is on disk when it returns
        )

    def _anchored_hash(self, record_id: int) -> str | None:
        if self._anchor_db is None:
            self._anchor_db = PostgresConnection(self.url, self.identity_tables)
        return record_hash(self._anchor_db, record_id)  # type: ignore[arg-type]

    @property
    def _closing_channel(self) -> str:
        """This object's own channel, on which :meth:`close` wakes its listener (no other
        replica listens: a replica's closing moves no one else's generation)."""
        return f"teleread_closing_{self.origin}"

    def version(self) -> int:
        """Moves whenever a transaction that changed a row commits, on any replica: the local
        commits count themselves at once, the others as their notification arrives
        (milliseconds later)."""
        return self._generation

    def _listen(self) -> None:
        """Count ``teleread_generation`` notifications; reconnect (and count a change, since
        some may have been missed meanwhile) when the connection is lost."""
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {GENERATION_CHANNEL}")
                    conn.execute(f"LISTEN {self._closing_channel}")
                    self._generation += 1
                    self._listening.set()
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=0.5, stop_after=1):
                            if notice.channel == GENERATION_CHANNEL and (
                                notice.payload != self.origin
                            ):
                                self._generation += 1
            except psycopg.Error:
                if self._stop.wait(0.5):
                    return
                log.warning("lost the database's change notifications; reconnecting")

    def _connection(self) -> PostgresConnection:  # type: ignore[override]
        db = getattr(self._local, "db", None)
        if db is None or db.pg.closed:
            db = PostgresConnection(self.url, self.identity_tables)
            db.execute("SELECT set_config('teleread.origin', ?, false)", [self.origin])
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    def _transaction(self, body: Callable[..., T], counted: bool) -> T:  # type: ignore[override]
        return self._run_transaction(body, counted, "SERIALIZABLE")

    def _audit_transaction(self, body: Callable[..., T]) -> T:
        """The group commit of audit records: READ COMMITTED, so that the head read after the
        chain's lock is granted is the head as it is then (a serializable snapshot would be
        the one taken before the wait)."""
        return self._run_transaction(body, False, "READ COMMITTED")

    def _run_transaction(self, body: Callable[..., T], counted: bool, isolation: str) -> T:
        db = self._connection()
        for attempt in range(WRITE_ATTEMPTS):
            db.execute(f"BEGIN ISOLATION LEVEL {isolation}")
            try:
                changes = db.total_changes
                result = body(db)
                changed = db.total_changes != changes
                if counted and changed:
                    db.execute(NOTIFY_GENERATION_SQL, [self.origin])
                head = audit_head(db)  # type: ignore[arg-type]
                db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(psycopg.Error):
                    db.execute("ROLLBACK")
                if attempt + 1 < WRITE_ATTEMPTS and _retryable(exc):
                    self.serialization_retries += 1
                    time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                    continue
                raise
            if counted and changed:
                self._generation += 1
            self.anchor.offer(head)
            return result
        raise AssertionError("unreachable")

    def close(self) -> None:
        """The listener is woken rather than left to notice at its next half-second poll:
        every close took 0.5 s (each PostgreSQL app of the test suite paid it at teardown)."""
        self._stop.set()
        with contextlib.suppress(psycopg.Error):  # unreachable: it notices at its next poll
            self._writer.submit(
                lambda: self._connection().execute(
                    "SELECT pg_notify(?, '')", [self._closing_channel]
                )
            ).result()
        self._listener.join()
        self._close_pools()


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, RETRYABLE):
        return True
    return (
        isinstance(exc, errors.UniqueViolation)
        and getattr(exc.diag, "constraint_name", None) == CHAIN_INDEX
    )
