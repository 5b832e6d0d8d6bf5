"""Who sees which QC figures: the centre's managers every facility's, everyone else their own
facility's only (QC scores and the recognition history, whose changes carry scores). The list
itself is published to every signed-in user: that is what it is for."""

from __future__ import annotations

from ..auth.access import REGIONAL
from ..auth.sessions import CurrentUser


def qc_facilities(user: CurrentUser) -> tuple[int, ...] | None:
    """The facilities whose QC figures ``user`` may read (None: all)."""
    if user.role == "manager" and user.facility_kind == REGIONAL:
        return None
    return (user.facility_id,)


def may_see_facility(user: CurrentUser, facility_id: int) -> bool:
    allowed = qc_facilities(user)
    return allowed is None or facility_id in allowed
