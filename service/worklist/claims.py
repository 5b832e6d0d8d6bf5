"""Claiming a consultation before reading it: an atomic lease, released, renewed or reassigned.

Each function runs inside one write transaction (``Database.write``): the row is read and changed
under ``BEGIN IMMEDIATE``, so of concurrent claims exactly one wins. Leases expire at read time
(``worklists.claims``); when a claim takes over an expired lease a ``lease_expired`` event records
it. Renewal by the holder (the viewer's heartbeat) only moves the expiry: no event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from worklists.claims import ClaimState, claim_state, lease_until
from worklists.review import ReviewPolicy
from worklists.roster import READER
from worklists.routing import subspecialties
from worklists.status import FINISHED_STATUSES, ConsultationStatus

from ..auth.access import consultation_scope, manages_readers_of
from ..auth.sessions import CurrentUser
from ..clock import from_iso, to_iso
from ..storage import Conflict
from ..storage import consultations as store
from .effects import Effects
from .live import WorklistChange
from .review_claims import check_reviewer
from .roster import duty_now

CLAIMING_ROLES = frozenset({"specialist"})


class ClaimHeld(Conflict):
    """Another reader holds a live lease on the consultation."""

    def __init__(self, holder: str, holder_id: int, expires_at: str) -> None:
        super().__init__("claimed", f"held by {holder} until {expires_at}")
        self.holder = holder
        self.holder_id = holder_id
        self.expires_at = expires_at


class NotHolder(Exception):
    """The caller may not release a claim someone else holds."""


class NotYourReader(Exception):
    """A manager may direct only readers they manage (their facility's; the centre: everyone)."""


class InvalidAssignee(ValueError):
    """The user a manager picked cannot read this consultation."""


@dataclass(frozen=True)
class ClaimOutcome:
    """The consultation's claim after the change, and what live updates and audit need."""

    consultation_id: int
    facility_id: int
    requested_by: int | None
    priority: str
    queue: str
    patient_id: str
    study_instance_uid: str
    claimed_by_id: int | None
    claimed_by: str | None
    claim_expires_at: str | None
    effects: Effects = Effects()


def claim(
    db: sqlite_utils.Database,
    consultation_id: int,
    user: CurrentUser,
    now: datetime,
    lease_minutes: float,
    review: ReviewPolicy | None = None,
) -> ClaimOutcome:
    """Take (or, as holder, renew) the lease; ClaimHeld when someone else holds it.

    A report awaiting review is claimed by its reviewer: ReviewRefused for its writer, or for a
    grade the ``review`` policy does not let review."""
    row = store.get_consultation(db, consultation_scope(user), consultation_id)
    if row["status"] == ConsultationStatus.AWAITING_IMAGES or row["received_at"] is None:
        raise Conflict("no_images", "the images of this consultation have not arrived")
    _refuse_finished(row)
    if row["status"] == ConsultationStatus.AWAITING_REVIEW:
        check_reviewer(db, row, user, review or ReviewPolicy())
    state = _state(row, now)
    expires = to_iso(lease_until(now, lease_minutes))
    if state is ClaimState.HELD:
        if row["claimed_by"] != user.id:
            raise ClaimHeld(row["claimed_by_name"], row["claimed_by"], row["claim_expires_at"])
        store.renew_claim(db, consultation_id, expires)
        return _outcome(row, user.id, _name(user), expires, "claimed")
    _record_expiry(db, row, state)
    store.set_claim(db, consultation_id, user.id, to_iso(now), expires)
    store.append_event(
        db, consultation_id, "claimed", to_iso(now), user.id, {"expires_at": expires}
    )
    return _outcome(row, user.id, _name(user), expires, "claimed")


def release(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser, now: datetime
) -> ClaimOutcome:
    """Give the item back to the list: by its holder, or by a manager who directs the holder."""
    row = store.get_consultation(db, consultation_scope(user), consultation_id)
    if _state(row, now) is not ClaimState.HELD:
        raise Conflict("not_claimed", "nobody holds this consultation")
    if row["claimed_by"] != user.id:
        if user.role != "manager":
            raise NotHolder(f"held by {row['claimed_by_name']}, not by you")
        holder = store.claim_account(db, row["claimed_by"])
        if not manages_readers_of(user, holder["facility_id"]):
            raise NotHolder(
                f"held by {row['claimed_by_name']} of {holder['facility_name']}: their own"
                " facility's or the regional centre's managers release it"
            )
    store.set_claim(db, consultation_id, None, None, None)
    store.append_event(
        db, consultation_id, "released", to_iso(now), user.id, {"holder": row["claimed_by"]}
    )
    return _outcome(row, None, None, None, "released")


def reassign(
    db: sqlite_utils.Database,
    consultation_id: int,
    manager: CurrentUser,
    target_user_id: int,
    now: datetime,
    lease_minutes: float,
    review: ReviewPolicy | None = None,
) -> ClaimOutcome:
    """A manager hands the item to another specialist, who gets a fresh lease (a report
    awaiting review: a reviewer the ``review`` policy allows, never its writer)."""
    row = store.get_consultation(db, consultation_scope(manager), consultation_id)
    _refuse_finished(row)
    target = _assignee(db, target_user_id, row)
    if row["status"] == ConsultationStatus.AWAITING_REVIEW:  # never to its writer
        check_reviewer(db, row, target, review or ReviewPolicy())
    state = _state(row, now)
    _refuse_unmanaged(db, manager, target, row if state is ClaimState.HELD else None)
    _record_expiry(db, row, state)
    expires = to_iso(lease_until(now, lease_minutes))
    store.set_claim(db, consultation_id, target.id, to_iso(now), expires)
    previous = row["claimed_by"] if state is ClaimState.HELD else None
    store.append_event(
        db,
        consultation_id,
        "reassigned",
        to_iso(now),
        manager.id,
        {"from": previous, "to": target.id, "expires_at": expires},
    )
    return _outcome(row, target.id, _name(target), expires, "claimed")


@dataclass(frozen=True)
class Assignee:
    """A specialist a manager may hand the consultation to."""

    id: int
    name: str
    username: str
    subspecialties: list[str]
    on_duty: bool
    claims: int
    holder: bool


def assignees(
    db: sqlite_utils.Database, consultation_id: int, manager: CurrentUser, now: datetime
) -> list[Assignee]:
    """Who can take the consultation: on-duty readers first, then the least busy."""
    row = store.get_consultation(db, consultation_scope(manager), consultation_id)
    duty = {e.user_id for e in duty_now(db, now) if e.role_on_duty == READER}
    holder = row["claimed_by"] if _state(row, now) is ClaimState.HELD else None
    found = [
        Assignee(
            id=r["id"],
            name=r["display_name"] or r["username"],
            username=r["username"],
            subspecialties=subspecialties(r["subspecialties"]),
            on_duty=r["id"] in duty,
            claims=r["claims"],
            holder=r["id"] == holder,
        )
        for r in store.specialists_reading_for(db, row["facility_id"], to_iso(now))
        if manages_readers_of(manager, r["facility_id"])
    ]
    return sorted(found, key=lambda a: (not a.on_duty, a.claims))


def _refuse_finished(row: dict[str, Any]) -> None:
    """A reported (or cancelled) consultation is read: corrections go through the report."""
    if row["status"] in FINISHED_STATUSES:
        raise Conflict("finished", f"consultation {row['id']} is {row['status']}")


def _assignee(db: sqlite_utils.Database, user_id: int, row: dict[str, Any]) -> CurrentUser:
    account = store.claim_account(db, user_id)
    target = CurrentUser.from_row(account | {"session_id": 0, "csrf_token": ""})
    if account["disabled"] or target.role not in CLAIMING_ROLES:
        raise InvalidAssignee(f"user {user_id} is not an enabled specialist")
    if not consultation_scope(target).allows(row["facility_id"], row["requested_by"]):
        raise InvalidAssignee(f"user {user_id} does not read for this facility")
    return target


def _refuse_unmanaged(
    db: sqlite_utils.Database,
    manager: CurrentUser,
    target: CurrentUser,
    held: dict[str, Any] | None,
) -> None:
    """NotYourReader unless the manager directs both the new reader and the current holder."""
    if not manages_readers_of(manager, target.facility_id):
        raise NotYourReader(
            f"user {target.id} reads for {target.facility_name}: only its own or the regional"
            " centre's managers hand them work"
        )
    if held is not None and held["claimed_by"] != target.id:
        holder = store.claim_account(db, held["claimed_by"])
        if not manages_readers_of(manager, holder["facility_id"]):
            raise NotYourReader(
                f"held by {held['claimed_by_name']} of {holder['facility_name']}: their own"
                " facility's or the regional centre's managers reassign it"
            )


def _state(row: dict[str, Any], now: datetime) -> ClaimState:
    expires = row["claim_expires_at"]
    return claim_state(row["claimed_by"], from_iso(expires) if expires else None, now)


def _record_expiry(db: sqlite_utils.Database, row: dict[str, Any], state: ClaimState) -> None:
    """An idle reader's lease ran out: say so, at the moment it did, before it changes hands."""
    if state is ClaimState.EXPIRED:
        store.append_event(
            db,
            row["id"],
            "lease_expired",
            row["claim_expires_at"] or row["claimed_at"],
            None,
            {"holder": row["claimed_by"]},
        )


def _name(user: CurrentUser) -> str:
    return user.display_name or user.username


def _outcome(
    row: dict[str, Any],
    holder_id: int | None,
    holder: str | None,
    expires: str | None,
    kind: str,
) -> ClaimOutcome:
    """The claim after the change; the worklists hear ``kind`` (claimed, released) with it."""
    detail = {"claimed_by": holder, "claim_expires_at": expires}
    return ClaimOutcome(
        consultation_id=row["id"],
        facility_id=row["facility_id"],
        requested_by=row["requested_by"],
        priority=row["priority"],
        queue=row.get("queue") or "general",
        patient_id=row["patient_id"] or "",
        study_instance_uid=row["study_instance_uid"] or "",
        claimed_by_id=holder_id,
        claimed_by=holder,
        claim_expires_at=expires,
        effects=Effects(changes=(WorklistChange.of(row, kind, detail),)),
    )
