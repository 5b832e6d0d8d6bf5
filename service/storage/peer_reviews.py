"""Peer reviews of issued reports (m039): the draw's state, the reviewers' queue with its claim
leases, scores and discrepancies. Scoping is in the query (the consultation's facility)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlite_utils

from . import Conflict
from .quality import facility_clause
from .scope import Scope

_BLIND_COLUMNS = (
    "p.id, p.report_version_id, p.consultation_id, p.facility_id, p.queue, p.origin,"
    " p.assigned_at, p.claimed_by, p.claimed_at, p.claim_expires_at, p.reviewer_id, p.score,"
    " p.significance, p.comment, p.scored_at, p.discrepancy, p.answer, p.answered_at,"
    " p.outcome, p.closed_by, p.closed_at, p.correction_version_id,"
    " c.modality, c.body_part, c.priority, c.study_instance_uid, c.accession_number,"
    " v.version, v.signed_at"
)
"""What a reviewer may see of a peer review: never the first reader (``reader_id``)."""

_FROM = (
    " FROM peer_reviews p JOIN consultations c ON c.id = p.consultation_id"
    " JOIN report_versions v ON v.id = p.report_version_id"
)


def draw_state(db: sqlite_utils.Database) -> tuple[bytes, int]:
    """The install's secret for the draw and the last version id drawn for."""
    secret, through = db.execute(
        "SELECT secret, drawn_through FROM peer_review_state WHERE id = 1"
    ).fetchone()
    return bytes(secret), through


def versions_to_draw(db: sqlite_utils.Database, after_id: int) -> list[dict[str, Any]]:
    """Issued versions after ``after_id`` that are a report's first issued (not preliminary)
    text: corrections and preliminary releases are not drawn again."""
    cursor = db.execute(
        "SELECT v.id, v.report_id, r.consultation_id, c.facility_id, c.queue,"
        " COALESCE(r.author_id, v.signer_id), v.signed_at"
        " FROM report_versions v JOIN reports r ON r.id = v.report_id"
        " JOIN consultations c ON c.id = r.consultation_id"
        " WHERE v.id > ? AND v.preliminary = 0 AND NOT EXISTS (SELECT 1 FROM report_versions e"
        "  WHERE e.report_id = v.report_id AND e.id < v.id AND e.preliminary = 0)"
        " ORDER BY v.id",
        [after_id],
    )
    keys = (
        "version_id", "report_id", "consultation_id", "facility_id", "queue", "reader_id",
        "signed_at",
    )  # fmt: skip
    return [dict(zip(keys, row, strict=True)) for row in cursor]


def last_version_id(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COALESCE(MAX(id), 0) FROM report_versions").fetchone()[0]


def set_drawn_through(db: sqlite_utils.Database, version_id: int) -> None:
    db.execute("UPDATE peer_review_state SET drawn_through = ? WHERE id = 1", [version_id])


def assign(
    db: sqlite_utils.Database, draw: dict[str, Any], origin: str, now: str, by: int | None = None
) -> int | None:
    """Put an issued version on the reviewers' queue; None when it already is."""
    cursor = db.execute(
        "INSERT OR IGNORE INTO peer_reviews (report_version_id, consultation_id, facility_id,"
        " reader_id, queue, origin, picked_by, assigned_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            draw["version_id"],
            draw["consultation_id"],
            draw["facility_id"],
            draw["reader_id"],
            draw["queue"],
            origin,
            by,
            now,
        ],
    )
    return cursor.lastrowid if cursor.rowcount else None


def latest_issued(db: sqlite_utils.Database, consultation_id: int, scope: Scope) -> dict | None:
    """The consultation's latest issued (not preliminary) version, within ``scope``."""
    where, params = scope.where("c")
    row = db.execute(
        "SELECT v.id, v.report_id, r.consultation_id, c.facility_id, c.queue,"
        " COALESCE(r.author_id, v.signer_id)"
        " FROM report_versions v JOIN reports r ON r.id = v.report_id"
        " JOIN consultations c ON c.id = r.consultation_id"
        f" WHERE r.consultation_id = ? AND v.preliminary = 0 AND {where}"
        " ORDER BY v.id DESC LIMIT 1",
        [consultation_id, *params],
    ).fetchone()
    if row is None:
        return None
    keys = ("version_id", "report_id", "consultation_id", "facility_id", "queue", "reader_id")
    return dict(zip(keys, row, strict=True))


def consultation_exists(db: sqlite_utils.Database, consultation_id: int, scope: Scope) -> bool:
    where, params = scope.where("c")
    return (
        db.execute(
            f"SELECT 1 FROM consultations c WHERE c.id = ? AND {where}", [consultation_id, *params]
        ).fetchone()
        is not None
    )


def participants(db: sqlite_utils.Database, report_id: int) -> tuple[set[int], set[int]]:
    """Who signed (or wrote for review) any version of the report, and who co-signed it."""
    signers = {
        r[0]
        for r in db.execute(
            "SELECT signer_id FROM report_versions WHERE report_id = ?"
            " UNION SELECT writer_id FROM report_reviews WHERE report_id = ?"
            " UNION SELECT author_id FROM reports WHERE id = ? AND author_id IS NOT NULL",
            [report_id, report_id, report_id],
        )
    }
    co_signers = {
        r[0]
        for r in db.execute(
            "SELECT reviewer_id FROM report_versions WHERE report_id = ? AND reviewer_id IS NOT"
            " NULL UNION SELECT reviewer_id FROM report_reviews WHERE report_id = ?"
            " AND state IN ('approved', 'edited') AND reviewer_id IS NOT NULL",
            [report_id, report_id],
        )
    }
    return signers, co_signers - signers


def _not_involved(user_id: int) -> tuple[str, list[Any]]:
    """A condition: ``user_id`` neither signed, wrote nor co-signed the reviewed report."""
    return (
        " AND NOT EXISTS (SELECT 1 FROM report_versions o WHERE o.report_id = v.report_id"
        "  AND (o.signer_id = ? OR o.reviewer_id = ?))"
        " AND NOT EXISTS (SELECT 1 FROM report_reviews w WHERE w.report_id = v.report_id"
        "  AND (w.writer_id = ? OR w.reviewer_id = ?))"
        " AND p.reader_id != ?",
        [user_id] * 5,
    )


def queue(db: sqlite_utils.Database, user_id: int, scope: Scope) -> list[dict[str, Any]]:
    """The open (unscored) reviews ``user_id`` may take, oldest first; never their own."""
    where, params = scope.where("c")
    mine, mine_params = _not_involved(user_id)
    cursor = db.execute(
        f"SELECT {_BLIND_COLUMNS}{_FROM} WHERE p.scored_at IS NULL AND {where}{mine}"
        " ORDER BY p.assigned_at, p.id LIMIT 500",
        [*params, *mine_params],
    )
    return [dict(zip([d[0] for d in cursor.description], row, strict=True)) for row in cursor]


def blind(db: sqlite_utils.Database, review_id: int, scope: Scope) -> dict[str, Any] | None:
    """One review as a reviewer sees it, with the report text (no names)."""
    where, params = scope.where("c")
    cursor = db.execute(
        f"SELECT {_BLIND_COLUMNS}, v.report_id, v.findings, v.impression, v.recommendation,"
        f" v.critical, v.quality, v.quality_reason, c.clinical_question, c.clinical_history"
        f"{_FROM} WHERE p.id = ? AND {where}",
        [review_id, *params],
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def reader_of(db: sqlite_utils.Database, review_id: int) -> int:
    return db.execute("SELECT reader_id FROM peer_reviews WHERE id = ?", [review_id]).fetchone()[0]


def set_claim(
    db: sqlite_utils.Database,
    review_id: int,
    user_id: int | None,
    at: str | None,
    until: str | None,
) -> None:
    db.execute(
        "UPDATE peer_reviews SET claimed_by = ?, claimed_at = ?, claim_expires_at = ? WHERE id = ?",
        [user_id, at, until, review_id],
    )


def record_score(
    db: sqlite_utils.Database,
    review_id: int,
    reviewer_id: int,
    score: int,
    significance: str | None,
    comment: str,
    discrepancy: str | None,
    now: str,
) -> None:
    cursor = db.execute(
        "UPDATE peer_reviews SET reviewer_id = ?, score = ?, significance = ?, comment = ?,"
        " scored_at = ?, discrepancy = ?, claimed_by = NULL, claimed_at = NULL,"
        " claim_expires_at = NULL WHERE id = ? AND scored_at IS NULL",
        [reviewer_id, score, significance, comment, now, discrepancy, review_id],
    )
    if not cursor.rowcount:
        raise Conflict("already_scored", "this review was scored meanwhile")


def discrepancy_row(db: sqlite_utils.Database, review_id: int, scope: Scope) -> dict | None:
    """A scored review with its discrepancy, for the first reader and the managers."""
    where, params = scope.where("c")
    cursor = db.execute(
        f"SELECT {_BLIND_COLUMNS}, p.reader_id, v.report_id{_FROM}"
        f" WHERE p.id = ? AND p.discrepancy IS NOT NULL AND {where}",
        [review_id, *params],
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def discrepancies(
    db: sqlite_utils.Database, scope: Scope, reader_id: int | None
) -> list[dict[str, Any]]:
    """Discrepancies within ``scope`` (only ``reader_id``'s when given), open ones first."""
    where, params = scope.where("c")
    mine = " AND p.reader_id = ?" if reader_id is not None else ""
    cursor = db.execute(
        f"SELECT {_BLIND_COLUMNS}, p.reader_id{_FROM} WHERE p.discrepancy IS NOT NULL AND"
        f" {where}{mine} ORDER BY p.discrepancy = 'closed', p.scored_at DESC LIMIT 500",
        [*params, *([reader_id] if reader_id is not None else [])],
    )
    return [dict(zip([d[0] for d in cursor.description], row, strict=True)) for row in cursor]


def answer(db: sqlite_utils.Database, review_id: int, text: str, now: str) -> None:
    cursor = db.execute(
        "UPDATE peer_reviews SET answer = ?, answered_at = ?, discrepancy = 'answered'"
        " WHERE id = ? AND discrepancy IN ('open', 'answered')",
        [text, now, review_id],
    )
    if not cursor.rowcount:
        raise Conflict("discrepancy_closed", "the discrepancy is closed")


def close(db: sqlite_utils.Database, review_id: int, outcome: str, by: int, now: str) -> None:
    cursor = db.execute(
        "UPDATE peer_reviews SET outcome = ?, closed_by = ?, closed_at = ?, discrepancy = 'closed'"
        " WHERE id = ? AND discrepancy IN ('open', 'answered')",
        [outcome, by, now, review_id],
    )
    if not cursor.rowcount:
        raise Conflict("discrepancy_closed", "the discrepancy is already closed")


def link_correction(db: sqlite_utils.Database, report_id: int, version_id: int) -> int:
    """Record ``version_id`` (a correction of ``report_id``) on the report's clinically
    significant discrepancies that wait for one; how many were linked."""
    return db.execute(
        "UPDATE peer_reviews SET correction_version_id = ? WHERE correction_version_id IS NULL"
        " AND significance = 'b' AND discrepancy IS NOT NULL AND report_version_id IN"
        " (SELECT id FROM report_versions WHERE report_id = ? AND id < ?)",
        [version_id, report_id, version_id],
    ).rowcount


def reader_figures(
    db: sqlite_utils.Database, reader_ids: tuple[int, ...] | None
) -> list[dict[str, Any]]:
    """Per first reader: reviews scored, agreeing (score 1), discrepancies (open, closed)."""
    where = ""
    params: list[Any] = []
    if reader_ids is not None:
        where = f" AND p.reader_id IN ({', '.join('?' for _ in reader_ids) or 'NULL'})"
        params = list(reader_ids)
    cursor = db.execute(
        "SELECT p.reader_id, u.display_name, COUNT(*), SUM(p.score = 1),"
        " SUM(p.discrepancy IS NOT NULL), SUM(p.discrepancy IN ('open', 'answered')),"
        " SUM(p.significance = 'b')"
        " FROM peer_reviews p JOIN users u ON u.id = p.reader_id"
        f" WHERE p.scored_at IS NOT NULL{where} GROUP BY p.reader_id, u.display_name"
        " ORDER BY u.display_name",
        params,
    )
    keys = ("reader_id", "reader", "reviewed", "agreed", "discrepancies", "open", "significant")
    return [dict(zip(keys, row, strict=True)) for row in cursor]


def month_agreement(
    db: sqlite_utils.Database, since: str, until: str, facility_ids: Sequence[int] | None = None
) -> dict[tuple[int, str, str], tuple[int, int]]:
    """(facility, modality, body part) → (reviews scored, agreeing) over reviews of studies
    received in [since, until) (at ``facility_ids`` only, when given)."""
    only, ids = facility_clause(facility_ids, "c.facility_id")
    cursor = db.execute(
        "SELECT c.facility_id, c.modality, c.body_part, COUNT(*), SUM(p.score = 1)"
        " FROM peer_reviews p JOIN consultations c ON c.id = p.consultation_id"
        " WHERE p.scored_at IS NOT NULL AND c.received_at >= ? AND c.received_at < ? AND "
        + only
        + " GROUP BY c.facility_id, c.modality, c.body_part",
        [since, until, *ids],
    )
    return {(f, m, b): (n, a) for f, m, b, n, a in cursor}


def open_significant(db: sqlite_utils.Database) -> dict[tuple[int, str, str], int]:
    """(facility, modality, body part) → open clinically significant discrepancies."""
    cursor = db.execute(
        "SELECT c.facility_id, c.modality, c.body_part, COUNT(*)"
        " FROM peer_reviews p JOIN consultations c ON c.id = p.consultation_id"
        " WHERE p.discrepancy IN ('open', 'answered') AND p.significance = 'b'"
        " GROUP BY c.facility_id, c.modality, c.body_part"
    )
    return {(f, m, b): n for f, m, b, n in cursor}


def newer_version(db: sqlite_utils.Database, report_id: int, version_id: int) -> int | None:
    """The first version of the report issued after ``version_id`` (a correction), if any."""
    row = db.execute(
        "SELECT MIN(id) FROM report_versions WHERE report_id = ? AND id > ?",
        [report_id, version_id],
    ).fetchone()
    return row[0]


def link_pending_corrections(db: sqlite_utils.Database) -> int:
    """Link each clinically significant discrepancy still without a correction to the first
    version of its report issued after the reviewed one, if there is one now."""
    return db.execute(
        "UPDATE peer_reviews SET correction_version_id = (SELECT MIN(n.id) FROM report_versions n"
        "  JOIN report_versions o ON o.report_id = n.report_id"
        "  WHERE o.id = peer_reviews.report_version_id AND n.id > o.id)"
        " WHERE correction_version_id IS NULL AND significance = 'b' AND discrepancy IS NOT NULL"
    ).rowcount
