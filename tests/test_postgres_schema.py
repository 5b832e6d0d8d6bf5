"""The PostgreSQL schema says what SQLite's migrations say: the same tables, columns, indexes and
rules, so one storage function fits both; and the translation of SQLite's SQL reads right."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from service.storage.audit import append_audit
from service.storage.audit_chain import AuditEntry
from service.storage.postgres import schema
from service.storage.postgres.connection import PostgresConnection
from service.storage.postgres.dialect import script_statements, translate

from . import backends

#: SQLite's declared types as the baseline says them in PostgreSQL.
TYPES = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision", "BLOB": "bytea"}
#: Kept by one engine only, each for a reason said where it is made.
SQLITE_ONLY_TABLES = {"_sqlite_migrations", "sqlite_sequence"}
POSTGRES_ONLY_TABLES = {"_teleread_migrations"}
POSTGRES_ONLY_COLUMNS = {("audit_patients", "rowid")}
POSTGRES_ONLY_INDEXES = {"audit_log_prev_hash"}


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory) -> str:
    return backends.new_database_url(tmp_path_factory.mktemp("schema"))


def sqlite_schema(path: Path) -> tuple[dict[tuple[str, str], str], set[str], set[str]]:
    conn = sqlite3.connect(path)
    try:
        tables = [
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if row[0] not in SQLITE_ONLY_TABLES
        ]
        columns = {
            (table, row[1]): TYPES[row[2]]
            for table in tables
            for row in conn.execute(f'PRAGMA table_xinfo("{table}")')
        }
        indexes = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
            if "_sqlite_migrations" not in row[0]
        }
        triggers = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
        return columns, indexes, triggers
    finally:
        conn.close()


def postgres_schema(url: str) -> tuple[dict[tuple[str, str], str], set[str], set[str]]:
    with psycopg.connect(url) as conn:
        columns = {
            (table, column): kind
            for table, column, kind in conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema()"
            )
            if table not in POSTGRES_ONLY_TABLES and (table, column) not in POSTGRES_ONLY_COLUMNS
        }
        indexes = {
            row[0]
            for row in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                " AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'"
            )
        } - POSTGRES_ONLY_INDEXES
        triggers = {
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT trigger_name FROM information_schema.triggers"
                " WHERE trigger_schema = current_schema()"
            )
        }
        return columns, indexes, triggers


def test_the_postgresql_schema_has_sqlites_tables_columns_indexes_and_triggers(
    postgres_url, migrated_database
):
    """A migration added to one engine and not the other fails here, naming what differs."""
    sqlite_columns, sqlite_indexes, sqlite_triggers = sqlite_schema(migrated_database)
    pg_columns, pg_indexes, pg_triggers = postgres_schema(postgres_url)
    assert set(sqlite_columns) - set(pg_columns) == set()
    assert set(pg_columns) - set(sqlite_columns) == set()
    assert {k for k in sqlite_columns if sqlite_columns[k] != pg_columns[k]} == set()
    assert sqlite_indexes - pg_indexes == set()
    assert pg_indexes - sqlite_indexes == set()
    assert sqlite_triggers == pg_triggers


def test_migrations_apply_once_and_a_second_replica_finds_nothing_to_do(postgres_url):
    db = PostgresConnection(postgres_url)
    try:
        assert schema.apply(db) == []
        names = [row[0] for row in db.execute("SELECT name FROM _teleread_migrations")]
        assert names == [name for name, _ in schema.MIGRATIONS]
    finally:
        db.close()


def test_append_only_rules_hold_on_postgresql(postgres_url):
    """The triggers refuse what SQLite's RAISE(ABORT) refused, with the same words."""
    db = PostgresConnection(postgres_url, schema.identity_tables_of(postgres_url))
    try:
        append_audit(
            db, AuditEntry(at="2026-12-03T00:00:00.000000Z", action="x", outcome="success")
        )
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            db.execute("DELETE FROM audit_log")
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            db.execute("UPDATE audit_log SET outcome = 'changed'")
    finally:
        db.close()


def test_each_install_draws_its_own_peer_review_secret(tmp_path):
    """The baseline makes the per-install secret at migration, as SQLite's m039 does: two
    databases never share it."""
    secrets = []
    for _ in range(2):
        url = backends.server().new_database()
        db = PostgresConnection(url)
        try:
            schema.apply(db)
            secrets.append(bytes(db.execute("SELECT secret FROM peer_review_state").fetchone()[0]))
        finally:
            db.close()
    assert len(secrets[0]) == 32
    assert secrets[0] != secrets[1]


@pytest.mark.parametrize(
    ("sqlite", "postgresql", "returns_id"),
    [
        (
            "SELECT a FROM t WHERE b = ? AND c = :name",
            "SELECT a FROM t WHERE b = %s AND c = %(name)s",
            False,
        ),
        (
            "SELECT '?', 'a%b' FROM t WHERE x LIKE ?",
            "SELECT '?', 'a%%b' FROM t WHERE x LIKE %s",
            False,
        ),
        ("SELECT x::text FROM t", "SELECT x::text FROM t", False),
        (
            "INSERT OR IGNORE INTO users (a) VALUES (?)",
            "INSERT INTO users (a) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id",
            True,
        ),
        (
            "INSERT INTO users (a) VALUES (?) RETURNING a",
            "INSERT INTO users (a) VALUES (%s) RETURNING a",
            False,
        ),
        (
            "INSERT INTO ingest_state (key, value) VALUES (?, ?)",
            "INSERT INTO ingest_state (key, value) VALUES (%s, %s)",
            False,
        ),
        (
            "SELECT 1 FROM t WHERE ip IS ? AND b IS NOT ? AND c IS NULL",
            "SELECT 1 FROM t WHERE ip IS NOT DISTINCT FROM %s"
            " AND b IS DISTINCT FROM %s AND c IS NULL",
            False,
        ),
        ("SELECT CAST(x AS REAL) FROM t", "SELECT CAST(x AS DOUBLE PRECISION) FROM t", False),
    ],
)
def test_sqlite_statements_are_said_the_postgresql_way(sqlite, postgresql, returns_id):
    assert translate(sqlite, frozenset({"users"})) == (postgresql, returns_id)


def test_scripts_split_on_semicolons_outside_quotes_and_bodies():
    script = "CREATE TABLE a (x TEXT DEFAULT ';'); CREATE FUNCTION f() AS $$ a; b $$; SELECT 1"
    assert script_statements(script) == [
        "CREATE TABLE a (x TEXT DEFAULT ';')",
        "CREATE FUNCTION f() AS $$ a; b $$",
        "SELECT 1",
    ]
