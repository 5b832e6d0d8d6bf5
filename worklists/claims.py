"""Claims as leases: a reader holds a consultation until the lease runs out or is released.

Expiry is computed when a claim is read, never swept: an expired lease is as good as free, so an
idle reader's item goes back to the list by itself. Time is always a parameter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class ClaimState(StrEnum):
    FREE = "free"
    """Nobody ever claimed it, or the claim was released."""
    HELD = "held"
    """A reader holds a lease that has not run out."""
    EXPIRED = "expired"
    """A reader held it but went idle past the lease: anyone may take it over."""


def claim_state(claimed_by: int | None, expires_at: datetime | None, now: datetime) -> ClaimState:
    """The state of a claim at ``now`` (a lease is held up to, not including, its expiry)."""
    if claimed_by is None:
        return ClaimState.FREE
    if expires_at is None or now >= expires_at:
        return ClaimState.EXPIRED
    return ClaimState.HELD


def may_claim(
    claimed_by: int | None, expires_at: datetime | None, user_id: int, now: datetime
) -> bool:
    """A free or expired item may be claimed by anyone; a held one only by its holder (renewal)."""
    if claim_state(claimed_by, expires_at, now) is ClaimState.HELD:
        return claimed_by == user_id
    return True


def lease_until(now: datetime, minutes: float) -> datetime:
    """When a lease taken (or renewed) at ``now`` runs out."""
    if minutes <= 0:
        raise ValueError("a lease must last some time")
    return now + timedelta(minutes=minutes)
