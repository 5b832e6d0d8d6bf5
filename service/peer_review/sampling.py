"""Which issued reports go to peer review: the draw over issued versions, and a manager's pick.

The draw depends only on the version id and the install's secret (m039), so it can run in the
write that lists the queue or picks a report: every version issued since the last draw is drawn
once, in id order, and ``drawn_through`` moves in the same transaction. A version is drawn as
soon as anyone looks at the reviewers' queue, whichever process signed it; signing itself
(service/reports/signing.py) needs no hook.
"""

from __future__ import annotations

from datetime import datetime

import sqlite_utils

from worklists.peer_review import PeerReviewPolicy, drawn

from ..auth.access import consultation_scope
from ..auth.sessions import CurrentUser
from ..clock import to_iso
from ..storage import Conflict, RecordNotFound
from ..storage import peer_reviews as store


def draw_issued(db: sqlite_utils.Database, policy: PeerReviewPolicy, now: datetime) -> int:
    """Draw every version issued since the last draw; how many went to the reviewers."""
    secret, through = store.draw_state(db)
    last = store.last_version_id(db)
    if last <= through:
        return 0
    assigned = 0
    for draw in store.versions_to_draw(db, through):
        if drawn(secret, draw["version_id"], policy.share_for(draw["queue"])):
            # assigned when issued: the queue's order is the signatures', whoever drew it
            at = draw["signed_at"] or to_iso(now)
            assigned += store.assign(db, draw, "sampled", at) is not None
    store.set_drawn_through(db, last)
    return assigned


def pick(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser, now: datetime
) -> tuple[int | None, int]:
    """A manager puts the consultation's issued report on the reviewers' queue: (the review's
    id, None when it already was; the version id). RecordNotFound outside the manager's scope
    or when nothing is issued."""
    scope = consultation_scope(user)
    draw = store.latest_issued(db, consultation_id, scope)
    if draw is None:
        if store.consultation_exists(db, consultation_id, scope):
            raise Conflict("not_issued", "the consultation has no issued report yet")
        raise RecordNotFound("consultation")
    return store.assign(db, draw, "picked", to_iso(now), by=user.id), draw["version_id"]


def catch_up(db: sqlite_utils.Database, policy: PeerReviewPolicy, now: datetime) -> int:
    """What the queue's write does before it is read: draw the versions issued since, and link
    the corrections signed since to the clinically significant discrepancies that asked for
    them (signing itself knows nothing of peer review). The number drawn."""
    assigned = draw_issued(db, policy, now)
    store.link_pending_corrections(db)
    return assigned
