"""Requester and specialist talking about one consultation: the message thread and the
preliminary answer ("no haemorrhage seen, full report follows") sent before the signed report.

Both are reached through the caller's consultation scope (a requester sees only what they filed);
each runs in one write transaction and leaves an event, so the timeline and turnaround figures
(received -> preliminary) come from events alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from worklists.claims import ClaimState, claim_state

from ..auth.access import consultation_scope
from ..auth.sessions import CurrentUser
from ..clock import from_iso, to_iso
from ..storage import Conflict
from ..storage import consultations as store
from ..storage import messages as message_store
from .effects import Effects
from .live import WorklistChange


class NotClaimHolder(Conflict):
    """Only the specialist holding the claim may send the preliminary answer."""


@dataclass(frozen=True)
class Touched:
    """The consultation a conversation call concerned: for live updates and the audit record."""

    consultation_id: int
    facility_id: int
    requested_by: int | None
    priority: str
    queue: str
    patient_id: str
    study_instance_uid: str


@dataclass(frozen=True)
class Said:
    """A message or preliminary answer as recorded, and what it sets in motion (the
    worklists hear of it)."""

    consultation: Touched
    item: dict[str, Any]
    effects: Effects


@dataclass(frozen=True)
class Thread:
    consultation: Touched
    messages: list[dict[str, Any]]


def read_thread(db: sqlite_utils.Database, consultation_id: int, user: CurrentUser) -> Thread:
    row = store.get_consultation(db, consultation_scope(user), consultation_id)
    return Thread(_touched(row), message_store.messages_of(db, consultation_id))


def post_message(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser, body: str, now: datetime
) -> Said:
    """Append a message to the thread and a ``message`` event to the timeline."""
    row = store.get_consultation(db, consultation_scope(user), consultation_id)
    stamp = to_iso(now)
    message_id = message_store.add_message(db, consultation_id, user.id, body, stamp)
    store.append_event(db, consultation_id, "message", stamp, user.id, {"message_id": message_id})
    message = {
        "id": message_id,
        "body": body,
        "created_at": stamp,
        "author_id": user.id,
        "author": _name(user),
        "author_role": user.role,
        "author_facility": user.facility_name,
    }
    return _said(row, message, "message")


def send_preliminary(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser, text: str, now: datetime
) -> Said:
    """Record the holder's preliminary answer as a ``preliminary`` event (timestamped for TAT)."""
    row = store.get_consultation(db, consultation_scope(user), consultation_id)
    expires = row["claim_expires_at"]
    state = claim_state(row["claimed_by"], from_iso(expires) if expires else None, now)
    if state is not ClaimState.HELD:
        raise NotClaimHolder("not_claimed", "claim the consultation before answering")
    if row["claimed_by"] != user.id:
        raise NotClaimHolder("not_holder", f"held by {row['claimed_by_name']}, not by you")
    stamp = to_iso(now)
    detail = {"text": text, "author": _name(user), "author_id": user.id}
    store.append_event(db, consultation_id, "preliminary", stamp, user.id, detail)
    return _said(row, {"text": text, "at": stamp, "by": _name(user)}, "preliminary")


def preliminary_of(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest preliminary answer in a timeline, as {text, at, by}; None before any."""
    answers = [e for e in events if e["type"] == "preliminary"]
    if not answers:
        return None
    last = answers[-1]
    return {
        "text": last["detail"].get("text", ""),
        "at": last["at"],
        "by": last["detail"].get("author"),
    }


def _name(user: CurrentUser) -> str:
    return user.display_name or user.username


def _touched(row: dict[str, Any]) -> Touched:
    return Touched(
        consultation_id=row["id"],
        facility_id=row["facility_id"],
        requested_by=row["requested_by"],
        priority=row["priority"],
        queue=row.get("queue") or "general",
        patient_id=row["patient_id"] or "",
        study_instance_uid=row["study_instance_uid"] or "",
    )


def _said(row: dict[str, Any], item: dict[str, Any], kind: str) -> Said:
    return Said(_touched(row), item, Effects(changes=(WorklistChange.of(row, kind),)))
