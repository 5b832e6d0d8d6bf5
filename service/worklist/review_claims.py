"""Who may take a report awaiting review off the reviewers' queue (two-level sign-off, issue 19).

The same claim rules as for reading (claim, lease, expiry, escalation) hold for reviewing; on
top of them, the writer never reviews their own report and a reader below the rules'
``reviewer_min_grade`` is refused, both at the claim and at the decision.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from worklists.review import ReviewPolicy, ReviewRefusal

from ..auth.sessions import CurrentUser
from ..storage import report_reviews as review_store
from ..storage import users as user_store

AWAITING_REVIEW = "awaiting_review"

_REASONS = {
    ReviewRefusal.OWN_REPORT: "you wrote this report: another reader reviews it",
    ReviewRefusal.GRADE_TOO_LOW: "your grade may not review reports (the rules' minimum is {})",
}


class ReviewRefused(Exception):
    """The user may not review this report (403 with ``code``: own_report, grade_too_low)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def check_reviewer(
    db: sqlite_utils.Database, row: dict[str, Any], user: CurrentUser, policy: ReviewPolicy
) -> int:
    """The writer's id when ``user`` may review the consultation's awaiting report."""
    writer = review_store.awaiting_writer(db, row["id"])
    if writer is None:
        return 0
    grade = user_store.signer_names(db, user.id).get("grade") or ""
    refusal = policy.refusal(user.id, grade, writer)
    if refusal is not None:
        detail = _REASONS[refusal].format(policy.reviewer_min_grade.value)
        raise ReviewRefused(refusal.value, detail)
    return writer
