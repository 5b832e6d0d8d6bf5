"""The draw over stored issued versions (service/peer_review/sampling.py, real SQLite): about
the configured share of 2,000 signatures goes to peer review, each version is drawn once, a
queue's own share applies, and corrections and preliminary releases are never drawn."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlite_utils

from service.peer_review.sampling import draw_issued
from worklists.peer_review import PeerReviewPolicy

from .backends import connection_at

STAMP = "2026-03-05T08:00:00.000000Z"
NOW = datetime(2026, 3, 6, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path, migrated_database: Path) -> Iterator[sqlite_utils.Database]:
    database = connection_at(tmp_path / "t.db", migrated_database)
    database.execute(
        "INSERT INTO facilities (id, name, kind, aet, timezone, created_at)"
        " VALUES (1, 'Township A', 'township', 'AE1', 'Asia/Shanghai', ?)",
        [STAMP],
    )
    database.execute(
        "INSERT INTO users (id, username, password_hash, role, facility_id, created_at)"
        " VALUES (1, 'li', 'x', 'specialist', 1, ?)",
        [STAMP],
    )
    yield database
    database.close()


def issue(db: sqlite_utils.Database, count: int, queue: str = "general", **version) -> None:
    """``count`` consultations on ``queue``, each with a signed report (version 1), in one
    transaction (one commit, not thousands)."""
    start = db.execute("SELECT COALESCE(MAX(id), 0) FROM consultations").fetchone()[0]
    db.execute("BEGIN")
    for cid in range(start + 1, start + count + 1):
        db.execute(
            "INSERT INTO consultations (id, facility_id, queue, status, due_at, created_at,"
            " updated_at) VALUES (?, 1, ?, 'signed', ?, ?, ?)",
            [cid, queue, STAMP, STAMP, STAMP],
        )
        report = db.execute(
            "INSERT INTO reports (consultation_id, state, author_id, created_at, updated_at)"
            " VALUES (?, 'signed', 1, ?, ?)",
            [cid, STAMP, STAMP],
        ).lastrowid
        sign(db, report, 1, preliminary=version.get("preliminary", 0))
    db.execute("COMMIT")


def sign(db: sqlite_utils.Database, report: int, number: int, preliminary: int = 0) -> int:
    return db.execute(
        "INSERT INTO report_versions (report_id, version, findings, impression, recommendation,"
        " critical, refer, signer_id, signer_name, certificate_serial, signed_at,"
        " verification_code, verification_url, canonical, signature, pdf, preliminary)"
        " VALUES (?, ?, '', '', '', 0, 0, 1, 'Li', '1', ?, ?, 'http://x', x'00', x'00', x'00', ?)",
        [report, number, STAMP, f"C{report}-{number}", preliminary],
    ).lastrowid


def drawn_count(db: sqlite_utils.Database, queue: str | None = None) -> int:
    where, params = ("WHERE queue = ?", [queue]) if queue else ("", [])
    return db.execute(f"SELECT COUNT(*) FROM peer_reviews {where}", params).fetchone()[0]


def test_about_five_percent_of_two_thousand_signatures_are_drawn_once(db):
    """Binomial(2000, 0.05): mean 100, sd ≈ 9.7; 4 sd either side."""
    issue(db, 2000)
    assigned = draw_issued(db, PeerReviewPolicy(), NOW)
    assert 61 <= assigned <= 139
    assert drawn_count(db) == assigned
    assert draw_issued(db, PeerReviewPolicy(), NOW) == 0  # drawn once, never again
    assert db.execute("SELECT MIN(assigned_at) FROM peer_reviews").fetchone()[0] == STAMP


def test_a_queues_own_share_applies(db):
    issue(db, 1000, "neuro")
    issue(db, 1000, "chest")
    draw_issued(db, PeerReviewPolicy(0.0, {"neuro": 20.0}), NOW)
    assert drawn_count(db, "chest") == 0
    assert 146 <= drawn_count(db, "neuro") <= 254  # mean 200, sd ≈ 12.6


def test_corrections_and_preliminary_releases_are_not_drawn(db):
    """At 100 %: a preliminary release is skipped, the final version after it is drawn; a
    correction of a drawn report is not drawn again."""
    issue(db, 1, preliminary=1)
    issue(db, 1)
    sign(db, 1, 2)  # the reviewed final version after the preliminary one
    sign(db, 2, 2)  # a correction of the second report
    draw_issued(db, PeerReviewPolicy(100.0), NOW)
    versions = [
        r[0]
        for r in db.execute(
            "SELECT v.report_id || '.' || v.version FROM peer_reviews p"
            " JOIN report_versions v ON v.id = p.report_version_id ORDER BY 1"
        )
    ]
    assert versions == ["1.2", "2.1"]


def test_a_correction_signed_later_is_linked_to_the_significant_discrepancy(db):
    """A 3b on version 1; the reader signs version 2: the catch-up links it, once."""
    from service.peer_review.sampling import catch_up

    issue(db, 2)
    catch_up(db, PeerReviewPolicy(100.0), NOW)
    db.execute(
        "UPDATE peer_reviews SET score = 3, significance = 'b', scored_at = ?, discrepancy ="
        " 'open' WHERE consultation_id = 1",
        [STAMP],
    )
    catch_up(db, PeerReviewPolicy(100.0), NOW)
    assert db.execute("SELECT correction_version_id FROM peer_reviews").fetchall() == [
        (None,),
        (None,),
    ]
    corrected = sign(db, 1, 2)
    sign(db, 2, 2)  # a correction without a discrepancy: nothing to link
    catch_up(db, PeerReviewPolicy(100.0), NOW)
    linked = db.execute(
        "SELECT consultation_id, correction_version_id FROM peer_reviews ORDER BY 1"
    ).fetchall()
    assert linked == [(1, corrected), (2, None)]
