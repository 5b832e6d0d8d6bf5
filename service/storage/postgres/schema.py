"""The PostgreSQL schema's migrations: frozen, applied once, in order, before serving.

SQLite's migrations (service/storage/schema.py) are 45 steps from an empty file; a PostgreSQL
database starts where they stood when it came (``m045_baseline.sql``, the same tables, columns,
indexes and triggers, said in PostgreSQL's words). Every later change is a migration in both
lists, with the same name. Several replicas may start at once: the first takes an advisory lock
for the whole migration and the others wait for it, then find nothing to do.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from importlib.resources import files

from ...clock import to_iso, utc_now
from ..schema import LEADER_FENCING_SQL
from .connection import PostgresConnection

#: pg_advisory_lock key held while migrating (any constant unique to teleread's locks).
MIGRATION_LOCK = 7_245_001

Migration = Callable[[PostgresConnection], None]


def m045_baseline(db: PostgresConnection) -> None:
    db.executescript(files(__package__).joinpath("m045_baseline.sql").read_text("utf-8"))
    # A per-install secret, as SQLite's m039 makes it: never the same on two installs.
    db.execute(
        "INSERT INTO peer_review_state (id, secret, drawn_through) VALUES (1, ?, 0)",
        [secrets.token_bytes(32)],
    )
    # Rows given their id (report templates) leave the identity behind them.
    for (table,) in db.execute(
        "SELECT table_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND column_name = 'id' AND is_identity = 'YES'"
    ).fetchall():
        db.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
            f" (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
        )


def m046_turnaround_received_index(db: PostgresConnection) -> None:
    """As SQLite's m046: the dashboard's review stages select facts by their received time."""
    db.executescript(
        "CREATE INDEX turnaround_facts_received ON turnaround_facts(received_at, facility_id);"
    )


def m047_leader_fencing(db: PostgresConnection) -> None:
    """As SQLite's m047: lease epochs, and claims on deliveries and HL7 results."""
    db.executescript(LEADER_FENCING_SQL.format(integer="BIGINT"))


MIGRATIONS: list[tuple[str, Migration]] = [
    ("m045_baseline", m045_baseline),
    ("m046_turnaround_received_index", m046_turnaround_received_index),
    ("m047_leader_fencing", m047_leader_fencing),
]


def apply(db: PostgresConnection) -> list[str]:
    """Apply the migrations not applied yet, each in its own transaction; their names."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _teleread_migrations"
        " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    applied: list[str] = []
    db.execute("SELECT pg_advisory_lock(?)", [MIGRATION_LOCK])
    try:
        done = {row[0] for row in db.execute("SELECT name FROM _teleread_migrations")}
        for name, migration in MIGRATIONS:
            if name in done:
                continue
            db.execute("BEGIN")
            try:
                migration(db)
                db.execute(
                    "INSERT INTO _teleread_migrations (name, applied_at) VALUES (?, ?)",
                    [name, to_iso(utc_now())],
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            applied.append(name)
    finally:
        db.execute("SELECT pg_advisory_unlock(?)", [MIGRATION_LOCK])
    return applied


def identity_tables_of(url: str) -> frozenset[str]:
    """:func:`identity_tables` of the database at ``url``."""
    db = PostgresConnection(url)
    try:
        return identity_tables(db)
    finally:
        db.close()


def identity_tables(db: PostgresConnection) -> frozenset[str]:
    """Tables whose ``id`` is an identity: an INSERT into one returns its ``lastrowid``."""
    return frozenset(
        row[0]
        for row in db.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND column_name = 'id' AND is_identity = 'YES'"
        )
    )
