"""Migrations are frozen: each one creates and writes what it did on the day it was written.

m004, m009b, m010 and m012 once called live code (the audit patient rule, the report templates,
the dashboard's fact builder and packer), so an old migration changed meaning whenever that code
did. They now hold their own copies (service/storage/migration_data/). These tests pin what they
write, applying migrations only up to the one under test, so later migrations (which may alter or
drop these tables) leave them valid; and they check the copies import no live code.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from pathlib import Path

import sqlite_utils

from service.storage.schema import migrations

STORAGE = Path(__file__).resolve().parents[1] / "service" / "storage"
ALLOWED_IMPORTS = {"__future__", "sqlite_utils", "numpy"}


def insert(db: sqlite_utils.Database, table: str, **values: object) -> int:
    """A row with the given values and a placeholder in every other required column."""
    for _, name, kind, notnull, default, pk in db.execute(f"PRAGMA table_info({table})"):
        if name not in values and notnull and default is None and not pk:
            values[name] = 1 if "INT" in (kind or "").upper() else f"{table}-{name}"
    columns, marks = ", ".join(values), ", ".join("?" for _ in values)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    return db.execute(sql, list(values.values())).lastrowid


def digest(db: sqlite_utils.Database, sql: str) -> str:
    rows = [[c.hex() if isinstance(c, bytes) else c for c in r] for r in db.execute(sql)]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def migrated(stop_before: str | None = None) -> sqlite_utils.Database:
    db = sqlite_utils.Database(memory=True)
    migrations.apply(db, stop_before=stop_before)
    return db


EVENTS = [
    ("requested", "2026-01-02T03:04:05.000000Z", True, {}),
    ("images_received", "2026-01-02T03:00:00.000000Z", False, {}),
    ("claimed", "2026-01-02T04:00:00.000000Z", True, {}),
    ("signed", "2026-01-02T05:00:00.500000Z", True, {"quality": "good", "critical": True}),
    ("signed", "2026-01-02T06:00:00.000000Z", True, {"quality": "poor"}),
    ("delivered", "2026-01-02T05:30:00.000000Z", False, {}),
    ("acknowledged", "2026-01-02T07:00:00+00:00", False, {}),  # not canonical: irregular block
]


def with_consultations_before_m010() -> sqlite_utils.Database:
    """Three consultations at different stages (and one without events) before m010 ran."""
    db = migrated(stop_before="m010_turnaround_facts")
    facility = insert(db, "facilities", name="F", kind="township", aet="F1", timezone="UTC")
    reader = insert(db, "users", username="u", role="specialist", facility_id=facility)
    for i, priority in enumerate(("stat", "urgent", "routine")):
        consultation = insert(
            db,
            "consultations",
            facility_id=facility,
            priority=priority,
            modality="CT",
            due_at="2026-01-02T08:00:00.000000Z",
            queue="general",
        )
        for kind, at, by_reader, detail in EVENTS[: 3 + 2 * i]:
            insert(
                db,
                "consultation_events",
                consultation_id=consultation,
                type=kind,
                at=at,
                actor_user_id=reader if by_reader else None,
                detail=json.dumps(detail),
            )
    insert(db, "consultations", facility_id=facility, modality="MR", due_at="2026-01-03T08Z")
    return db


def test_m010_fills_the_facts_of_existing_consultations_from_their_first_events():
    db = with_consultations_before_m010()
    migrations.apply(db, stop_before="m011_saved_filters")
    rows = db.execute(
        "SELECT consultation_id, received_at, queued_at, signed_at, reader_id, quality, critical,"
        " acknowledged_at, received_to_signed, end_to_end FROM turnaround_facts"
    ).fetchall()
    assert rows == [
        (1, "2026-01-02T03:00:00.000000Z", "2026-01-02T03:04:05.000000Z", None, None, None, 0,
         None, None, None),
        (2, "2026-01-02T03:00:00.000000Z", "2026-01-02T03:04:05.000000Z",
         "2026-01-02T05:00:00.500000Z", 1, "good", 1, None, 7200.5, None),
        (3, "2026-01-02T03:00:00.000000Z", "2026-01-02T03:04:05.000000Z",
         "2026-01-02T05:00:00.500000Z", 1, "good", 1, "2026-01-02T07:00:00+00:00", 7200.5,
         9000.0),
    ]  # fmt: skip


def test_m010_and_m012_write_exactly_what_they_wrote_on_their_day():
    """Digests taken when the migrations were frozen, from the code they called then."""
    db = with_consultations_before_m010()
    migrations.apply(db, stop_before="m013_worklist_priority_index")
    assert digest(db, "SELECT * FROM turnaround_facts ORDER BY 1") == (
        "15630b64458253dc2ac8f400b9b0d2221828931e3df1d70166d0111e02a4d57d"
    )
    assert digest(db, "SELECT * FROM turnaround_labels ORDER BY 1") == (
        "bb999d3e330162f2e68163f3104e5fa0cba1a8941facd3209a1db2fd6571e632"
    )
    assert digest(db, "SELECT * FROM turnaround_blocks ORDER BY 1") == (
        "4c0e36b5006cd745211a9d4029a41c4ca51ffefe749b13d0793e70b44c9ce102"
    )


def test_m009b_inserts_the_five_default_templates_of_its_day():
    db = migrated(stop_before="m010_turnaround_facts")
    names = [r[0] for r in db.execute("SELECT name FROM report_templates ORDER BY id")]
    assert len(names) == 5 and names[0] == "颅脑CT平扫 / CT head (non-contrast)"
    columns = "name, modality, body_part, findings, impression, recommendation, macros"
    assert digest(db, f"SELECT {columns} FROM report_templates ORDER BY id") == (
        "a404227ba0ad0c789987d77d9d1257290059f403e7d0ae8e9033781738013e88"
    )


def test_m004_indexes_the_patients_of_records_written_before_it():
    db = migrated(stop_before="m004_audit_patient_index")
    for n, (patient_id, detail) in enumerate(
        (("P1, P2", {}), ("", {"patients": ["P3", "P1", 7]}), ("", {}))
    ):
        insert(
            db,
            "audit_log",
            patient_id=patient_id,
            detail=json.dumps(detail),
            outcome="success",
            hash=f"h{n}",
        )
    migrations.apply(db, stop_before="m005_worklist_queues_and_claims")
    rows = db.execute("SELECT audit_id, patient_id FROM audit_patients ORDER BY 1, 2").fetchall()
    assert rows == [(1, "P1"), (1, "P1, P2"), (1, "P2"), (2, "P1"), (2, "P3")]


def test_applying_the_migrations_again_leaves_a_migrated_database_untouched():
    db = with_consultations_before_m010()
    migrations.apply(db)
    before = list(db.conn.iterdump())
    migrations.apply(db)
    assert list(db.conn.iterdump()) == before


def test_the_schema_and_frozen_migrations_import_no_live_code():
    """Only the standard library, sqlite-utils, numpy and each other."""
    files = [STORAGE / "schema.py", *sorted((STORAGE / "migration_data").glob("*.py"))]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert (node.module or "").startswith("migration_data") or (
                    path.parent.name == "migration_data" and node.level == 1
                ), f"{path.name} imports .{node.module}"
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom)
                    else [alias.name for alias in node.names]
                )
                for name in names:
                    top = (name or "").split(".")[0]
                    assert top in ALLOWED_IMPORTS or top in sys.stdlib_module_names, (
                        f"{path.name} imports {name}"
                    )
