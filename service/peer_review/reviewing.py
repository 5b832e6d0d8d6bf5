"""Taking a peer review, scoring it, and the discrepancy a score opens.

Each function runs inside one write transaction (``Database.write``). The claim follows the
reading claims' rules (worklists.claims: a lease, expired at read time, renewable by its
holder); on top of them nobody reviews a report they signed, wrote or co-signed (审核医师).
A score of 3–4 or any "b" opens a discrepancy: the first reader is told in their language and
answers, a manager closes it with an outcome; a correction the first reader signs afterwards is
linked to the clinically significant discrepancies it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from worklists.claims import ClaimState, claim_state, lease_until, may_claim
from worklists.peer_review import RadpeerScore, peer_refusal

from ..auth.access import consultation_scope
from ..auth.sessions import CurrentUser
from ..clock import from_iso, to_iso
from ..storage import Conflict, RecordNotFound
from ..storage import peer_reviews as store
from ..worklist.effects import Effects
from ..worklist.notifications import Notice

_REASONS = {
    "own_report": "you signed this report: another reader reviews it",
    "co_signed": "you co-signed this report as its reviewing physician: another reader reviews it",
}


class PeerRefused(Exception):
    """The user may not take or answer this review (403 with ``code``)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Scored:
    review_id: int
    consultation_id: int
    code: str
    discrepancy: bool
    effects: Effects = Effects()


def for_caller(row: dict[str, Any], user_id: int) -> dict[str, Any]:
    """A row without the ids of the people on it: whether it is claimed, and by the caller."""
    out = {k: v for k, v in row.items() if k not in {"claimed_by", "reviewer_id", "closed_by"}}
    out["claimed"] = row.get("claimed_by") is not None
    out["claimed_by_me"] = row.get("claimed_by") == user_id
    return out


def _review(db: sqlite_utils.Database, review_id: int, user: CurrentUser) -> dict[str, Any]:
    row = store.blind(db, review_id, consultation_scope(user))
    if row is None:
        raise RecordNotFound("peer review")
    return row


def _check_reviewer(db: sqlite_utils.Database, row: dict[str, Any], user: CurrentUser) -> None:
    signers, co_signers = store.participants(db, row["report_id"])
    signers.add(store.reader_of(db, row["id"]))
    refusal = peer_refusal(user.id, signers, co_signers)
    if refusal is not None:
        raise PeerRefused(refusal.value, _REASONS[refusal.value])


def view(db: sqlite_utils.Database, review_id: int, user: CurrentUser) -> dict[str, Any]:
    """The review as its reviewer sees it (report text, no names); refused to the report's own
    readers, so nobody learns who is reviewing them."""
    row = _review(db, review_id, user)
    _check_reviewer(db, row, user)
    return row


def claim(
    db: sqlite_utils.Database, review_id: int, user: CurrentUser, now: datetime, lease: float
) -> dict[str, Any]:
    """Take (or renew) the review's lease; 409 ``claimed`` while another reviewer holds it."""
    row = _review(db, review_id, user)
    _check_reviewer(db, row, user)
    if row["scored_at"] is not None:
        raise Conflict("already_scored", "this review was scored")
    expires = from_iso(row["claim_expires_at"]) if row["claim_expires_at"] else None
    if not may_claim(row["claimed_by"], expires, user.id, now):
        raise Conflict("claimed", f"another reviewer holds it until {row['claim_expires_at']}")
    until = to_iso(lease_until(now, lease))
    store.set_claim(db, review_id, user.id, to_iso(now), until)
    return {"id": review_id, "claimed_by_me": True, "claim_expires_at": until}


def release(db: sqlite_utils.Database, review_id: int, user: CurrentUser) -> None:
    row = _review(db, review_id, user)
    if row["claimed_by"] != user.id:
        raise Conflict("not_claimed", "you do not hold this review")
    store.set_claim(db, review_id, None, None, None)


def score(
    db: sqlite_utils.Database,
    review_id: int,
    user: CurrentUser,
    radpeer: RadpeerScore,
    now: datetime,
) -> Scored:
    """Record the reviewer's RADPEER score; the reviewer must hold a live claim."""
    row = _review(db, review_id, user)
    _check_reviewer(db, row, user)
    if row["scored_at"] is not None:
        raise Conflict("already_scored", "this review was scored")
    expires = from_iso(row["claim_expires_at"]) if row["claim_expires_at"] else None
    state = claim_state(row["claimed_by"], expires, now)
    if state is not ClaimState.HELD or row["claimed_by"] != user.id:
        raise Conflict("not_claimed", "claim the review before scoring it")
    opens = radpeer.opens_discrepancy
    stamp = to_iso(now)
    store.record_score(
        db,
        review_id,
        user.id,
        radpeer.level,
        radpeer.significance.value if radpeer.significance else None,
        radpeer.comment,
        "open" if opens else None,
        stamp,
    )
    effects = Effects()
    if opens:
        reader = store.reader_of(db, review_id)
        effects = Effects(notices=(_discrepancy_notice(row, reader, radpeer),))
    return Scored(review_id, row["consultation_id"], radpeer.code, opens, effects)


def _discrepancy_notice(row: dict[str, Any], reader: int, radpeer: RadpeerScore) -> Notice:
    return Notice(
        kind="peer_discrepancy",
        user_ids=(reader,),
        title=f"Peer review discrepancy ({radpeer.code}): answer it",
        consultation_id=row["consultation_id"],
        body="A peer reviewer scored your report; read the comment and answer it.",
        facts={"score": radpeer.code, "peer_review_id": row["id"]},
        message="peer_discrepancy",
        params={"score": radpeer.code, "peer_review_id": row["id"]},
    )


def discrepancy(db: sqlite_utils.Database, review_id: int, user: CurrentUser) -> dict[str, Any]:
    """A discrepancy as its first reader or a manager sees it (the reviewer stays anonymous)."""
    row = store.discrepancy_row(db, review_id, consultation_scope(user))
    if row is None:
        raise RecordNotFound("discrepancy")
    if user.role != "manager" and row["reader_id"] != user.id:
        raise RecordNotFound("discrepancy")
    return row


def answer(
    db: sqlite_utils.Database, review_id: int, user: CurrentUser, text: str, now: datetime
) -> dict[str, Any]:
    """The first reader answers the discrepancy (again, until it is closed)."""
    row = store.discrepancy_row(db, review_id, consultation_scope(user))
    if row is None:
        raise RecordNotFound("discrepancy")
    if row["reader_id"] != user.id:
        raise PeerRefused("not_your_report", "only the report's first reader answers it")
    store.answer(db, review_id, text.strip(), to_iso(now))
    _link_correction(db, row)
    return row


def close(
    db: sqlite_utils.Database, review_id: int, user: CurrentUser, outcome: str, now: datetime
) -> dict[str, Any]:
    """A manager closes the discrepancy with an outcome."""
    row = store.discrepancy_row(db, review_id, consultation_scope(user))
    if row is None:
        raise RecordNotFound("discrepancy")
    if row["reader_id"] == user.id:
        raise PeerRefused("own_report", "another manager closes a discrepancy on your report")
    store.close(db, review_id, outcome.strip(), user.id, to_iso(now))
    _link_correction(db, row)
    return row


def _link_correction(db: sqlite_utils.Database, row: dict[str, Any]) -> None:
    """A version issued after the reviewed one is the correction the discrepancy prompted."""
    newer = store.newer_version(db, row["report_id"], row["report_version_id"])
    if newer is not None:
        store.link_correction(db, row["report_id"], newer)
