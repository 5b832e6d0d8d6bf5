"""The audit trail cannot be cut short unnoticed: the anchor kept beside the database (and in
exports), ids never handed out twice, and the migration that made them so.

These run on real databases (SQLite files, or PostgreSQL databases standing for them) and the
installed ``teleread audit`` command, as an operator would; the attacker is a plain connection to
the database that drops the append-only triggers.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.audit import AuditEntry
from service.audit.verify import ANCHOR_DIFFERS, verify_database
from service.storage import Database
from service.storage.audit import append_audit
from service.storage.audit_anchor import Anchor, anchor_path_for, read_anchor
from service.storage.database import connect
from service.storage.postgres.connection import PostgresConnection
from service.storage.postgres.schema import identity_tables_of
from service.storage.schema import migrations

from .backends import database_at, database_url_at

TELEREAD = str(Path(sys.executable).with_name("teleread"))


def entry(number: int, patient: str = "") -> AuditEntry:
    return AuditEntry(
        at=f"2026-12-02T08:00:00.{number:06d}Z",
        action="consultation.view",
        outcome="success",
        username="dr.li",
        patient_id=patient or f"P-{number:03d}",
    )


def trail(data_dir: Path, records: int) -> Database:
    """A database under ``data_dir`` as the service keeps it, with ``records`` records, each
    appended in a transaction of its own; the anchor written."""
    database = database_at(data_dir / "teleread.db")
    for number in range(1, records + 1):
        database.write_sync(append_audit, entry(number))
    database.anchor.flush()
    return database


@contextlib.contextmanager
def outside(database_path: Path) -> Iterator[tuple[Any, bool]]:
    """A plain connection to the database, in no transaction, as someone with the file (or the
    database's password) has; and whether it is PostgreSQL."""
    url = database_url_at(database_path)
    conn = PostgresConnection(url) if url else sqlite3.connect(database_path, isolation_level=None)
    try:
        yield conn, url is not None
    finally:
        conn.close()


def cut(database_path: Path, last: int) -> None:
    """What someone with the file does: drop the triggers, delete the newest ``last`` records."""
    with outside(database_path) as (conn, postgres):
        for trigger, table in (("audit_log_no_delete", "audit_log"),
                               ("audit_patients_no_delete", "audit_patients")):  # fmt: skip
            conn.execute(f"DROP TRIGGER {trigger}" + (f" ON {table}" if postgres else ""))
        (top,) = conn.execute("SELECT MAX(id) FROM audit_log").fetchone()
        conn.execute("DELETE FROM audit_patients WHERE audit_id > ?", [top - last])
        conn.execute("DELETE FROM audit_log WHERE id > ?", [top - last])


def teleread_audit(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TELEREAD_DATA_DIR": str(data_dir)}
    if url := database_url_at(data_dir / "teleread.db"):
        env["TELEREAD_DATABASE_URL"] = url
    return subprocess.run(
        [TELEREAD, "audit", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("removed", [1, 51])
def test_verify_fails_when_the_newest_records_are_deleted(tmp_path, removed):
    """The chain left after cutting its tail is still a valid chain; the anchor shows the cut."""
    trail(tmp_path, 60).close()

    cut(tmp_path / "teleread.db", removed)
    result = teleread_audit(tmp_path, "verify")

    assert result.returncode == 1, result.stdout
    plural = "s" if removed > 1 else ""
    assert result.stdout.startswith(
        f"audit trail BROKEN at record {61 - removed}: {removed} newest record{plural} missing:"
    )
    assert "names record 60, the trail ends at " + str(60 - removed) in result.stdout


def test_an_intact_trail_passes_with_its_anchor_at_the_head(tmp_path):
    trail(tmp_path, 5).close()

    result = teleread_audit(tmp_path, "verify")

    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[0] == "audit trail intact: 5 records"
    assert "lags" not in result.stdout
    anchor = read_anchor(anchor_path_for(tmp_path / "teleread.db"))
    assert (anchor.id, anchor.count) == (5, 5)


def test_an_anchor_behind_the_table_after_a_crash_is_lag_not_tampering(tmp_path):
    """A crash between a commit and its anchor write leaves the table ahead: reported, exit 0."""
    trail(tmp_path, 5).close()
    url = database_url_at(tmp_path / "teleread.db")
    conn = (  # commits the anchor keeper never hears about
        PostgresConnection(url, identity_tables_of(url))
        if url
        else connect(tmp_path / "teleread.db")
    )
    for number in (6, 7, 8):
        conn.conn.execute("BEGIN")
        append_audit(conn, entry(number))
        conn.conn.execute("COMMIT")
    conn.conn.close()

    result = teleread_audit(tmp_path, "verify")

    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[0] == "audit trail intact: 8 records"
    assert "anchor lags by 3 records" in result.stdout


def test_deleted_ids_are_not_handed_out_again_after_a_restart(tmp_path):
    """With AUTOINCREMENT the cut stays a gap: the next record after a restart gets a new id."""
    trail(tmp_path, 10).close()
    cut(tmp_path / "teleread.db", 3)

    restarted = database_at(tmp_path / "teleread.db")
    new_id = restarted.write_sync(append_audit, entry(11))
    restarted.anchor.flush()
    result = restarted.read_sync(verify_database)
    restarted.close()

    assert new_id == 11
    assert (result.ok, result.reason) == (False, "record missing before id 11")


def test_the_anchor_is_never_advanced_over_a_cut(tmp_path):
    """After a cut, new appends (even with the id sequence reset too) do not overwrite the
    anchor with a head that no longer extends the anchored record: the evidence stays."""
    trail(tmp_path, 10).close()
    cut(tmp_path / "teleread.db", 3)
    with outside(tmp_path / "teleread.db") as (conn, postgres):
        if postgres:
            conn.execute("ALTER TABLE audit_log ALTER COLUMN id RESTART WITH 8")
        else:
            conn.execute("UPDATE sqlite_sequence SET seq = 7 WHERE name = 'audit_log'")

    restarted = database_at(tmp_path / "teleread.db")
    for number in range(100, 106):  # ids 8..13, reused, past the anchored 10
        restarted.write_sync(append_audit, entry(number))
    restarted.anchor.flush()
    anchor = read_anchor(restarted.anchor.path)
    result = restarted.read_sync(verify_database, [anchor])
    restarted.close()

    assert anchor.id == 10
    assert (result.ok, result.first_broken_id, result.reason) == (False, 10, ANCHOR_DIFFERS)


def test_a_missing_anchor_fails_verification_of_a_trail_with_records(tmp_path):
    trail(tmp_path, 3).close()
    anchor_path_for(tmp_path / "teleread.db").unlink()

    result = teleread_audit(tmp_path, "verify")

    assert result.returncode == 1
    assert "no anchor" in result.stdout and "is missing" in result.stdout


def test_a_kept_export_anchor_catches_a_cut_that_rewrote_the_local_anchor(tmp_path):
    """The CLI export writes FILE.anchor.json; kept off the machine, it still shows a cut made
    by someone who also rewrote the anchor beside the database."""
    trail(tmp_path, 20).close()
    output = tmp_path / "export.xml"
    exported = teleread_audit(tmp_path, "export", "--format", "atna", "--output", str(output))
    assert exported.returncode == 0, exported.stderr
    kept = Anchor.from_json((tmp_path / "export.xml.anchor.json").read_text())
    assert (kept.id, kept.count) == (20, 20)
    assert len(output.read_text().splitlines()) == 20  # one message per record, nothing else

    cut(tmp_path / "teleread.db", 6)  # the export's own record (21) and 5 more
    with outside(tmp_path / "teleread.db") as (conn, _):
        (head_hash,) = conn.execute("SELECT hash FROM audit_log WHERE id = 15").fetchone()
    forged = Anchor(15, 15, head_hash, "2026-12-02T09:00:00.000000Z")
    anchor_path_for(tmp_path / "teleread.db").write_text(forged.to_json())

    assert teleread_audit(tmp_path, "verify").returncode == 0  # fooled by the local anchor
    result = teleread_audit(tmp_path, "verify", "--anchor", str(output) + ".anchor.json")
    assert result.returncode == 1
    assert "5 newest records missing" in result.stdout


@pytest.mark.sqlite_file
def test_the_id_migration_keeps_ids_hashes_indexes_and_triggers(tmp_path):
    """m019 rebuilds audit_log with AUTOINCREMENT: the same records, the chain still verifies,
    every index and trigger is back, and the patient index still points at its records."""
    db = connect(tmp_path / "old.db")
    migrations.apply(db, stop_before="m019_audit_ids_never_reused")
    for number in range(1, 6):
        db.conn.execute("BEGIN")
        append_audit(db, entry(number, patient="P-1"))
        db.conn.execute("COMMIT")
    before = [tuple(r) for r in db.execute("SELECT id, hash FROM audit_log ORDER BY id")]
    dependents = {
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'audit_log'")
    }

    migrations.apply(db)

    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_log'").fetchone()
    assert "AUTOINCREMENT" in sql
    assert [tuple(r) for r in db.execute("SELECT id, hash FROM audit_log ORDER BY id")] == before
    assert {
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'audit_log'")
    } == dependents
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert verify_database(db).ok
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_log")
    db.conn.close()


def test_anchor_files_are_checked_for_their_format(tmp_path):
    with pytest.raises(ValueError):
        Anchor.from_json(json.dumps({"id": 1, "count": 1, "hash": "0" * 64, "at": ""}))
    assert Anchor.from_json(Anchor(3, 3, "a" * 64, "t").to_json()) == Anchor(3, 3, "a" * 64, "t")


def test_a_burst_of_commits_is_anchored_in_a_few_writes_ending_at_the_head(tmp_path, monkeypatch):
    """The keeper coalesces the heads offered during its pause: a hundred commits in a row cost
    a handful of anchor writes (each with its fsyncs), and the last names the newest record."""
    from service.storage import audit_anchor as anchor_module

    writes: list[int] = []
    real_write = anchor_module.write_anchor

    def counted(path, anchor, hash_at=None):
        writes.append(anchor.id)
        return real_write(path, anchor, hash_at)

    monkeypatch.setattr(anchor_module, "write_anchor", counted)
    database = trail(tmp_path, 100)
    database.close()

    assert 1 <= len(writes) < 20, writes
    assert writes == sorted(writes) and writes[-1] == 100
    assert read_anchor(anchor_path_for(tmp_path / "teleread.db")).id == 100
