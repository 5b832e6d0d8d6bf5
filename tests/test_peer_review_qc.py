"""Peer review feeds QC (issue 20 items 2–3) over real SQLite: a month's agreement per
facility × exam item, the readers' figures, and an open clinically significant discrepancy that
suspends the facility × exam item on the recognition list until a manager closes it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlite_utils

from service.quality.recompute import _evaluate_and_apply, compute_month, window_months
from service.storage import peer_reviews as store
from worklists.recognition import RecognitionRules

from .backends import connection_at

RULES = RecognitionRules(months=1, min_studies=3, max_poor_percent=50.0)
STAMP = "2026-03-05T08:00:00.000000Z"


@pytest.fixture
def db(tmp_path: Path, migrated_database: Path) -> Iterator[sqlite_utils.Database]:
    """Township A sent four CT head studies in March 2026, read by Li (id 1); three were
    peer-reviewed: scores 1, 1 and 3b (its discrepancy open)."""
    database = connection_at(tmp_path / "t.db", migrated_database)
    database.execute(
        "INSERT INTO facilities (id, name, kind, aet, timezone, created_at)"
        " VALUES (1, 'Township A', 'township', 'AE1', 'Asia/Shanghai', ?)",
        [STAMP],
    )
    for uid, name in ((1, "li"), (2, "wu")):
        database.execute(
            "INSERT INTO users (id, username, display_name, password_hash, role, facility_id,"
            " created_at) VALUES (?, ?, ?, 'x', 'specialist', 1, ?)",
            [uid, name, name.title(), STAMP],
        )
    for cid, score in ((1, 1), (2, 1), (3, 3), (4, None)):
        _study(database, cid, score)
    yield database
    database.close()


def _study(db: sqlite_utils.Database, cid: int, score: int | None) -> None:
    db.execute(
        "INSERT INTO consultations (id, facility_id, patient_id, modality, body_part, status,"
        " received_at, due_at, created_at, updated_at)"
        " VALUES (?, 1, ?, 'CT', 'head', 'signed', ?, ?, ?, ?)",
        [cid, f"P{cid}", STAMP, STAMP, STAMP, STAMP],
    )
    db.execute(
        "INSERT INTO turnaround_facts (consultation_id, facility_id, modality, due_at,"
        " received_at, quality) VALUES (?, 1, 'CT', ?, ?, 'good')",
        [cid, STAMP, STAMP],
    )
    report = db.execute(
        "INSERT INTO reports (consultation_id, state, author_id, created_at, updated_at)"
        " VALUES (?, 'signed', 1, ?, ?)",
        [cid, STAMP, STAMP],
    ).lastrowid
    version = db.execute(
        "INSERT INTO report_versions (report_id, version, findings, impression, recommendation,"
        " critical, refer, signer_id, signer_name, certificate_serial, signed_at,"
        " verification_code, verification_url, canonical, signature, pdf)"
        " VALUES (?, 1, '', 'Normal.', '', 0, 0, 1, 'Li', '1', ?, ?, 'http://x', x'00', x'00',"
        " x'00')",
        [report, STAMP, f"CODE{cid}"],
    ).lastrowid
    if score is None:
        return
    significance = "b" if score == 3 else None
    db.execute(
        "INSERT INTO peer_reviews (report_version_id, consultation_id, facility_id, reader_id,"
        " queue, origin, assigned_at, reviewer_id, score, significance, comment, scored_at,"
        " discrepancy) VALUES (?, ?, 1, 1, 'general', 'sampled', ?, 2, ?, ?, 'c', ?, ?)",
        [version, cid, STAMP, score, significance, STAMP, "open" if significance else None],
    )


def judge(db, when: str) -> list:
    now = datetime.fromisoformat(when).replace(tzinfo=UTC)
    return _evaluate_and_apply(db, RULES, window_months(RULES, now), now.isoformat(), None)


def test_a_months_scores_carry_the_peer_review_agreement(db):
    """Three reviewed, two agreed: 66.7 % (the exam item normalised like the other figures)."""
    [score] = compute_month(db, "2026-03", RULES)
    assert (score.modality, score.body_part) == ("CT", "HEAD")
    assert (score.peer_reviewed, score.peer_agreement) == (3, 66.7)


def test_a_month_without_reviews_has_no_agreement(db):
    db.execute("DELETE FROM peer_reviews")
    [score] = compute_month(db, "2026-03", RULES)
    assert (score.peer_reviewed, score.peer_agreement) == (0, None)


def test_an_open_significant_discrepancy_keeps_the_exam_item_off_the_list(db):
    """Good figures but a 3b open: not added, the reason recorded; closed: added."""
    from service.storage import quality as scores_store

    scores_store.replace_month(db, "2026-03", compute_month(db, "2026-03", RULES), STAMP)
    assert judge(db, "2026-04-02") == []
    review_id = db.execute("SELECT id FROM peer_reviews WHERE significance = 'b'").fetchone()[0]
    store.answer(db, review_id, "Agreed.", STAMP)  # answered is still open
    assert judge(db, "2026-04-02") == []
    store.close(db, review_id, "Corrected.", 2, STAMP)
    [added] = judge(db, "2026-04-03")
    assert added.change == "added"


def test_a_listed_item_is_suspended_with_the_discrepancy_as_reason(db):
    from service.storage import quality as scores_store

    scores_store.replace_month(db, "2026-03", compute_month(db, "2026-03", RULES), STAMP)
    db.execute("UPDATE peer_reviews SET discrepancy = 'closed' WHERE significance = 'b'")
    assert [c.change for c in judge(db, "2026-04-02")] == ["added"]
    db.execute("UPDATE peer_reviews SET discrepancy = 'open' WHERE significance = 'b'")
    [suspended] = judge(db, "2026-04-03")
    assert suspended.change == "suspended"
    assert [(r.code, r.figure) for r in suspended.reasons] == [("open_significant_discrepancy", 1)]


def test_reader_figures_count_reviews_agreement_and_open_discrepancies(db):
    [li] = store.reader_figures(db, None)
    assert (li["reader"], li["reviewed"], li["agreed"], li["open"], li["significant"]) == (
        "Li",
        3,
        2,
        1,
        1,
    )
    assert store.reader_figures(db, (2,)) == []
