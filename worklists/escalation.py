"""Escalation: an item nobody took after a share of its SLA, or one past its deadline.

Pure rule: the clock start, deadline, claim state and ``now`` are parameters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

Reason = Literal["unclaimed", "overdue"]
DEFAULT_SHARE = 0.5


def escalation_due(
    clock_start: datetime,
    due_at: datetime,
    claimed: bool,
    now: datetime,
    share: float = DEFAULT_SHARE,
) -> Reason | None:
    """``"overdue"`` past the deadline; ``"unclaimed"`` when unclaimed after ``share`` of the
    SLA has elapsed; otherwise ``None``. Overdue wins: it is the stronger reason."""
    if now > due_at:
        return "overdue"
    if claimed:
        return None
    threshold = clock_start + (due_at - clock_start) * share
    return "unclaimed" if now >= threshold else None
