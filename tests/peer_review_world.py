"""A peer review of clinic A's consultation, written straight into the database, for the
isolation matrix (tests/test_isolation.py): clinic B's callers must get 404/403 on it. The
issued version is a stand-in (no signature checked): only its facility matters here."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from tests.conftest import Service


def _insert(db: sqlite_utils.Database, consultation_id: int, facility_id: int) -> int:
    stamp = "2026-01-02T00:00:00.000000Z"
    signer = db.execute("SELECT id FROM users WHERE username = 'wang_a'").fetchone()[0]
    report = db.execute(
        "INSERT INTO reports (consultation_id, state, author_id, signed_versions, created_at,"
        " updated_at) VALUES (?, 'signed', ?, 1, ?, ?)",
        [consultation_id, signer, stamp, stamp],
    ).lastrowid
    version = db.execute(
        "INSERT INTO report_versions (report_id, version, findings, impression, recommendation,"
        " critical, refer, signer_id, signer_name, certificate_serial, signed_at,"
        " verification_code, verification_url, canonical, signature, pdf)"
        " VALUES (?, 1, 'Clinic A findings', 'Clinic A impression', '', 0, 0, ?, 'wang_a',"
        " '1', ?, 'ISOLATION-PR', 'http://x/verify', x'00', x'00', x'00')",
        [report, signer, stamp],
    ).lastrowid
    return db.execute(
        "INSERT INTO peer_reviews (report_version_id, consultation_id, facility_id, reader_id,"
        " queue, origin, assigned_at, score, significance, comment, scored_at, discrepancy)"
        " VALUES (?, ?, ?, ?, 'general', 'sampled', ?, 3, 'b', 'missed', ?, 'open')",
        [version, consultation_id, facility_id, signer, stamp, stamp],
    ).lastrowid


async def clinic_a_peer_review(service: Service, world: dict[str, Any]) -> int:
    """The id of clinic A's peer review (made once per world)."""
    if "peer_review" not in world:
        world["peer_review"] = await service.database.write(
            _insert, world["consultation"], world["a"]
        )
    return world["peer_review"]
